//! `subscription_events`: the provider's webhook events, each recorded once.
//!
//! Applying an event is idempotent (the provider event id is unique: a
//! redelivery finds the first recording and writes nothing) and order-safe
//! (the subscription keeps the provider timestamp of the last event applied;
//! an older event is recorded as `stale` and changes nothing).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::subscriptions::{Owner, Subscription, SubscriptionState, SubscriptionStatus};
use crate::error::validate;
use crate::render_once::RenderOnceDsl;
use crate::schema::{subscription_events, subscriptions};
use crate::{Conn, Error, Result, SubscriptionEventId, SubscriptionId, TenantId, UserId};

crate::sql_enum! {
    /// What applying an event did.
    pub enum EventOutcome: crate::schema::sql_types::SubscriptionEventOutcome {
        /// The subscription now reflects the event.
        Applied => "applied",
        /// A newer event was already applied; the event changed nothing.
        Stale => "stale",
    }
}

/// A row of `subscription_events`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = subscription_events, check_for_backend(diesel::pg::Pg))]
pub struct SubscriptionEvent {
    /// Primary key.
    pub id: SubscriptionEventId,
    /// The provider's event id (`evt_...`), unique.
    pub provider_event_id: String,
    /// The provider's event type (`customer.subscription.updated`).
    pub event_type: String,
    /// The subscription it concerned.
    pub subscription_id: Option<SubscriptionId>,
    /// The raw event.
    pub payload: serde_json::Value,
    /// When the provider says it happened.
    pub occurred_at: DateTime<Utc>,
    /// When it was first received.
    pub received_at: DateTime<Utc>,
    /// When it was applied (or found stale).
    pub processed_at: Option<DateTime<Utc>>,
    /// What applying it did.
    pub outcome: Option<EventOutcome>,
}

fn payload_json(event: &ProviderEvent) -> Result<(), validator::ValidationError> {
    crate::input::json_field("payload", &event.payload, crate::input::Shape::Any)
}

/// Input of `apply_event`: a verified webhook event, already parsed.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[validate(schema(function = "payload_json", skip_on_field_errors = false))]
pub struct ProviderEvent {
    /// The provider's event id, 1 to 255 characters.
    #[validate(length(min = 1, max = 255), custom(function = "crate::input::line"))]
    pub provider_event_id: String,
    /// The event type, 1 to 255 characters.
    #[validate(length(min = 1, max = 255), custom(function = "crate::input::line"))]
    pub event_type: String,
    /// The provider's timestamp of the event.
    pub occurred_at: DateTime<Utc>,
    /// The raw event, kept for audit (at most 1 MiB, see `crate::input::json`).
    pub payload: serde_json::Value,
    /// The subscription as of this event.
    #[validate(nested)]
    pub subscription: SubscriptionState,
}

/// Outcome of `apply_event`.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The recorded event (the first recording, for a duplicate).
    pub event: SubscriptionEvent,
    /// What the (first) application did.
    pub outcome: EventOutcome,
    /// True when this event id had been recorded before: nothing was written.
    pub duplicate: bool,
}

#[derive(Insertable)]
#[diesel(table_name = subscription_events, treat_none_as_default_value = false)]
pub(crate) struct InsertEvent<'a> {
    pub(crate) id: SubscriptionEventId,
    pub(crate) provider_event_id: &'a str,
    pub(crate) event_type: &'a str,
    pub(crate) payload: &'a serde_json::Value,
    pub(crate) occurred_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = subscriptions, treat_none_as_default_value = false)]
pub(crate) struct InsertSubscription<'a> {
    pub(crate) id: SubscriptionId,
    pub(crate) user_id: Option<UserId>,
    pub(crate) tenant_id: Option<TenantId>,
    pub(crate) provider_customer_id: &'a str,
    pub(crate) provider_subscription_id: &'a str,
    pub(crate) plan: &'a str,
    pub(crate) status: SubscriptionStatus,
    pub(crate) current_period_end: Option<DateTime<Utc>>,
    pub(crate) cancel_at_period_end: bool,
    pub(crate) last_event_at: DateTime<Utc>,
}

/// Records a provider event and applies it to its subscription, in one
/// transaction. A redelivered event returns the first outcome with
/// `duplicate: true`; an event older than the last applied one is recorded
/// as `Stale`. `NotFound` when a new subscription's owner does not exist.
pub async fn apply_event(conn: &mut Conn, input: &ProviderEvent) -> Result<Applied> {
    validate(input)?;
    conn.transaction(async |conn| {
        // A concurrent delivery of the same id waits here on the unique index
        // until the first commits, then finds its row.
        let inserted = diesel::insert_into(subscription_events::table)
            .values(InsertEvent {
                id: SubscriptionEventId::new(),
                provider_event_id: &input.provider_event_id,
                event_type: &input.event_type,
                payload: &input.payload,
                occurred_at: input.occurred_at,
            })
            .on_conflict(subscription_events::provider_event_id)
            .do_nothing()
            .returning(SubscriptionEvent::as_returning())
            .get_result(conn)
            .await
            .optional()?;
        let Some(event) = inserted else {
            let event = find_by_provider_event_id(conn, &input.provider_event_id).await?;
            let outcome = event.outcome.unwrap_or(EventOutcome::Stale);
            return Ok(Applied {
                event,
                outcome,
                duplicate: true,
            });
        };

        let s = &input.subscription;
        let (user_id, tenant_id) = match s.owner {
            Owner::User(u) => (Some(u), None),
            Owner::Tenant(t) => (None, Some(t)),
        };
        // Insert, or overwrite only when this event is not older than the
        // last one applied; the row lock of ON CONFLICT serialises
        // concurrent events of one subscription, so the newest always wins.
        let upsert = diesel::insert_into(subscriptions::table)
            .values(InsertSubscription {
                id: SubscriptionId::new(),
                user_id,
                tenant_id,
                provider_customer_id: &s.provider_customer_id,
                provider_subscription_id: &s.provider_subscription_id,
                plan: &s.plan,
                status: s.status,
                current_period_end: s.current_period_end,
                cancel_at_period_end: s.cancel_at_period_end,
                last_event_at: input.occurred_at,
            })
            .on_conflict(subscriptions::provider_subscription_id)
            .do_update()
            .set((
                subscriptions::provider_customer_id
                    .eq(excluded(subscriptions::provider_customer_id)),
                subscriptions::plan.eq(excluded(subscriptions::plan)),
                subscriptions::status.eq(excluded(subscriptions::status)),
                subscriptions::current_period_end.eq(excluded(subscriptions::current_period_end)),
                subscriptions::cancel_at_period_end
                    .eq(excluded(subscriptions::cancel_at_period_end)),
                subscriptions::last_event_at.eq(excluded(subscriptions::last_event_at)),
            ));
        let applied: Option<Subscription> = diesel::query_dsl::methods::FilterDsl::filter(
            upsert,
            // Ties (same provider second) go to the later arrival: providers
            // usually deliver in order, and equal means "not older".
            subscriptions::last_event_at.le(excluded(subscriptions::last_event_at)),
        )
        .returning(Subscription::as_returning())
        .get_result(conn)
        .await
        .optional()
        .map_err(|e| {
            Error::from(e)
                .not_found_on("subscriptions_user_id_fkey", "user")
                .not_found_on("subscriptions_tenant_id_fkey", "tenant")
        })?;
        let (outcome, subscription_id) = match applied {
            Some(sub) => (EventOutcome::Applied, sub.id),
            None => (
                EventOutcome::Stale,
                subscriptions::table
                    .filter(subscriptions::provider_subscription_id.eq(&s.provider_subscription_id))
                    .select(subscriptions::id)
                    .render_once()
                    .get_result(conn)
                    .await?,
            ),
        };
        let event = diesel::update(subscription_events::table.find(event.id))
            .set((
                subscription_events::subscription_id.eq(subscription_id),
                subscription_events::outcome.eq(outcome),
                subscription_events::processed_at.eq(diesel::dsl::now),
            ))
            .returning(SubscriptionEvent::as_returning())
            .get_result(conn)
            .await?;
        Ok(Applied {
            event,
            outcome,
            duplicate: false,
        })
    })
    .await
}

/// The event with this provider id.
pub async fn find_by_provider_event_id(
    conn: &mut Conn,
    provider_event_id: &str,
) -> Result<SubscriptionEvent> {
    subscription_events::table
        .filter(subscription_events::provider_event_id.eq(provider_event_id))
        .select(SubscriptionEvent::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound {
            entity: "subscription event",
        })
}
