-- The triggers as they were; the rows keep the canonical form (read as before).

DROP TRIGGER users_canonical_times;
DROP TRIGGER accounts_canonical_times;
DROP TRIGGER sessions_canonical_times;
DROP TRIGGER verifications_canonical_times;
DROP TRIGGER user_settings_canonical_times;
DROP TRIGGER user_profiles_canonical_times;
DROP TRIGGER users_set_updated_at;
DROP TRIGGER accounts_set_updated_at;
DROP TRIGGER sessions_set_updated_at;
DROP TRIGGER user_settings_set_updated_at;
DROP TRIGGER user_profiles_set_updated_at;

CREATE TRIGGER users_set_updated_at AFTER UPDATE ON users
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE users SET updated_at = max(
        strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'),
        strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds'))
    WHERE id = NEW.id;
END;

CREATE TRIGGER accounts_set_updated_at AFTER UPDATE ON accounts
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE accounts SET updated_at = max(
        strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'),
        strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds'))
    WHERE id = NEW.id;
END;

CREATE TRIGGER sessions_set_updated_at AFTER UPDATE ON sessions
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE sessions SET updated_at = max(
        strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'),
        strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds'))
    WHERE id = NEW.id;
END;

CREATE TRIGGER user_settings_set_updated_at AFTER UPDATE ON user_settings
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE user_settings SET updated_at = max(
        strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'),
        strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds'))
    WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER user_profiles_set_updated_at AFTER UPDATE ON user_profiles
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE user_profiles SET updated_at = max(
        strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'),
        strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds'))
    WHERE user_id = NEW.user_id;
END;
