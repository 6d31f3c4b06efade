//! `user_settings`: per-user preferences as a typed struct stored in one
//! JSONB object. A missing row, or a missing key in it, reads as the default,
//! so new settings need no migration and no backfill.
//! Portable: on SQLite the object is JSON text, merged with `json_patch`.

use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use crate::db::{AnyConn, Backend, any_run};
use crate::error::validate;
use crate::render_once::RenderOnceDsl;
use crate::{Error, Result, UserId};

diesel::define_sql_function! {
    /// SQLite's `json_patch(target, patch)` (RFC 7396 merge): for a patch of
    /// non-null top-level values it is PostgreSQL's `jsonb || jsonb`.
    fn json_patch(target: diesel::sql_types::Text, patch: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// The colour scheme of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Light.
    Light,
    /// Dark.
    Dark,
    /// Follow the operating system.
    #[default]
    System,
}

/// How often activity digests are emailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestFrequency {
    /// No digest.
    Never,
    /// Every day.
    Daily,
    /// Every week.
    #[default]
    Weekly,
}

/// A user's settings, every field filled (defaults for what was never set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserSettings {
    /// Interface theme.
    pub theme: Theme,
    /// BCP 47 language tag, e.g. `en-US`.
    pub locale: String,
    /// IANA time zone name, e.g. `Europe/Paris`.
    pub timezone: String,
    /// Default for email notifications.
    pub email_notifications: bool,
    /// Default for push notifications.
    pub push_notifications: bool,
    /// Digest frequency.
    pub digest: DigestFrequency,
}

impl Default for UserSettings {
    fn default() -> Self {
        Self {
            theme: Theme::System,
            locale: "en-US".to_owned(),
            timezone: "UTC".to_owned(),
            email_notifications: true,
            push_notifications: true,
            digest: DigestFrequency::Weekly,
        }
    }
}

/// Input of `update`: only the `Some` fields change; the others keep their
/// stored value (or default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Validate)]
pub struct SettingsPatch {
    /// New theme.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub theme: Option<Theme>,
    /// New language tag (letters, digits and hyphens, 2 to 35 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "locale_format"))]
    pub locale: Option<String>,
    /// New time zone name (`Area/City` or `UTC`, at most 64 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "timezone_format"))]
    pub timezone: Option<String>,
    /// New email default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_notifications: Option<bool>,
    /// New push default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_notifications: Option<bool>,
    /// New digest frequency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestFrequency>,
}

fn locale_format(v: &str) -> Result<(), ValidationError> {
    let ok = (2..=35).contains(&v.len())
        && v.split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
    ok.then_some(()).ok_or_else(|| {
        ValidationError::new("locale").with_message("must be a language tag like en-US".into())
    })
}

fn timezone_format(v: &str) -> Result<(), ValidationError> {
    let ok = (1..=64).contains(&v.len())
        && v.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
        });
    ok.then_some(()).ok_or_else(|| {
        ValidationError::new("timezone")
            .with_message("must be a time zone name like Europe/Paris".into())
    })
}

fn decode(value: serde_json::Value) -> Result<UserSettings> {
    serde_json::from_value(value)
        .map_err(|e| Error::Database(diesel::result::Error::DeserializationError(Box::new(e))))
}

/// `user`'s settings; the defaults when they never changed any.
pub async fn get(conn: &mut impl AnyConn, user: UserId) -> Result<UserSettings> {
    let stored: Option<serde_json::Value> = match conn.backend() {
        Backend::Pg(conn) => {
            use crate::schema::user_settings;
            user_settings::table
                .find(user)
                .select(user_settings::settings)
                .render_once()
                .get_result(conn)
                .await
                .optional()?
        }
        Backend::Sqlite(conn) => {
            use crate::schema_sqlite::user_settings;
            let text: Option<String> = user_settings::table
                .find(user)
                .select(user_settings::settings)
                .get_result(conn)
                .await
                .optional()?;
            text.map(|t| parse_text(&t)).transpose()?
        }
    };
    stored.map_or_else(|| Ok(UserSettings::default()), decode)
}

fn parse_text(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::Database(diesel::result::Error::DeserializationError(Box::new(e))))
}

/// Changes only the keys given in `patch`; returns the resulting settings.
/// Merging happens in the database (`settings || patch`), so concurrent
/// updates of different keys don't overwrite each other.
/// `NotFound { user }` when the user doesn't exist.
pub async fn update(
    conn: &mut impl AnyConn,
    user: UserId,
    patch: &SettingsPatch,
) -> Result<UserSettings> {
    validate(patch)?;
    if *patch == SettingsPatch::default() {
        return get(conn, user).await;
    }
    let json = serde_json::to_value(patch).expect("settings serialise to JSON");
    let conn = match conn.backend() {
        Backend::Pg(conn) => conn,
        Backend::Sqlite(conn) => {
            use crate::schema_sqlite::user_settings;
            let text = json.to_string();
            let merged: String = diesel::insert_into(user_settings::table)
                .values((
                    user_settings::user_id.eq(user),
                    user_settings::settings.eq(&text),
                ))
                .on_conflict(user_settings::user_id)
                .do_update()
                .set((
                    user_settings::settings.eq(json_patch(
                        user_settings::settings,
                        excluded(user_settings::settings),
                    )),
                    user_settings::updated_at.eq(chrono::Utc::now()),
                ))
                .returning(user_settings::settings)
                .get_result(conn)
                .await
                .map_err(|e| Error::from(e).not_found_on("user_settings_user_id_fkey", "user"))?;
            return decode(parse_text(&merged)?);
        }
    };
    use crate::schema::user_settings;
    let merged: serde_json::Value = diesel::insert_into(user_settings::table)
        .values((
            user_settings::user_id.eq(user),
            user_settings::settings.eq(&json),
        ))
        .on_conflict(user_settings::user_id)
        .do_update()
        .set(
            user_settings::settings
                .eq(user_settings::settings.concat(excluded(user_settings::settings))),
        )
        .returning(user_settings::settings)
        .get_result(conn)
        .await
        .map_err(|e| Error::from(e).not_found_on("user_settings_user_id_fkey", "user"))?;
    decode(merged)
}

/// Forgets every setting of `user`: they read as the defaults again.
pub async fn reset(conn: &mut impl AnyConn, user: UserId) -> Result<()> {
    any_run!(conn, [user_settings] => {
        diesel::delete(user_settings::table.find(user))
            .execute(conn)
            .await?;
        Ok(())
    })
}
