// @generated automatically by Diesel CLI.

diesel::table! {
    accounts (id) {
        id -> crate::ids::UuidBlob,
        user_id -> crate::ids::UuidBlob,
        provider -> Text,
        provider_account_id -> Text,
        access_token -> Nullable<Text>,
        refresh_token -> Nullable<Text>,
        id_token -> Nullable<Text>,
        access_token_expires_at -> Nullable<TimestamptzSqlite>,
        refresh_token_expires_at -> Nullable<TimestamptzSqlite>,
        scope -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        created_at -> TimestamptzSqlite,
        updated_at -> TimestamptzSqlite,
    }
}

diesel::table! {
    sessions (id) {
        id -> crate::ids::UuidBlob,
        user_id -> crate::ids::UuidBlob,
        token_hash -> Binary,
        expires_at -> TimestamptzSqlite,
        revoked_at -> Nullable<TimestamptzSqlite>,
        ip_address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> TimestamptzSqlite,
        updated_at -> TimestamptzSqlite,
    }
}

diesel::table! {
    user_profiles (user_id) {
        user_id -> crate::ids::UuidBlob,
        display_name -> Text,
        avatar_url -> Nullable<Text>,
        bio -> Nullable<Text>,
        created_at -> TimestamptzSqlite,
        updated_at -> TimestamptzSqlite,
    }
}

diesel::table! {
    user_settings (user_id) {
        user_id -> crate::ids::UuidBlob,
        settings -> Text,
        created_at -> TimestamptzSqlite,
        updated_at -> TimestamptzSqlite,
    }
}

diesel::table! {
    users (id) {
        id -> crate::ids::UuidBlob,
        email -> Text,
        email_verified -> Bool,
        name -> Nullable<Text>,
        image -> Nullable<Text>,
        created_at -> TimestamptzSqlite,
        updated_at -> TimestamptzSqlite,
    }
}

diesel::table! {
    verifications (id) {
        id -> crate::ids::UuidBlob,
        purpose -> Text,
        identifier -> Text,
        token_hash -> Binary,
        expires_at -> TimestamptzSqlite,
        consumed_at -> Nullable<TimestamptzSqlite>,
        created_at -> TimestamptzSqlite,
    }
}

diesel::joinable!(accounts -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(user_profiles -> users (user_id));
diesel::joinable!(user_settings -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    sessions,
    user_profiles,
    user_settings,
    users,
    verifications,
);
