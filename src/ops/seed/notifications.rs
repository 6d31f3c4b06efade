//! The notifications domain: every user's targets and the preferences that
//! differ from the default, then notifications with their deliveries.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::generator::{DAY, NOTIFICATION_KINDS, at, now, pick, tag};
use super::{Seeder, fill};
use crate::Result;
use crate::error::validate;
use crate::notifications::notification_deliveries::InsertDelivery;
use crate::notifications::notification_preferences::{InsertPreference, SetPreference};
use crate::notifications::notification_targets::{InsertTarget, RegisterTarget};
use crate::notifications::notifications::{InsertNotification, SendNotification};
use crate::notifications::{DeliveryStatus, NotificationChannel};
use crate::schema::{
    notification_deliveries, notification_preferences, notification_targets, notifications,
};
use rand::Rng;

/// What a delivery's attempts set.
struct DeliveryLife {
    status: DeliveryStatus,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    provider_message_id: Option<String>,
    last_error: Option<&'static str>,
    sent_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub(super) async fn targets_and_preferences(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let p = g.plan;
    let user_at = |u: u64| at(g.user_created(u));

    fill!(
        s,
        notification_targets,
        p.users,
        |u: u64, rows: &mut Vec<(u64, u64, RegisterTarget)>| {
            let mut rng = g.rng(tag("notification_targets"), u);
            let mut push = |slot: u64, target: RegisterTarget| {
                validate(&target).expect("a valid notification target");
                rows.push((u, slot, target));
            };
            push(
                0,
                RegisterTarget {
                    channel: NotificationChannel::Email,
                    address: g.email(u),
                },
            );
            if rng.random_bool(0.5) {
                push(
                    1,
                    RegisterTarget {
                        channel: NotificationChannel::Push,
                        address: format!("https://push.example.com/s{}/{}", g.seed, g.user_id(u)),
                    },
                );
            }
        },
        |(u, slot, target): &(u64, u64, RegisterTarget)| {
            let created = user_at(*u);
            (
                InsertTarget {
                    id: g.id(tag("notification_targets"), u * 2 + slot).into(),
                    user_id: g.user_id(*u),
                    channel: target.channel,
                    address: &target.address,
                },
                (
                    notification_targets::created_at.eq(created),
                    notification_targets::updated_at.eq(created),
                ),
            )
        }
    );

    fill!(
        s,
        notification_preferences,
        p.users,
        |u: u64, rows: &mut Vec<(u64, SetPreference)>| {
            let mut rng = g.rng(tag("notification_preferences"), u);
            // Only the choices that differ from the default are stored.
            for (kind, _) in NOTIFICATION_KINDS {
                if rng.random_bool(0.25) {
                    let preference = SetPreference {
                        kind: (*kind).to_owned(),
                        channel: pick(
                            &mut rng,
                            &[NotificationChannel::Email, NotificationChannel::Push],
                        ),
                        enabled: false,
                    };
                    validate(&preference).expect("a valid preference");
                    rows.push((u, preference));
                }
            }
        },
        |(u, preference): &(u64, SetPreference)| {
            (
                InsertPreference {
                    user_id: g.user_id(*u),
                    kind: &preference.kind,
                    channel: preference.channel,
                    enabled: preference.enabled,
                },
                notification_preferences::updated_at.eq(user_at(*u) + chrono::Duration::days(2)),
            )
        }
    );
    Ok(())
}

pub(super) async fn seed(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let p = g.plan;
    // When notification `i` was sent (the same draws for it and its deliveries).
    let sent = move |i: u64| {
        let u = i / p.notifications_per_user;
        let mut rng = g.rng(tag("notifications"), i);
        let kind = pick(&mut rng, NOTIFICATION_KINDS);
        (
            kind,
            g.user_created(u) + DAY + rng.random_range(0..55 * DAY),
            rng,
        )
    };

    fill!(
        s,
        notifications,
        p.notifications(),
        |i: u64, rows: &mut Vec<(u64, SendNotification, Option<DateTime<Utc>>)>| {
            let u = i / p.notifications_per_user;
            let ((kind, title), created, mut rng) = sent(i);
            let notification = SendNotification {
                user_id: g.user_id(u),
                kind: kind.to_owned(),
                title: title.to_owned(),
                body: rng
                    .random_bool(0.7)
                    .then(|| "Open the app to see the details.".to_owned()),
                data: json!({"link": format!("/n/{i}")}),
            };
            validate(&notification).expect("a valid notification");
            let read_at = rng
                .random_bool(0.6)
                .then(|| at(created + rng.random_range(60..3 * DAY)));
            rows.push((i, notification, read_at));
        },
        |(i, notification, read_at): &(u64, SendNotification, Option<DateTime<Utc>>)| {
            let u = i / p.notifications_per_user;
            (
                InsertNotification {
                    id: g.id(tag("notifications"), *i).into(),
                    tenant_id: g.tenant_id(g.home_tenant(u)),
                    user_id: notification.user_id,
                    kind: &notification.kind,
                    title: &notification.title,
                    body: notification.body.as_deref(),
                    data: &notification.data,
                },
                (
                    notifications::read_at.eq(*read_at),
                    notifications::created_at.eq(at(sent(*i).1)),
                ),
            )
        }
    );

    fill!(
        s,
        notification_deliveries,
        p.notifications(),
        |i: u64, rows: &mut Vec<(InsertDelivery, DeliveryLife)>| {
            let (_, created, _) = sent(i);
            let mut rng = g.rng(tag("notification_deliveries"), i);
            let delivery = |slot: u64, channel| InsertDelivery {
                id: g.id(tag("notification_deliveries"), i * 3 + slot).into(),
                notification_id: g.id(tag("notifications"), i).into(),
                channel,
            };
            rows.push((
                delivery(0, NotificationChannel::InApp),
                DeliveryLife {
                    status: DeliveryStatus::Sent,
                    attempts: 1,
                    next_attempt_at: at(created),
                    provider_message_id: None,
                    last_error: None,
                    sent_at: Some(at(created)),
                    created_at: at(created),
                    updated_at: at(created),
                },
            ));
            for (slot, channel, p_send) in [
                (1, NotificationChannel::Email, 0.6),
                (2, NotificationChannel::Push, 0.2),
            ] {
                if !rng.random_bool(p_send) {
                    continue;
                }
                let roll = rng.random_range(0..100);
                let (status, attempts, sent_at, error) = match roll {
                    0..85 => (
                        DeliveryStatus::Sent,
                        1,
                        Some(created + rng.random_range(1..120)),
                        None,
                    ),
                    85..93 => (
                        DeliveryStatus::Failed,
                        5,
                        None,
                        Some("550 mailbox unavailable"),
                    ),
                    _ => (DeliveryStatus::Pending, 0, None, None),
                };
                let next = match status {
                    DeliveryStatus::Pending => {
                        now() + chrono::Duration::minutes(rng.random_range(1..30))
                    }
                    _ => at(created + 600),
                };
                rows.push((
                    delivery(slot, channel),
                    DeliveryLife {
                        status,
                        attempts,
                        next_attempt_at: next,
                        provider_message_id: sent_at.map(|_| format!("msg_s{}_{i}_{slot}", g.seed)),
                        last_error: error,
                        sent_at: sent_at.map(at),
                        created_at: at(created),
                        updated_at: at(sent_at.unwrap_or(created + 600)),
                    },
                ));
            }
        },
        |(delivery, life): &(InsertDelivery, DeliveryLife)| {
            (
                delivery,
                (
                    notification_deliveries::status.eq(life.status),
                    notification_deliveries::attempts.eq(life.attempts),
                    notification_deliveries::next_attempt_at.eq(life.next_attempt_at),
                    notification_deliveries::provider_message_id
                        .eq(life.provider_message_id.as_deref()),
                    notification_deliveries::last_error.eq(life.last_error),
                    notification_deliveries::sent_at.eq(life.sent_at),
                    notification_deliveries::created_at.eq(life.created_at),
                    notification_deliveries::updated_at.eq(life.updated_at),
                ),
            )
        }
    );
    Ok(())
}
