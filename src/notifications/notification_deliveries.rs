//! `notification_deliveries`: one notification on one channel, worked off
//! by sender workers. A worker claims due deliveries (rows locked with
//! `FOR UPDATE SKIP LOCKED`, so two workers never get the same one), sends
//! them, and records each attempt.
//!
//! Senders serve every tenant, so these functions are not tenant-scoped:
//! they take delivery ids that only `claim_due` hands out.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::notifications::NotificationChannel;
use crate::error::validate;
use crate::render_once::RenderOnceDsl;
use crate::schema::notification_deliveries as deliveries;
use crate::{Conn, Error, NotificationDeliveryId, NotificationId, Result};

crate::sql_enum! {
    /// Where a delivery stands.
    pub enum DeliveryStatus: crate::schema::sql_types::DeliveryStatus {
        /// Waiting for a sender (first try or a retry).
        Pending => "pending",
        /// Claimed by a sender until `next_attempt_at`.
        Sending => "sending",
        /// Accepted by the provider.
        Sent => "sent",
        /// Given up.
        Failed => "failed",
    }
}

/// A row of `notification_deliveries`.
#[derive(
    Debug, Clone, PartialEq, Eq, Queryable, QueryableByName, Selectable, Identifiable, Serialize,
)]
#[diesel(table_name = deliveries, check_for_backend(diesel::pg::Pg))]
pub struct NotificationDelivery {
    /// Primary key.
    pub id: NotificationDeliveryId,
    /// The notification delivered.
    pub notification_id: NotificationId,
    /// The channel.
    pub channel: NotificationChannel,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts recorded so far.
    pub attempts: i32,
    /// When a sender may take it (while `sending`: when the claim lapses).
    pub next_attempt_at: DateTime<Utc>,
    /// The provider's message id once sent.
    pub provider_message_id: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = deliveries)]
pub(crate) struct InsertDelivery {
    pub(crate) id: NotificationDeliveryId,
    pub(crate) notification_id: NotificationId,
    pub(crate) channel: NotificationChannel,
}

/// Input of `record_attempt`: the result of one send.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct DeliveryAttempt {
    /// Whether the provider accepted the message.
    pub succeeded: bool,
    /// The provider's message id, at most 255 characters.
    #[validate(length(min = 1, max = 255))]
    pub provider_message_id: Option<String>,
    /// Why it failed (required when it did), 1 to 2000 characters.
    #[validate(length(min = 1, max = 2000))]
    pub error: Option<String>,
    /// On failure: when to try again; `None` gives up.
    pub retry_at: Option<DateTime<Utc>>,
}

/// Claims up to `limit` (1..=100) due deliveries of `channel` for
/// `lease_seconds` (1..=3600). A claim that is not recorded before its lease
/// ends becomes due again (the worker died). Concurrent workers never
/// receive the same delivery.
pub async fn claim_due(
    conn: &mut Conn,
    channel: NotificationChannel,
    limit: i64,
    lease_seconds: i32,
) -> Result<Vec<NotificationDelivery>> {
    if !(1..=100).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            "range",
            "must be between 1 and 100",
        ));
    }
    if !(1..=3600).contains(&lease_seconds) {
        return Err(Error::invalid(
            "lease_seconds",
            "range",
            "must be between 1 and 3600",
        ));
    }
    let mut claimed: Vec<NotificationDelivery> = diesel::sql_query(
        "UPDATE notification_deliveries
         SET status = 'sending', next_attempt_at = now() + $3 * interval '1 second'
         WHERE id IN (
             SELECT id FROM notification_deliveries
             WHERE channel = $1 AND status IN ('pending', 'sending') AND next_attempt_at <= now()
             ORDER BY next_attempt_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
         RETURNING *",
    )
    .bind::<crate::schema::sql_types::NotificationChannel, _>(channel)
    .bind::<BigInt, _>(limit)
    .bind::<Integer, _>(lease_seconds)
    .load(conn)
    .await?;
    claimed.sort_by_key(|d| (d.created_at, d.id));
    Ok(claimed)
}

/// Records the result of sending a claimed delivery: `sent`, `pending`
/// again (failed with `retry_at`) or `failed`. `IllegalTransition` when the
/// delivery is not currently claimed.
pub async fn record_attempt(
    conn: &mut Conn,
    id: NotificationDeliveryId,
    attempt: &DeliveryAttempt,
) -> Result<NotificationDelivery> {
    validate(attempt)?;
    if !attempt.succeeded && attempt.error.is_none() {
        return Err(Error::invalid(
            "error",
            "required",
            "is required when the attempt failed",
        ));
    }
    let now = Utc::now();
    let (status, next_at, sent_at) = match (attempt.succeeded, attempt.retry_at) {
        (true, _) => (DeliveryStatus::Sent, now, Some(now)),
        (false, Some(at)) => (DeliveryStatus::Pending, at, None),
        (false, None) => (DeliveryStatus::Failed, now, None),
    };
    let updated = diesel::update(
        deliveries::table
            .find(id)
            .filter(deliveries::status.eq(DeliveryStatus::Sending)),
    )
    .set((
        deliveries::status.eq(status),
        deliveries::attempts.eq(deliveries::attempts + 1),
        deliveries::next_attempt_at.eq(next_at),
        deliveries::sent_at.eq(sent_at),
        deliveries::provider_message_id.eq(attempt.provider_message_id.as_deref()),
        deliveries::last_error.eq(attempt.error.as_deref()),
    ))
    .returning(NotificationDelivery::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(d) = updated {
        return Ok(d);
    }
    let current: Option<DeliveryStatus> = deliveries::table
        .find(id)
        .select(deliveries::status)
        .render_once()
        .get_result(conn)
        .await
        .optional()?;
    match current {
        None => Err(Error::NotFound {
            entity: "notification delivery",
        }),
        Some(from) => Err(Error::IllegalTransition {
            from: from.to_string(),
            to: status.to_string(),
        }),
    }
}

/// The deliveries of one notification, by channel.
pub async fn list_for_notification(
    conn: &mut Conn,
    notification_id: NotificationId,
) -> Result<Vec<NotificationDelivery>> {
    Ok(deliveries::table
        .filter(deliveries::notification_id.eq(notification_id))
        .order(deliveries::channel.asc())
        .select(NotificationDelivery::as_select())
        .load(conn)
        .await?)
}
