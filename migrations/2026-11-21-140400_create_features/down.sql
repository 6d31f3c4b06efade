DROP TABLE user_activity_daily;
DROP TABLE waitlist;
DROP TABLE todos;
