-- The auth domain on SQLite: the same tables, constraint names and rules as
-- migrations/2026-11-21-100000_create_auth (read that file for the why).
--
-- How PostgreSQL types are stored here:
-- * uuid        -> BLOB of 16 bytes (crate::ids::UuidBlob): half the size of
--                  the text form, compared with memcmp, and the byte order of
--                  a v7 id is its time order, so the primary key still grows
--                  at its right edge.
-- * timestamptz -> TEXT `YYYY-MM-DD HH:MM:SS.fff+00:00` (Diesel's
--                  TimestamptzSqlite), always UTC, so that text order is time
--                  order and `expires_at > $now` compares correctly.
-- * enum        -> TEXT with a CHECK naming the same labels.
-- * bytea       -> BLOB.
-- SQLite reports a violated UNIQUE constraint by its columns and a CHECK by
-- its name; uniques are therefore indexes named like PostgreSQL's, and
-- src/db/sqlite.rs maps the columns back to the name.

CREATE TABLE users (
    id             BLOB      NOT NULL PRIMARY KEY,
    email          TEXT      NOT NULL
        CONSTRAINT users_email_length CHECK (length(email) BETWEEN 3 AND 254),
    email_verified BOOLEAN   NOT NULL DEFAULT 0,
    name           TEXT
        CONSTRAINT users_name_length CHECK (length(name) BETWEEN 1 AND 100),
    image          TEXT
        CONSTRAINT users_image_length CHECK (length(image) <= 2048),
    created_at     TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at     TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);
-- SQLite's lower() folds ASCII only (PostgreSQL's follows the collation):
-- addresses differing only in the case of non-ASCII letters are two users here.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE TRIGGER users_set_updated_at AFTER UPDATE ON users
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE users SET updated_at = max(
        strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'),
        strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds'))
    WHERE id = NEW.id;
END;

CREATE TABLE accounts (
    id                       BLOB      NOT NULL PRIMARY KEY,
    user_id                  BLOB      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider                 TEXT      NOT NULL
        CONSTRAINT accounts_provider_length CHECK (length(provider) BETWEEN 1 AND 64),
    provider_account_id      TEXT      NOT NULL
        CONSTRAINT accounts_provider_account_id_length CHECK (length(provider_account_id) BETWEEN 1 AND 255),
    access_token             TEXT,
    refresh_token            TEXT,
    id_token                 TEXT,
    access_token_expires_at  TIMESTAMP,
    refresh_token_expires_at TIMESTAMP,
    scope                    TEXT,
    password_hash            TEXT,
    created_at               TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at               TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);
CREATE UNIQUE INDEX accounts_provider_account_key ON accounts (provider, provider_account_id);
CREATE UNIQUE INDEX accounts_user_provider_key ON accounts (user_id, provider);
CREATE TRIGGER accounts_set_updated_at AFTER UPDATE ON accounts
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE accounts SET updated_at = max(
        strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'),
        strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds'))
    WHERE id = NEW.id;
END;

CREATE TABLE sessions (
    id          BLOB      NOT NULL PRIMARY KEY,
    user_id     BLOB      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  BLOB      NOT NULL
        CONSTRAINT sessions_token_hash_length CHECK (length(token_hash) = 32),
    expires_at  TIMESTAMP NOT NULL,
    revoked_at  TIMESTAMP,
    ip_address  TEXT
        CONSTRAINT sessions_ip_address_length CHECK (length(ip_address) <= 45),
    user_agent  TEXT
        CONSTRAINT sessions_user_agent_length CHECK (length(user_agent) <= 512),
    created_at  TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at  TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);
CREATE UNIQUE INDEX sessions_token_hash_key ON sessions (token_hash);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE TRIGGER sessions_set_updated_at AFTER UPDATE ON sessions
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE sessions SET updated_at = max(
        strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'),
        strftime('%Y-%m-%d %H:%M:%f+00:00', OLD.updated_at, '+0.001 seconds'))
    WHERE id = NEW.id;
END;

CREATE TABLE verifications (
    id          BLOB      NOT NULL PRIMARY KEY,
    purpose     TEXT      NOT NULL
        CONSTRAINT verifications_purpose_enum CHECK (purpose IN
            ('email_verification', 'password_reset', 'email_change', 'magic_link')),
    identifier  TEXT      NOT NULL
        CONSTRAINT verifications_identifier_length CHECK (length(identifier) BETWEEN 1 AND 255),
    token_hash  BLOB      NOT NULL
        CONSTRAINT verifications_token_hash_length CHECK (length(token_hash) = 32),
    expires_at  TIMESTAMP NOT NULL,
    consumed_at TIMESTAMP,
    created_at  TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);
CREATE UNIQUE INDEX verifications_token_hash_key ON verifications (token_hash);
CREATE INDEX verifications_identifier_idx ON verifications (purpose, identifier);
CREATE INDEX verifications_expires_at_idx ON verifications (expires_at);
