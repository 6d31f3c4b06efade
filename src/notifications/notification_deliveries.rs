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
    /// Claims made so far (each counts as an attempt, recorded or not).
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
#[diesel(table_name = deliveries, treat_none_as_default_value = false)]
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
    #[validate(length(min = 1, max = 255), custom(function = "crate::input::line"))]
    pub provider_message_id: Option<String>,
    /// Why it failed (required when it did), 1 to 2000 characters.
    #[validate(length(min = 1, max = 2000), custom(function = "crate::input::text"))]
    pub error: Option<String>,
    /// On failure: when to try again; `None` gives up.
    pub retry_at: Option<DateTime<Utc>>,
}

/// How many claims a delivery gets. A claim counts as an attempt when it is
/// made (so a sender that crashes before recording still uses one up); after
/// the last one the delivery is dead-lettered (`failed`) instead of handed out
/// again.
pub const MAX_DELIVERY_ATTEMPTS: i32 = 5;

/// Proof of one claim of a delivery: its id and the attempt number the claim
/// was given. `record_attempt` accepts only the newest claim, so a worker whose
/// lease lapsed (and whose delivery was claimed again) cannot overwrite the
/// newer claim's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeliveryClaim {
    /// The claimed delivery.
    pub id: NotificationDeliveryId,
    /// The attempt this claim is (1 for the first).
    pub attempt: i32,
}

/// A delivery handed to a sender by `claim_due`, with the claim to present
/// when recording its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimedDelivery {
    /// The delivery as claimed (`sending`, attempts already counted).
    pub delivery: NotificationDelivery,
    /// What `record_attempt` needs.
    pub claim: DeliveryClaim,
}

/// The columns `claim_due` returns, listed: a cached statement with `*` would
/// break on every warm connection once a migration adds a column.
const DELIVERY_COLUMNS: &str = "id, notification_id, channel, status, attempts, next_attempt_at, \
     provider_message_id, last_error, sent_at, created_at, updated_at";

/// Claims up to `limit` (1..=100) due deliveries of `channel` for
/// `lease_seconds` (1..=3600). A claim that is not recorded before its lease
/// ends becomes due again (the worker died). Concurrent workers never
/// receive the same delivery. Every claim counts an attempt; a due delivery
/// that already had `MAX_DELIVERY_ATTEMPTS` claims is marked `failed`
/// (dead-lettered) instead, in the same statement, and not returned.
///
/// It claims across tenants: under row-level security a delivery worker
/// calls it on a `Db` given `Ctx::system("delivery worker")` (the policies
/// would otherwise show it no tenant's deliveries).
pub async fn claim_due(
    conn: &mut Conn,
    channel: NotificationChannel,
    limit: i64,
    lease_seconds: i32,
) -> Result<Vec<ClaimedDelivery>> {
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
    let sql = format!(
        "UPDATE notification_deliveries
         SET status = CASE WHEN attempts >= $4 THEN 'failed'::delivery_status
                           ELSE 'sending'::delivery_status END,
             attempts = CASE WHEN attempts >= $4 THEN attempts ELSE attempts + 1 END,
             next_attempt_at = CASE WHEN attempts >= $4 THEN next_attempt_at
                                    ELSE now() + $3 * interval '1 second' END,
             last_error = CASE WHEN attempts >= $4
                               THEN 'gave up after ' || attempts || ' attempts without a result'
                               ELSE last_error END
         WHERE id IN (
             SELECT id FROM notification_deliveries
             WHERE channel = $1 AND status IN ('pending', 'sending') AND next_attempt_at <= now()
             ORDER BY next_attempt_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
         RETURNING {DELIVERY_COLUMNS}"
    );
    let mut claimed: Vec<NotificationDelivery> = diesel::sql_query(sql)
        .bind::<crate::schema::sql_types::NotificationChannel, _>(channel)
        .bind::<BigInt, _>(limit)
        .bind::<Integer, _>(lease_seconds)
        .bind::<Integer, _>(MAX_DELIVERY_ATTEMPTS)
        .load(conn)
        .await?;
    claimed.retain(|d| d.status == DeliveryStatus::Sending);
    claimed.sort_by_key(|d| (d.created_at, d.id));
    Ok(claimed
        .into_iter()
        .map(|delivery| ClaimedDelivery {
            claim: DeliveryClaim {
                id: delivery.id,
                attempt: delivery.attempts,
            },
            delivery,
        })
        .collect())
}

/// Records the result of sending a claimed delivery: `sent`, `pending`
/// again (failed with `retry_at`, while attempts remain) or `failed`.
/// `Stale` when `claim` is not the delivery's newest claim (its lease lapsed
/// and another sender claimed it): the late result is dropped.
/// `IllegalTransition` when there is no such claim (never claimed, or this
/// claim's result was already recorded).
pub async fn record_attempt(
    conn: &mut Conn,
    claim: DeliveryClaim,
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
    let attempts_left = claim.attempt < MAX_DELIVERY_ATTEMPTS;
    let (status, next_at, sent_at) = match (attempt.succeeded, attempt.retry_at) {
        (true, _) => (DeliveryStatus::Sent, now, Some(now)),
        (false, Some(at)) if attempts_left => (DeliveryStatus::Pending, at, None),
        (false, _) => (DeliveryStatus::Failed, now, None),
    };
    let updated = diesel::update(
        deliveries::table
            .find(claim.id)
            .filter(deliveries::status.eq(DeliveryStatus::Sending))
            .filter(deliveries::attempts.eq(claim.attempt)),
    )
    .set((
        deliveries::status.eq(status),
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
    let current: Option<(DeliveryStatus, i32)> = deliveries::table
        .find(claim.id)
        .select((deliveries::status, deliveries::attempts))
        .render_once()
        .get_result(conn)
        .await
        .optional()?;
    match current {
        None => Err(Error::NotFound {
            entity: "notification delivery",
        }),
        Some((_, attempts)) if attempts > claim.attempt => Err(Error::Stale {
            entity: "notification delivery",
            expected: claim.attempt.into(),
        }),
        Some((from, _)) => Err(Error::IllegalTransition {
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
