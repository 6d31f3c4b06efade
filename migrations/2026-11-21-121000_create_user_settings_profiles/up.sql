-- Per-user settings and the public profile. One row per user at most (the
-- user id is the primary key); no row means "all defaults" / "no profile".

-- Settings are typed in Rust (src/settings/user_settings.rs) and stored as
-- one JSONB object, so adding a setting needs no migration. A partial
-- update merges keys with `settings || patch` in a single statement, so two
-- concurrent updates of different keys both survive.
CREATE TABLE user_settings (
    user_id    uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    settings   jsonb       NOT NULL DEFAULT '{}'::jsonb
        CONSTRAINT user_settings_settings_object CHECK (jsonb_typeof(settings) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
SELECT diesel_manage_updated_at('user_settings');

CREATE TABLE user_profiles (
    user_id      uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    display_name text        NOT NULL
        CONSTRAINT user_profiles_display_name_length CHECK (char_length(display_name) BETWEEN 1 AND 100),
    avatar_url   text
        CONSTRAINT user_profiles_avatar_url_length CHECK (char_length(avatar_url) <= 2048),
    bio          text
        CONSTRAINT user_profiles_bio_length CHECK (char_length(bio) <= 1000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
SELECT diesel_manage_updated_at('user_profiles');
