//! Provider webhook events: idempotency and ordering, with real concurrency.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::TestDb;
use database::auth::{NewUser, users};
use database::billing::subscription_events::{self, apply_event};
use database::billing::{
    EventOutcome, Owner, ProviderEvent, SubscriptionState, SubscriptionStatus, subscriptions,
};
use database::{Error, TenantId, UserId};
use diesel_async::RunQueryDsl;
use serde_json::json;

async fn user(t: &TestDb) -> UserId {
    let mut conn = t.conn().await;
    users::create(
        &mut conn,
        &NewUser {
            email: "ann@example.com".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .id
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
}

fn event(
    owner: Owner,
    id: &str,
    at: DateTime<Utc>,
    plan: &str,
    status: SubscriptionStatus,
) -> ProviderEvent {
    ProviderEvent {
        provider_event_id: id.into(),
        event_type: "customer.subscription.updated".into(),
        occurred_at: at,
        payload: json!({ "id": id }),
        subscription: SubscriptionState {
            owner,
            provider_customer_id: "cus_1".into(),
            provider_subscription_id: "sub_1".into(),
            plan: plan.into(),
            status,
            current_period_end: Some(at + Duration::days(30)),
            cancel_at_period_end: false,
        },
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_creates_then_updates_and_a_redelivery_changes_nothing() {
    let t = TestDb::new().await;
    let ann = user(&t).await;
    let mut conn = t.conn().await;
    let owner = Owner::User(ann);

    let first = apply_event(
        &mut conn,
        &event(owner, "evt_1", t0(), "basic", SubscriptionStatus::Trialing),
    )
    .await
    .unwrap();
    assert_eq!(
        (first.outcome, first.duplicate),
        (EventOutcome::Applied, false)
    );
    let sub = subscriptions::find_by_provider_id(&mut conn, "sub_1")
        .await
        .unwrap();
    assert_eq!(sub.user_id, Some(ann));
    assert_eq!(sub.status, SubscriptionStatus::Trialing);
    assert_eq!(first.event.subscription_id, Some(sub.id));
    assert!(first.event.processed_at.is_some());

    let later = t0() + Duration::hours(1);
    let second = apply_event(
        &mut conn,
        &event(owner, "evt_2", later, "pro", SubscriptionStatus::Active),
    )
    .await
    .unwrap();
    assert_eq!(second.outcome, EventOutcome::Applied);
    let sub = subscriptions::find_by_provider_id(&mut conn, "sub_1")
        .await
        .unwrap();
    assert_eq!(
        (sub.plan.as_str(), sub.status),
        ("pro", SubscriptionStatus::Active)
    );
    assert_eq!(sub.last_event_at, later);

    // The same event again (even with a different body) writes nothing.
    let again = apply_event(
        &mut conn,
        &event(
            owner,
            "evt_1",
            later + Duration::hours(5),
            "gold",
            SubscriptionStatus::Canceled,
        ),
    )
    .await
    .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.outcome, EventOutcome::Applied);
    assert_eq!(again.event, first.event);
    assert_eq!(
        subscriptions::find_by_provider_id(&mut conn, "sub_1")
            .await
            .unwrap(),
        sub
    );
    assert_eq!(t.count("subscription_events").await, 2);
    assert_eq!(t.count("subscriptions").await, 1);
    assert_eq!(
        subscriptions::list_for_user(&mut conn, ann, None, 100)
            .await
            .unwrap()
            .items,
        vec![sub]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_event_arriving_late_is_recorded_but_never_rolls_back() {
    let t = TestDb::new().await;
    let ann = user(&t).await;
    let mut conn = t.conn().await;
    let owner = Owner::User(ann);
    let newer = t0() + Duration::minutes(10);
    apply_event(
        &mut conn,
        &event(owner, "evt_new", newer, "pro", SubscriptionStatus::Canceled),
    )
    .await
    .unwrap();
    let before = subscriptions::find_by_provider_id(&mut conn, "sub_1")
        .await
        .unwrap();
    let late = apply_event(
        &mut conn,
        &event(owner, "evt_old", t0(), "basic", SubscriptionStatus::Active),
    )
    .await
    .unwrap();
    assert_eq!((late.outcome, late.duplicate), (EventOutcome::Stale, false));
    assert_eq!(late.event.subscription_id, Some(before.id));
    assert_eq!(
        subscriptions::find_by_provider_id(&mut conn, "sub_1")
            .await
            .unwrap(),
        before
    );
    assert_eq!(t.count("subscription_events").await, 2);
    let recorded = subscription_events::find_by_provider_event_id(&mut conn, "evt_old")
        .await
        .unwrap();
    assert_eq!(recorded.outcome, Some(EventOutcome::Stale));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_deliveries_of_one_event_apply_it_once() {
    let t = TestDb::new().await;
    let ann = user(&t).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let db = t.owner.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = db.conn().await.unwrap();
            apply_event(
                &mut conn,
                &event(
                    Owner::User(ann),
                    "evt_same",
                    t0(),
                    "pro",
                    SubscriptionStatus::Active,
                ),
            )
            .await
            .unwrap()
        }));
    }
    let mut firsts = 0;
    for task in tasks {
        let applied = task.await.unwrap();
        assert_eq!(applied.outcome, EventOutcome::Applied);
        firsts += !applied.duplicate as usize;
    }
    assert_eq!(firsts, 1);
    assert_eq!(t.count("subscription_events").await, 1);
    assert_eq!(t.count("subscriptions").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_events_in_any_order_leave_the_newest_state() {
    let t = TestDb::new().await;
    let ann = user(&t).await;
    let n = 24;
    let mut tasks = Vec::new();
    // Deliver newest-first-ish interleaved, all at once.
    for i in (0..n).rev() {
        let db = t.owner.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = db.conn().await.unwrap();
            let at = t0() + Duration::seconds(i);
            apply_event(
                &mut conn,
                &event(
                    Owner::User(ann),
                    &format!("evt_{i}"),
                    at,
                    &format!("p{i}"),
                    SubscriptionStatus::Active,
                ),
            )
            .await
            .unwrap()
        }));
    }
    for task in tasks {
        assert!(!task.await.unwrap().duplicate);
    }
    let mut conn = t.conn().await;
    let sub = subscriptions::find_by_provider_id(&mut conn, "sub_1")
        .await
        .unwrap();
    assert_eq!(sub.plan, format!("p{}", n - 1));
    assert_eq!(sub.last_event_at, t0() + Duration::seconds(n - 1));
    assert_eq!(t.count("subscription_events").await, n);
    assert_eq!(t.count("subscriptions").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_events_write_nothing() {
    let t = TestDb::new().await;
    let ann = user(&t).await;
    let mut conn = t.conn().await;
    let mut bad = event(Owner::User(ann), "", t0(), "", SubscriptionStatus::Active);
    bad.subscription.provider_subscription_id = "x".repeat(256);
    let err = apply_event(&mut conn, &bad).await.unwrap_err();
    assert_eq!(
        err.invalid_fields(),
        vec![
            "provider_event_id",
            "subscription.plan",
            "subscription.provider_subscription_id"
        ]
    );
    let ghost = event(
        Owner::User(UserId::new()),
        "evt_1",
        t0(),
        "pro",
        SubscriptionStatus::Active,
    );
    let err = apply_event(&mut conn, &ghost).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }));
    let ghost = event(
        Owner::Tenant(TenantId::new()),
        "evt_1",
        t0(),
        "pro",
        SubscriptionStatus::Active,
    );
    let err = apply_event(&mut conn, &ghost).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "tenant" }));
    assert_eq!(t.count("subscription_events").await, 0);
    assert_eq!(t.count("subscriptions").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_can_own_a_subscription() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tenant = TenantId::new();
    diesel::sql_query("INSERT INTO tenants (id, name, slug) VALUES ($1, 'Acme', 'acme')")
        .bind::<diesel::sql_types::Uuid, _>(tenant.into_uuid())
        .execute(&mut *conn)
        .await
        .unwrap();
    apply_event(
        &mut conn,
        &event(
            Owner::Tenant(tenant),
            "evt_t",
            t0(),
            "team",
            SubscriptionStatus::Active,
        ),
    )
    .await
    .unwrap();
    let page = subscriptions::list_for_tenant(&mut conn, tenant, None, 1)
        .await
        .unwrap();
    assert!(
        page.next.is_none(),
        "one subscription: the first page is the last"
    );
    let subs = page.items;
    assert_eq!(subs.len(), 1);
    assert_eq!((subs[0].tenant_id, subs[0].user_id), (Some(tenant), None));
}
