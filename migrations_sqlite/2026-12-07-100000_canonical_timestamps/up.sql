-- One text form per instant on SQLite. Timestamps are text here and compare
-- as text. Diesel writes an instant in one form ('...:32+00:00' at a whole
-- second, else 3, 6 or 9 fraction digits, never trailing zeros of a shorter
-- form), and that form orders as time does; the column defaults and the
-- updated_at triggers wrote strftime's '%f', always three digits, so at a
-- whole millisecond-second they wrote '...:32.000+00:00', which compares
-- unequal to Diesel's '...:32+00:00' for the same instant (a keyset cursor
-- taken at a whole second then skips or repeats rows). Diesel's form is the
-- canonical one: this rewrites the rows already stored, the updated_at
-- triggers write it, and a trigger per table rewrites what a column default
-- wrote on insert. (A column default cannot be changed without rebuilding
-- its table.)

-- The updated_at triggers first: the rewrite below must not fire them.

DROP TRIGGER users_set_updated_at;
DROP TRIGGER accounts_set_updated_at;
DROP TRIGGER sessions_set_updated_at;
DROP TRIGGER user_settings_set_updated_at;
DROP TRIGGER user_profiles_set_updated_at;

UPDATE users SET
    created_at = replace(created_at, '.000+00:00', '+00:00'),
    updated_at = replace(updated_at, '.000+00:00', '+00:00')
WHERE created_at LIKE '%.000+00:00' OR updated_at LIKE '%.000+00:00';

UPDATE accounts SET
    access_token_expires_at = replace(access_token_expires_at, '.000+00:00', '+00:00'),
    refresh_token_expires_at = replace(refresh_token_expires_at, '.000+00:00', '+00:00'),
    created_at = replace(created_at, '.000+00:00', '+00:00'),
    updated_at = replace(updated_at, '.000+00:00', '+00:00')
WHERE access_token_expires_at LIKE '%.000+00:00' OR refresh_token_expires_at LIKE '%.000+00:00' OR created_at LIKE '%.000+00:00' OR updated_at LIKE '%.000+00:00';

UPDATE sessions SET
    expires_at = replace(expires_at, '.000+00:00', '+00:00'),
    revoked_at = replace(revoked_at, '.000+00:00', '+00:00'),
    created_at = replace(created_at, '.000+00:00', '+00:00'),
    updated_at = replace(updated_at, '.000+00:00', '+00:00')
WHERE expires_at LIKE '%.000+00:00' OR revoked_at LIKE '%.000+00:00' OR created_at LIKE '%.000+00:00' OR updated_at LIKE '%.000+00:00';

UPDATE verifications SET
    expires_at = replace(expires_at, '.000+00:00', '+00:00'),
    consumed_at = replace(consumed_at, '.000+00:00', '+00:00'),
    created_at = replace(created_at, '.000+00:00', '+00:00')
WHERE expires_at LIKE '%.000+00:00' OR consumed_at LIKE '%.000+00:00' OR created_at LIKE '%.000+00:00';

UPDATE user_settings SET
    created_at = replace(created_at, '.000+00:00', '+00:00'),
    updated_at = replace(updated_at, '.000+00:00', '+00:00')
WHERE created_at LIKE '%.000+00:00' OR updated_at LIKE '%.000+00:00';

UPDATE user_profiles SET
    created_at = replace(created_at, '.000+00:00', '+00:00'),
    updated_at = replace(updated_at, '.000+00:00', '+00:00')
WHERE created_at LIKE '%.000+00:00' OR updated_at LIKE '%.000+00:00';

-- Kept current by updates that do not set it; not by the insert trigger's
-- rewrite (which changes created_at or updated_at itself).
CREATE TRIGGER users_set_updated_at AFTER UPDATE ON users
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at AND NEW.created_at IS OLD.created_at
BEGIN
    UPDATE users SET updated_at = replace(max(strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'), strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds')), '.000+00:00', '+00:00')
    WHERE id = NEW.id;
END;

-- Kept current by updates that do not set it; not by the insert trigger's
-- rewrite (which changes created_at or updated_at itself).
CREATE TRIGGER accounts_set_updated_at AFTER UPDATE ON accounts
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at AND NEW.created_at IS OLD.created_at
BEGIN
    UPDATE accounts SET updated_at = replace(max(strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'), strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds')), '.000+00:00', '+00:00')
    WHERE id = NEW.id;
END;

-- Kept current by updates that do not set it; not by the insert trigger's
-- rewrite (which changes created_at or updated_at itself).
CREATE TRIGGER sessions_set_updated_at AFTER UPDATE ON sessions
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at AND NEW.created_at IS OLD.created_at
BEGIN
    UPDATE sessions SET updated_at = replace(max(strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'), strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds')), '.000+00:00', '+00:00')
    WHERE id = NEW.id;
END;

-- Kept current by updates that do not set it; not by the insert trigger's
-- rewrite (which changes created_at or updated_at itself).
CREATE TRIGGER user_settings_set_updated_at AFTER UPDATE ON user_settings
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at AND NEW.created_at IS OLD.created_at
BEGIN
    UPDATE user_settings SET updated_at = replace(max(strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'), strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds')), '.000+00:00', '+00:00')
    WHERE user_id = NEW.user_id;
END;

-- Kept current by updates that do not set it; not by the insert trigger's
-- rewrite (which changes created_at or updated_at itself).
CREATE TRIGGER user_profiles_set_updated_at AFTER UPDATE ON user_profiles
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at AND NEW.created_at IS OLD.created_at
BEGIN
    UPDATE user_profiles SET updated_at = replace(max(strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'), strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds')), '.000+00:00', '+00:00')
    WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER users_canonical_times AFTER INSERT ON users
FOR EACH ROW WHEN NEW.created_at LIKE '%.000+00:00' OR NEW.updated_at LIKE '%.000+00:00'
BEGIN
    UPDATE users SET created_at = replace(NEW.created_at, '.000+00:00', '+00:00'), updated_at = replace(NEW.updated_at, '.000+00:00', '+00:00')
    WHERE id = NEW.id;
END;

CREATE TRIGGER accounts_canonical_times AFTER INSERT ON accounts
FOR EACH ROW WHEN NEW.created_at LIKE '%.000+00:00' OR NEW.updated_at LIKE '%.000+00:00'
BEGIN
    UPDATE accounts SET created_at = replace(NEW.created_at, '.000+00:00', '+00:00'), updated_at = replace(NEW.updated_at, '.000+00:00', '+00:00')
    WHERE id = NEW.id;
END;

CREATE TRIGGER sessions_canonical_times AFTER INSERT ON sessions
FOR EACH ROW WHEN NEW.created_at LIKE '%.000+00:00' OR NEW.updated_at LIKE '%.000+00:00'
BEGIN
    UPDATE sessions SET created_at = replace(NEW.created_at, '.000+00:00', '+00:00'), updated_at = replace(NEW.updated_at, '.000+00:00', '+00:00')
    WHERE id = NEW.id;
END;

CREATE TRIGGER verifications_canonical_times AFTER INSERT ON verifications
FOR EACH ROW WHEN NEW.created_at LIKE '%.000+00:00'
BEGIN
    UPDATE verifications SET created_at = replace(NEW.created_at, '.000+00:00', '+00:00')
    WHERE id = NEW.id;
END;

CREATE TRIGGER user_settings_canonical_times AFTER INSERT ON user_settings
FOR EACH ROW WHEN NEW.created_at LIKE '%.000+00:00' OR NEW.updated_at LIKE '%.000+00:00'
BEGIN
    UPDATE user_settings SET created_at = replace(NEW.created_at, '.000+00:00', '+00:00'), updated_at = replace(NEW.updated_at, '.000+00:00', '+00:00')
    WHERE user_id = NEW.user_id;
END;

CREATE TRIGGER user_profiles_canonical_times AFTER INSERT ON user_profiles
FOR EACH ROW WHEN NEW.created_at LIKE '%.000+00:00' OR NEW.updated_at LIKE '%.000+00:00'
BEGIN
    UPDATE user_profiles SET created_at = replace(NEW.created_at, '.000+00:00', '+00:00'), updated_at = replace(NEW.updated_at, '.000+00:00', '+00:00')
    WHERE user_id = NEW.user_id;
END;
