-- Per-user settings and the public profile on SQLite: see
-- migrations/2026-11-21-121000_create_user_settings_profiles for the why.
-- `settings` is JSON text (SQLite's json_patch merges a partial update in
-- one statement, as `settings || patch` does on PostgreSQL).

CREATE TABLE user_settings (
    user_id    BLOB      NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    settings   TEXT      NOT NULL DEFAULT '{}'
        CONSTRAINT user_settings_settings_object CHECK (json_type(settings) = 'object'),
    created_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);
CREATE TRIGGER user_settings_set_updated_at AFTER UPDATE ON user_settings
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE user_settings SET updated_at = max(
        strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'),
        strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds'))
    WHERE user_id = NEW.user_id;
END;

CREATE TABLE user_profiles (
    user_id      BLOB      NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    display_name TEXT      NOT NULL
        CONSTRAINT user_profiles_display_name_length CHECK (length(display_name) BETWEEN 1 AND 100),
    avatar_url   TEXT
        CONSTRAINT user_profiles_avatar_url_length CHECK (length(avatar_url) <= 2048),
    bio          TEXT
        CONSTRAINT user_profiles_bio_length CHECK (length(bio) <= 1000),
    created_at   TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at   TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);
CREATE TRIGGER user_profiles_set_updated_at AFTER UPDATE ON user_profiles
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE user_profiles SET updated_at = max(
        strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'),
        strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds'))
    WHERE user_id = NEW.user_id;
END;
