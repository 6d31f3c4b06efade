//! The billing domain: one subscription per tenant and one for every
//! twentieth user, each with the provider events that led to it.

use diesel::prelude::*;
use serde_json::json;

use super::generator::{DAY, HOUR, PLANS, at, now, pick, tag};
use super::{Seeder, fill};
use crate::Result;
use crate::billing::subscription_events::{InsertEvent, InsertSubscription};
use crate::billing::subscriptions::{Owner, SubscriptionState};
use crate::billing::{EventOutcome, ProviderEvent, SubscriptionStatus};
use crate::error::validate;
use crate::schema::{subscription_events, subscriptions};
use rand::Rng;

pub(super) async fn seed(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let p = g.plan;
    // When subscription `i` started: a day after its tenant or user.
    let started = move |i: u64| {
        if i < p.tenants {
            g.tenant_created(i) + DAY
        } else {
            g.user_created((i - p.tenants) * 20) + DAY
        }
    };

    // Subscription `i` as its provider last described it, and when.
    let state = move |i: u64| {
        let mut rng = g.rng(tag("subscriptions"), i);
        let owner = if i < p.tenants {
            Owner::Tenant(g.tenant_id(i))
        } else {
            Owner::User(g.user_id((i - p.tenants) * 20))
        };
        use SubscriptionStatus::*;
        let status = pick(
            &mut rng,
            &[Active, Active, Active, Active, Trialing, PastDue, Canceled],
        );
        let last_event = started(i) + rng.random_range(HOUR..40 * DAY);
        let plan = pick(&mut rng, PLANS).to_owned();
        let state = SubscriptionState {
            owner,
            provider_customer_id: format!("cus_s{}_{i}", g.seed),
            provider_subscription_id: format!("sub_s{}_{i}", g.seed),
            plan,
            status,
            current_period_end: (status != Canceled)
                .then(|| now() + chrono::Duration::days(rng.random_range(1..30))),
            cancel_at_period_end: status == Active && rng.random_bool(0.1),
        };
        (state, last_event)
    };

    fill!(
        s,
        subscriptions,
        p.subscriptions(),
        |i: u64, rows: &mut Vec<(u64, SubscriptionState, i64)>| {
            let (state, last_event) = state(i);
            validate(&state).expect("a valid subscription");
            rows.push((i, state, last_event));
        },
        |(i, state, last_event): &(u64, SubscriptionState, i64)| {
            let (user_id, tenant_id) = match state.owner {
                Owner::User(u) => (Some(u), None),
                Owner::Tenant(t) => (None, Some(t)),
            };
            (
                InsertSubscription {
                    id: g.id(tag("subscriptions"), *i).into(),
                    user_id,
                    tenant_id,
                    provider_customer_id: &state.provider_customer_id,
                    provider_subscription_id: &state.provider_subscription_id,
                    plan: &state.plan,
                    status: state.status,
                    current_period_end: state.current_period_end,
                    cancel_at_period_end: state.cancel_at_period_end,
                    last_event_at: at(*last_event),
                },
                (
                    subscriptions::created_at.eq(at(started(*i))),
                    subscriptions::updated_at.eq(at(*last_event)),
                ),
            )
        }
    );

    fill!(
        s,
        subscription_events,
        p.subscriptions(),
        |i: u64, rows: &mut Vec<(u64, u64, ProviderEvent)>| {
            let mut rng = g.rng(tag("subscription_events"), i);
            let events = [
                "customer.subscription.created",
                "invoice.paid",
                "customer.subscription.updated",
            ];
            for (k, event_type) in events.iter().enumerate().take(rng.random_range(1..=3)) {
                let event = ProviderEvent {
                    provider_event_id: format!("evt_s{}_{i}_{k}", g.seed),
                    event_type: (*event_type).to_owned(),
                    occurred_at: at(started(i) + k as i64 * 10 * DAY),
                    payload: json!({
                        "type": event_type,
                        "data": {"object": {"id": format!("sub_s{}_{i}", g.seed)}},
                    }),
                    subscription: state(i).0,
                };
                validate(&event).expect("a valid provider event");
                rows.push((i, k as u64, event));
            }
        },
        |(i, k, event): &(u64, u64, ProviderEvent)| {
            (
                InsertEvent {
                    id: g.id(tag("subscription_events"), i * 4 + k).into(),
                    provider_event_id: &event.provider_event_id,
                    event_type: &event.event_type,
                    payload: &event.payload,
                    occurred_at: event.occurred_at,
                },
                (
                    subscription_events::subscription_id.eq(Some(crate::SubscriptionId::from(
                        g.id(tag("subscriptions"), *i),
                    ))),
                    subscription_events::received_at
                        .eq(event.occurred_at + chrono::Duration::seconds(2)),
                    subscription_events::processed_at
                        .eq(Some(event.occurred_at + chrono::Duration::seconds(3))),
                    subscription_events::outcome.eq(Some(EventOutcome::Applied)),
                ),
            )
        }
    );
    Ok(())
}
