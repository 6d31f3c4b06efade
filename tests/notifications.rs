//! Notifications, preferences, targets and delivery claiming against a real
//! PostgreSQL, including concurrent sender workers.

mod common;

use std::collections::HashSet;

use chrono::{Duration, Utc};
use common::{TestDb, user};
use database::notifications::notification_deliveries::{
    self, DeliveryClaim, MAX_DELIVERY_ATTEMPTS, claim_due, record_attempt,
};
use database::notifications::{
    DeliveryAttempt, DeliveryStatus, NotificationChannel, RegisterTarget, SendNotification,
    SetPreference, notification_preferences, notification_targets, notifications,
};
use database::{Error, NotificationDeliveryId, NotificationId, TenantId, UserId};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use serde_json::json;

async fn tenant(t: &TestDb, slug: &str) -> TenantId {
    let id = TenantId::new();
    diesel::sql_query("INSERT INTO tenants (id, name, slug) VALUES ($1, $2, $2)")
        .bind::<diesel::sql_types::Uuid, _>(id.into_uuid())
        .bind::<diesel::sql_types::Text, _>(slug)
        .execute(&mut *t.conn().await)
        .await
        .unwrap();
    id
}

fn note(user_id: UserId, kind: &str, title: &str) -> SendNotification {
    SendNotification {
        user_id,
        kind: kind.into(),
        title: title.into(),
        body: Some("body".into()),
        data: json!({ "link": "/x" }),
    }
}

fn channels(sent: &notifications::Sent) -> Vec<NotificationChannel> {
    let mut c: Vec<_> = sent.deliveries.iter().map(|d| d.channel).collect();
    c.sort_by_key(|c| c.as_str());
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn send_queues_one_delivery_per_allowed_channel() {
    let t = TestDb::new().await;
    let acme = tenant(&t, "acme").await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;
    use NotificationChannel::*;

    // No targets: in-app only.
    let sent = notifications::send(&mut conn, acme, &note(ann, "comment", "Hi"))
        .await
        .unwrap();
    assert_eq!(channels(&sent), vec![InApp]);
    assert!(
        sent.deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Pending)
    );

    notification_targets::register_target(
        &mut conn,
        ann,
        &RegisterTarget {
            channel: Email,
            address: "ann@example.com".into(),
        },
    )
    .await
    .unwrap();
    notification_targets::register_target(
        &mut conn,
        ann,
        &RegisterTarget {
            channel: Push,
            address: "tok-1".into(),
        },
    )
    .await
    .unwrap();
    let sent = notifications::send(&mut conn, acme, &note(ann, "comment", "Hi"))
        .await
        .unwrap();
    assert_eq!(channels(&sent), vec![Email, InApp, Push]);

    // Push off for comments; in-app off too; other kinds unaffected.
    for channel in [Push, InApp] {
        notification_preferences::set_preference(
            &mut conn,
            ann,
            &SetPreference {
                kind: "comment".into(),
                channel,
                enabled: false,
            },
        )
        .await
        .unwrap();
    }
    let sent = notifications::send(&mut conn, acme, &note(ann, "comment", "Hi"))
        .await
        .unwrap();
    assert_eq!(channels(&sent), vec![Email]);
    let sent = notifications::send(&mut conn, acme, &note(ann, "mention", "Hi"))
        .await
        .unwrap();
    assert_eq!(channels(&sent), vec![Email, InApp, Push]);
    // Re-enabling is an update of the same preference row.
    let p = notification_preferences::set_preference(
        &mut conn,
        ann,
        &SetPreference {
            kind: "comment".into(),
            channel: Push,
            enabled: true,
        },
    )
    .await
    .unwrap();
    assert!(p.enabled);
    assert_eq!(
        notification_preferences::list_for_user(&mut conn, ann)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        notification_deliveries::list_for_notification(&mut conn, sent.notification.id)
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_bad_input_writes_nothing() {
    let t = TestDb::new().await;
    let acme = tenant(&t, "acme").await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;
    let mut bad = note(ann, "", "");
    bad.data = json!([1, 2]);
    bad.body = Some("b".repeat(5001));
    let err = notifications::send(&mut conn, acme, &bad)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["body", "data", "kind", "title"]);
    let err = notifications::send(&mut conn, TenantId::new(), &note(ann, "k", "t"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "tenant" }));
    let err = notifications::send(&mut conn, acme, &note(UserId::new(), "k", "t"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }));
    assert_eq!(t.count("notifications").await, 0);
    assert_eq!(t.count("notification_deliveries").await, 0);

    let err = notification_preferences::set_preference(
        &mut conn,
        ann,
        &SetPreference {
            kind: "".into(),
            channel: NotificationChannel::Push,
            enabled: false,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["kind"]);
    let err = notification_preferences::set_preference(
        &mut conn,
        UserId::new(),
        &SetPreference {
            kind: "k".into(),
            channel: NotificationChannel::Push,
            enabled: false,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }));
    assert_eq!(t.count("notification_preferences").await, 0);

    // The per-user limit: a new choice beyond it is refused, a change of an
    // existing one is not.
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut *conn,
        &format!(
            "INSERT INTO notification_preferences (user_id, kind, channel, enabled) \
             SELECT '{}', 'kind-' || n, 'push', false FROM generate_series(1, {}) n",
            ann.into_uuid(),
            notification_preferences::MAX_PER_USER
        ),
    )
    .await
    .unwrap();
    let choice = |kind: &str| SetPreference {
        kind: kind.into(),
        channel: NotificationChannel::Push,
        enabled: true,
    };
    let err = notification_preferences::set_preference(&mut conn, ann, &choice("one-more"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { ref constraint, .. } if constraint == notification_preferences::TOO_MANY),
        "{err:?}"
    );
    notification_preferences::set_preference(&mut conn, ann, &choice("kind-7"))
        .await
        .unwrap();
    assert_eq!(
        t.count("notification_preferences").await,
        notification_preferences::MAX_PER_USER
    );

    let err = notification_targets::register_target(
        &mut conn,
        ann,
        &RegisterTarget {
            channel: NotificationChannel::Push,
            address: "".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["address"]);
    let err = notification_targets::register_target(
        &mut conn,
        ann,
        &RegisterTarget {
            channel: NotificationChannel::InApp,
            address: "x".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["channel"]);
    assert_eq!(t.count("notification_targets").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_are_unique_and_move_between_users() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let bob = user(&t, "bob@example.com").await;
    let mut conn = t.conn().await;
    let push = |a: &str| RegisterTarget {
        channel: NotificationChannel::Push,
        address: a.into(),
    };
    let first = notification_targets::register_target(&mut conn, ann, &push("tok"))
        .await
        .unwrap();
    let moved = notification_targets::register_target(&mut conn, bob, &push("tok"))
        .await
        .unwrap();
    assert_eq!(moved.id, first.id);
    assert_eq!(moved.user_id, bob);
    assert!(
        notification_targets::list_for_user(&mut conn, ann, None, 100)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let page = notification_targets::list_for_user(&mut conn, bob, None, 1)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, first.id);
    assert!(
        page.next.is_none(),
        "bob's only target: the first page is the last"
    );
    assert!(matches!(
        notification_targets::delete_target(&mut conn, ann, first.id).await,
        Err(Error::NotFound { .. })
    ));
    notification_targets::delete_target(&mut conn, bob, first.id)
        .await
        .unwrap();
    assert_eq!(t.count("notification_targets").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_unread_and_mark_read_stay_inside_tenant_and_user() {
    let t = TestDb::new().await;
    let acme = tenant(&t, "acme").await;
    let globex = tenant(&t, "globex").await;
    let ann = user(&t, "ann@example.com").await;
    let bob = user(&t, "bob@example.com").await;
    let mut conn = t.conn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            notifications::send(&mut conn, acme, &note(ann, "k", &format!("n{i}")))
                .await
                .unwrap()
                .notification
                .id,
        );
    }
    let elsewhere = notifications::send(&mut conn, globex, &note(ann, "k", "other tenant"))
        .await
        .unwrap();
    notifications::send(&mut conn, acme, &note(bob, "k", "bob's"))
        .await
        .unwrap();

    let p1 = notifications::list_for_user(&mut conn, acme, ann, None, 2)
        .await
        .unwrap();
    let p2 = notifications::list_for_user(&mut conn, acme, ann, p1.next, 2)
        .await
        .unwrap();
    let p3 = notifications::list_for_user(&mut conn, acme, ann, p2.next, 2)
        .await
        .unwrap();
    assert!(p3.next.is_none());
    let titles: Vec<_> = [p1, p2, p3]
        .iter()
        .flat_map(|p| p.items.iter().map(|n| n.title.clone()))
        .collect();
    assert_eq!(titles, vec!["n4", "n3", "n2", "n1", "n0"]);
    let err = notifications::list_for_user(&mut conn, acme, ann, None, 0)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["limit"]);

    assert_eq!(
        notifications::unread_count(&mut conn, acme, ann)
            .await
            .unwrap(),
        5
    );
    let read = notifications::mark_read(&mut conn, acme, ann, ids[0])
        .await
        .unwrap();
    let first_read = read.read_at.unwrap();
    let again = notifications::mark_read(&mut conn, acme, ann, ids[0])
        .await
        .unwrap();
    assert_eq!(again.read_at, Some(first_read));
    // Another tenant's or user's notification is not found.
    for (tenant, user, id) in [
        (acme, ann, elsewhere.notification.id),
        (acme, bob, ids[1]),
        (globex, ann, ids[1]),
        (acme, ann, NotificationId::new()),
    ] {
        assert!(matches!(
            notifications::mark_read(&mut conn, tenant, user, id).await,
            Err(Error::NotFound {
                entity: "notification"
            })
        ));
    }
    assert_eq!(
        notifications::unread_count(&mut conn, acme, ann)
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        notifications::mark_all_read(&mut conn, acme, ann)
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        notifications::unread_count(&mut conn, acme, ann)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        notifications::unread_count(&mut conn, globex, ann)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        notifications::unread_count(&mut conn, acme, bob)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_senders_never_claim_the_same_delivery() {
    let t = TestDb::new().await;
    let acme = tenant(&t, "acme").await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;
    notification_targets::register_target(
        &mut conn,
        ann,
        &RegisterTarget {
            channel: NotificationChannel::Push,
            address: "tok".into(),
        },
    )
    .await
    .unwrap();
    let total = 120;
    for i in 0..total {
        notifications::send(&mut conn, acme, &note(ann, "k", &format!("n{i}")))
            .await
            .unwrap();
    }
    drop(conn);

    let mut workers = Vec::new();
    for _ in 0..8 {
        let db = t.owner.clone();
        workers.push(tokio::spawn(async move {
            let mut conn = db.conn().await.unwrap();
            let mut mine = Vec::new();
            loop {
                let batch = claim_due(&mut conn, NotificationChannel::Push, 7, 300)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    break;
                }
                for d in batch {
                    assert_eq!(d.delivery.status, DeliveryStatus::Sending);
                    record_attempt(
                        &mut conn,
                        d.claim,
                        &DeliveryAttempt {
                            succeeded: true,
                            provider_message_id: Some(format!("m-{}", d.claim.id)),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                    mine.push(d.claim.id);
                }
            }
            mine
        }));
    }
    let mut all: Vec<NotificationDeliveryId> = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), total, "every push delivery claimed exactly once");
    assert_eq!(unique.len(), total);

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sent: Row = diesel::sql_query(
        "SELECT count(*) AS n FROM notification_deliveries WHERE channel = 'push' AND status = 'sent' AND attempts = 1",
    )
    .get_result(&mut *t.conn().await)
    .await
    .unwrap();
    assert_eq!(sent.n, total as i64);
    // The in-app deliveries were not touched by push workers.
    let mut conn = t.conn().await;
    assert_eq!(
        claim_due(&mut conn, NotificationChannel::InApp, 100, 60)
            .await
            .unwrap()
            .len(),
        100
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn attempts_retry_fail_and_lapsed_claims() {
    let t = TestDb::new().await;
    let acme = tenant(&t, "acme").await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;
    let sent = notifications::send(&mut conn, acme, &note(ann, "k", "t"))
        .await
        .unwrap();
    let id = sent.deliveries[0].id;
    let in_app = NotificationChannel::InApp;

    // Not claimed yet: recording is refused.
    let ok = DeliveryAttempt {
        succeeded: true,
        ..Default::default()
    };
    let first = DeliveryClaim { id, attempt: 1 };
    assert!(matches!(
        record_attempt(&mut conn, first, &ok).await,
        Err(Error::IllegalTransition { .. })
    ));
    assert!(matches!(
        record_attempt(
            &mut conn,
            DeliveryClaim {
                id: NotificationDeliveryId::new(),
                attempt: 1
            },
            &ok
        )
        .await,
        Err(Error::NotFound { .. })
    ));

    let claimed = claim_due(&mut conn, in_app, 10, 60).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].claim, first);
    assert_eq!(claimed[0].delivery.attempts, 1, "a claim counts an attempt");
    // Claimed and leased: nobody else gets it.
    assert!(
        claim_due(&mut conn, in_app, 10, 60)
            .await
            .unwrap()
            .is_empty()
    );

    // Bad attempts are refused and change nothing.
    let err = record_attempt(&mut conn, first, &DeliveryAttempt::default())
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["error"]);
    let err = record_attempt(
        &mut conn,
        first,
        &DeliveryAttempt {
            succeeded: false,
            error: Some("e".repeat(2001)),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["error"]);
    let d = &notification_deliveries::list_for_notification(&mut conn, sent.notification.id)
        .await
        .unwrap()[0];
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Sending, 1));

    // A failure with a retry time goes back to pending, due at that time.
    let retry = DeliveryAttempt {
        succeeded: false,
        error: Some("timeout".into()),
        retry_at: Some(Utc::now() - Duration::seconds(1)),
        ..Default::default()
    };
    let d = record_attempt(&mut conn, first, &retry).await.unwrap();
    assert_eq!(
        (d.status, d.attempts, d.last_error.as_deref()),
        (DeliveryStatus::Pending, 1, Some("timeout"))
    );

    // A claim whose worker died lapses and is handed out again.
    let second = claim_due(&mut conn, in_app, 10, 60).await.unwrap()[0].claim;
    conn.batch_execute(
        "UPDATE notification_deliveries SET next_attempt_at = now() - interval '1 second'",
    )
    .await
    .unwrap();
    let third = claim_due(&mut conn, in_app, 10, 60).await.unwrap()[0].claim;
    assert_eq!((second.attempt, third.attempt), (2, 3));

    // The lapsed worker reports late: refused as stale, nothing changes.
    let late = record_attempt(&mut conn, second, &ok).await.unwrap_err();
    assert!(matches!(late, Error::Stale { .. }), "{late:?}");
    let d = &notification_deliveries::list_for_notification(&mut conn, sent.notification.id)
        .await
        .unwrap()[0];
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Sending, 3));

    let gave_up = DeliveryAttempt {
        succeeded: false,
        error: Some("bounced".into()),
        ..Default::default()
    };
    let d = record_attempt(&mut conn, third, &gave_up).await.unwrap();
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Failed, 3));
    assert!(
        claim_due(&mut conn, in_app, 10, 60)
            .await
            .unwrap()
            .is_empty()
    );

    let err = claim_due(&mut conn, in_app, 0, 60).await.unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["limit"]);
    let err = claim_due(&mut conn, in_app, 1, 0).await.unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["lease_seconds"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sender_that_keeps_crashing_dead_letters_the_delivery() {
    let t = TestDb::new().await;
    let acme = tenant(&t, "acme").await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;
    let sent = notifications::send(&mut conn, acme, &note(ann, "k", "t"))
        .await
        .unwrap();
    let in_app = NotificationChannel::InApp;
    // Every claim lapses without a result (the sender dies each time).
    for attempt in 1..=MAX_DELIVERY_ATTEMPTS {
        let claimed = claim_due(&mut conn, in_app, 10, 60).await.unwrap();
        assert_eq!(claimed.len(), 1, "attempt {attempt}");
        assert_eq!(claimed[0].claim.attempt, attempt);
        conn.batch_execute(
            "UPDATE notification_deliveries SET next_attempt_at = now() - interval '1 second'",
        )
        .await
        .unwrap();
    }
    assert!(
        claim_due(&mut conn, in_app, 10, 60)
            .await
            .unwrap()
            .is_empty(),
        "no claim after the last attempt"
    );
    let d = &notification_deliveries::list_for_notification(&mut conn, sent.notification.id)
        .await
        .unwrap()[0];
    assert_eq!(
        (d.status, d.attempts),
        (DeliveryStatus::Failed, MAX_DELIVERY_ATTEMPTS)
    );
    assert!(d.last_error.as_deref().unwrap().contains("gave up"));
}
