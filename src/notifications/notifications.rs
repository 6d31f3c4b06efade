//! `notifications`: a message to one user within a tenant. Every function
//! takes the tenant id and the recipient, so nobody reads or marks another
//! tenant's (or user's) notifications.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use super::notification_deliveries::{InsertDelivery, NotificationDelivery};
use crate::error::validate;
use crate::inline_limit::InlineLimitDsl;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::schema::{
    notification_deliveries, notification_preferences, notification_targets, notifications,
};
use crate::{Conn, Error, NotificationDeliveryId, NotificationId, Result, TenantId, UserId};

crate::sql_enum! {
    /// How a notification reaches the user.
    pub enum NotificationChannel: crate::schema::sql_types::NotificationChannel {
        /// The in-app inbox.
        InApp => "in_app",
        /// An email to one of the user's addresses.
        Email => "email",
        /// A push message to the user's devices.
        Push => "push",
    }
}

/// A row of `notifications`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = notifications, check_for_backend(diesel::pg::Pg))]
pub struct Notification {
    /// Primary key.
    pub id: NotificationId,
    /// The tenant it belongs to.
    pub tenant_id: TenantId,
    /// The recipient.
    pub user_id: UserId,
    /// What happened, e.g. `comment.created`.
    pub kind: String,
    /// 1 to 200 characters.
    pub title: String,
    /// At most 5000 characters.
    pub body: Option<String>,
    /// Extra data for the client (a JSON object).
    pub data: serde_json::Value,
    /// When the user read it.
    pub read_at: Option<DateTime<Utc>>,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
}

/// Input of `send`.
#[derive(Debug, Clone, Deserialize, Validate)]
#[validate(schema(function = "data_json", skip_on_field_errors = false))]
pub struct SendNotification {
    /// The recipient.
    pub user_id: UserId,
    /// 1 to 64 characters.
    #[validate(length(min = 1, max = 64), custom(function = "crate::input::line"))]
    pub kind: String,
    /// 1 to 200 characters.
    #[validate(length(min = 1, max = 200), custom(function = "crate::input::line"))]
    pub title: String,
    /// At most 5000 characters.
    #[validate(length(max = 5000), custom(function = "crate::input::text"))]
    pub body: Option<String>,
    /// A JSON object.
    pub data: serde_json::Value,
}

fn data_json(input: &SendNotification) -> Result<(), ValidationError> {
    crate::input::json_field("data", &input.data, crate::input::Shape::Object)
}

/// Outcome of `send`: the notification and the deliveries it queued.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The stored notification.
    pub notification: Notification,
    /// One per channel the user's preferences allow.
    pub deliveries: Vec<NotificationDelivery>,
}

#[derive(Insertable)]
#[diesel(table_name = notifications, treat_none_as_default_value = false)]
pub(crate) struct InsertNotification<'a> {
    pub(crate) id: NotificationId,
    pub(crate) tenant_id: TenantId,
    pub(crate) user_id: UserId,
    pub(crate) kind: &'a str,
    pub(crate) title: &'a str,
    pub(crate) body: Option<&'a str>,
    pub(crate) data: &'a serde_json::Value,
}

/// Stores a notification and queues one delivery per allowed channel, in one
/// transaction. A channel is allowed unless the user disabled it for this
/// kind; email and push also need at least one registered target.
/// `NotFound` when the tenant or user does not exist.
pub async fn send(conn: &mut Conn, tenant_id: TenantId, input: &SendNotification) -> Result<Sent> {
    validate(input)?;
    conn.transaction(async |conn| {
        let notification = diesel::insert_into(notifications::table)
            .values(InsertNotification {
                id: NotificationId::new(),
                tenant_id,
                user_id: input.user_id,
                kind: &input.kind,
                title: &input.title,
                body: input.body.as_deref(),
                data: &input.data,
            })
            .returning(Notification::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| {
                Error::from(e)
                    .not_found_on("notifications_tenant_id_fkey", "tenant")
                    .not_found_on("notifications_user_id_fkey", "user")
            })?;
        let disabled: Vec<NotificationChannel> = notification_preferences::table
            .filter(notification_preferences::user_id.eq(input.user_id))
            .filter(notification_preferences::kind.eq(&input.kind))
            .filter(notification_preferences::enabled.eq(false))
            .select(notification_preferences::channel)
            .load(conn)
            .await?;
        let reachable: Vec<NotificationChannel> = notification_targets::table
            .filter(notification_targets::user_id.eq(input.user_id))
            .select(notification_targets::channel)
            .distinct()
            .load(conn)
            .await?;
        let rows: Vec<InsertDelivery> = NotificationChannel::ALL
            .iter()
            .copied()
            .filter(|c| !disabled.contains(c))
            .filter(|c| *c == NotificationChannel::InApp || reachable.contains(c))
            .map(|channel| InsertDelivery {
                id: NotificationDeliveryId::new(),
                notification_id: notification.id,
                channel,
            })
            .collect();
        let deliveries = if rows.is_empty() {
            Vec::new()
        } else {
            diesel::insert_into(notification_deliveries::table)
                .values(&rows)
                .returning(NotificationDelivery::as_returning())
                .get_results(conn)
                .await?
        };
        Ok(Sent {
            notification,
            deliveries,
        })
    })
    .await
}

/// A page of the user's notifications in the tenant, newest first.
pub async fn list_for_user(
    conn: &mut Conn,
    tenant_id: TenantId,
    user_id: UserId,
    after: Option<Cursor<NotificationId>>,
    limit: i64,
) -> Result<Page<Notification, NotificationId>> {
    check_limit(limit)?;
    let mut query = notifications::table
        .filter(notifications::tenant_id.eq(tenant_id))
        .filter(notifications::user_id.eq(user_id))
        .select(Notification::as_select())
        .order((notifications::created_at.desc(), notifications::id.desc()))
        .into_boxed();
    if let Some(c) = after {
        query = query
            .filter(notifications::created_at.le(c.created_at))
            .filter(
                notifications::created_at
                    .lt(c.created_at)
                    .or(notifications::id.lt(c.id)),
            );
    }
    let rows = query.inline_limit((limit + 1) as u32).load(conn).await?;
    Ok(page_of(rows, limit, |n: &Notification| Cursor {
        created_at: n.created_at,
        id: n.id,
    }))
}

/// How many of the user's notifications in the tenant are unread.
pub async fn unread_count(conn: &mut Conn, tenant_id: TenantId, user_id: UserId) -> Result<i64> {
    Ok(notifications::table
        .filter(notifications::tenant_id.eq(tenant_id))
        .filter(notifications::user_id.eq(user_id))
        .filter(notifications::read_at.is_null())
        .count()
        .get_result(conn)
        .await?)
}

/// Marks one notification read (keeping the first read time); returns it.
pub async fn mark_read(
    conn: &mut Conn,
    tenant_id: TenantId,
    user_id: UserId,
    id: NotificationId,
) -> Result<Notification> {
    diesel::update(
        notifications::table
            .find(id)
            .filter(notifications::tenant_id.eq(tenant_id))
            .filter(notifications::user_id.eq(user_id)),
    )
    .set(notifications::read_at.eq(diesel::dsl::sql::<
        diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
    >("coalesce(read_at, now())")))
    .returning(Notification::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or(Error::NotFound {
        entity: "notification",
    })
}

/// Marks every unread notification of the user in the tenant read; returns how many.
pub async fn mark_all_read(conn: &mut Conn, tenant_id: TenantId, user_id: UserId) -> Result<usize> {
    Ok(diesel::update(
        notifications::table
            .filter(notifications::tenant_id.eq(tenant_id))
            .filter(notifications::user_id.eq(user_id))
            .filter(notifications::read_at.is_null()),
    )
    .set(notifications::read_at.eq(diesel::dsl::sql::<
        diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
    >("now()")))
    .execute(conn)
    .await?)
}
