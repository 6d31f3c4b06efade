//! `notification_preferences`: per user, kind and channel, whether the
//! user wants it. No row means enabled.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, RunQueryDsl};
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

/// The most choices one user holds (kinds × channels turned on or off):
/// `list_for_user` returns at most this many, so it needs no pages.
pub const MAX_PER_USER: i64 = 500;

/// The `Conflict { constraint }` of `set_preference` for a new choice beyond
/// `MAX_PER_USER`.
pub const TOO_MANY: &str = "notification_preferences_per_user_limit";

/// Sets the user's choice for a kind on a channel. A new choice beyond
/// `MAX_PER_USER` is refused (`Conflict { constraint: TOO_MANY }`); changing
/// an existing one always works.
pub async fn set_preference(
    conn: &mut Conn,
    user_id: UserId,
    input: &SetPreference,
) -> Result<NotificationPreference> {
    use crate::schema::users;
    validate(input)?;
    conn.transaction(async |conn| {
        // The user's row lock serialises their new choices, so the count
        // below cannot be raced past the limit.
        users::table
            .find(user_id)
            .select(users::id)
            .for_no_key_update()
            .first::<UserId>(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound { entity: "user" })?;
        let others: i64 = prefs::table
            .filter(prefs::user_id.eq(user_id))
            .filter(
                prefs::kind
                    .ne(&input.kind)
                    .or(prefs::channel.ne(input.channel)),
            )
            .count()
            .get_result(conn)
            .await?;
        if others >= MAX_PER_USER {
            return Err(Error::Conflict {
                constraint: TOO_MANY.into(),
                message: format!("a user holds at most {MAX_PER_USER} notification preferences"),
            });
        }
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
            .map_err(|e| {
                Error::from(e).not_found_on("notification_preferences_user_id_fkey", "user")
            })
    })
    .await
}

/// The user's explicit choices: at most `MAX_PER_USER`.
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
