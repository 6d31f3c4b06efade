//! `notification_targets`: where a user receives email or push. A target
//! (channel, address) is unique: registering a push token again moves it to
//! the registering user (the device changed hands).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::notifications::NotificationChannel;
use crate::error::validate;
use crate::inline_limit::InlineLimitDsl;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::schema::notification_targets as targets;
use crate::{Conn, Error, NotificationTargetId, Result, UserId};

/// A row of `notification_targets`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = targets, check_for_backend(diesel::pg::Pg))]
pub struct NotificationTarget {
    /// Primary key.
    pub id: NotificationTargetId,
    /// The user it reaches.
    pub user_id: UserId,
    /// Email or push.
    pub channel: NotificationChannel,
    /// The address or push token.
    pub address: String,
    /// When it was first registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

/// Input of `register_target`.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct RegisterTarget {
    /// Email or push (in-app needs no target).
    pub channel: NotificationChannel,
    /// The address or token, 1 to 1024 characters.
    #[validate(length(min = 1, max = 1024), custom(function = "crate::input::line"))]
    pub address: String,
}

#[derive(Insertable)]
#[diesel(table_name = targets, treat_none_as_default_value = false)]
pub(crate) struct InsertTarget<'a> {
    pub(crate) id: NotificationTargetId,
    pub(crate) user_id: UserId,
    pub(crate) channel: NotificationChannel,
    pub(crate) address: &'a str,
}

/// Registers (or re-assigns to this user) a target.
pub async fn register_target(
    conn: &mut Conn,
    user_id: UserId,
    input: &RegisterTarget,
) -> Result<NotificationTarget> {
    validate(input)?;
    if input.channel == NotificationChannel::InApp {
        return Err(Error::invalid(
            "channel",
            "channel",
            "in_app needs no target",
        ));
    }
    diesel::insert_into(targets::table)
        .values(InsertTarget {
            id: NotificationTargetId::new(),
            user_id,
            channel: input.channel,
            address: &input.address,
        })
        .on_conflict((targets::channel, targets::address))
        .do_update()
        .set(targets::user_id.eq(excluded(targets::user_id)))
        .returning(NotificationTarget::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| Error::from(e).not_found_on("notification_targets_user_id_fkey", "user"))
}

/// A page of the user's targets (one per device or address, not capped),
/// oldest first, after `after` (exclusive); `limit` 1..=100.
pub async fn list_for_user(
    conn: &mut Conn,
    user_id: UserId,
    after: Option<Cursor<NotificationTargetId>>,
    limit: i64,
) -> Result<Page<NotificationTarget, NotificationTargetId>> {
    check_limit(limit)?;
    let mut query = targets::table
        .filter(targets::user_id.eq(user_id))
        .order((targets::created_at.asc(), targets::id.asc()))
        .select(NotificationTarget::as_select())
        .into_boxed();
    if let Some(c) = after {
        query = query.filter(
            targets::created_at.gt(c.created_at).or(targets::created_at
                .eq(c.created_at)
                .and(targets::id.gt(c.id))),
        );
    }
    let rows = query.inline_limit(limit as u32 + 1).load(conn).await?;
    Ok(page_of(rows, limit, |r: &NotificationTarget| Cursor {
        created_at: r.created_at,
        id: r.id,
    }))
}

/// Removes one of the user's targets.
pub async fn delete_target(
    conn: &mut Conn,
    user_id: UserId,
    id: NotificationTargetId,
) -> Result<()> {
    let n = diesel::delete(targets::table.find(id).filter(targets::user_id.eq(user_id)))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(Error::NotFound {
            entity: "notification target",
        });
    }
    Ok(())
}
