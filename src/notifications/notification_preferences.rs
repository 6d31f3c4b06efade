//! `notification_preferences`: per user, kind and channel, whether the
//! user wants it. No row means enabled.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::notifications::NotificationChannel;
use crate::error::validate;
use crate::schema::notification_preferences as prefs;
use crate::{Conn, Error, Result, UserId};

/// A row of `notification_preferences`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = prefs, check_for_backend(diesel::pg::Pg))]
pub struct NotificationPreference {
    /// The user.
    pub user_id: UserId,
    /// The notification kind.
    pub kind: String,
    /// The channel.
    pub channel: NotificationChannel,
    /// Whether the user receives this kind on this channel.
    pub enabled: bool,
    /// When it last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

/// Input of `set_preference`.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct SetPreference {
    /// 1 to 64 characters.
    #[validate(length(min = 1, max = 64), custom(function = "crate::input::line"))]
    pub kind: String,
    /// The channel.
    pub channel: NotificationChannel,
    /// On or off.
    pub enabled: bool,
}

#[derive(Insertable)]
#[diesel(table_name = prefs, treat_none_as_default_value = false)]
pub(crate) struct InsertPreference<'a> {
    pub(crate) user_id: UserId,
    pub(crate) kind: &'a str,
    pub(crate) channel: NotificationChannel,
    pub(crate) enabled: bool,
}

/// Sets the user's choice for a kind on a channel.
pub async fn set_preference(
    conn: &mut Conn,
    user_id: UserId,
    input: &SetPreference,
) -> Result<NotificationPreference> {
    validate(input)?;
    diesel::insert_into(prefs::table)
        .values(InsertPreference {
            user_id,
            kind: &input.kind,
            channel: input.channel,
            enabled: input.enabled,
        })
        .on_conflict((prefs::user_id, prefs::kind, prefs::channel))
        .do_update()
        .set(prefs::enabled.eq(excluded(prefs::enabled)))
        .returning(NotificationPreference::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| Error::from(e).not_found_on("notification_preferences_user_id_fkey", "user"))
}

/// The user's explicit choices.
pub async fn list_for_user(
    conn: &mut Conn,
    user_id: UserId,
) -> Result<Vec<NotificationPreference>> {
    Ok(prefs::table
        .filter(prefs::user_id.eq(user_id))
        .order((prefs::kind.asc(), prefs::channel.asc()))
        .select(NotificationPreference::as_select())
        .load(conn)
        .await?)
}
