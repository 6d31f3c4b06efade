//! Billing: subscriptions mirrored from the payment provider (Stripe) and
//! the webhook events that change them. Tables created in
//! `migrations/2026-11-21-140300_create_billing`.

pub mod subscription_events;
pub mod subscriptions;

pub use subscription_events::{Applied, EventOutcome, ProviderEvent, SubscriptionEvent};
pub use subscriptions::{Owner, Subscription, SubscriptionState, SubscriptionStatus};
