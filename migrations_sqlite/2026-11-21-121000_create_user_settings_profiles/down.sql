DROP TABLE user_profiles;
DROP TABLE user_settings;
