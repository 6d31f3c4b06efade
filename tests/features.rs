//! Todos, waitlist and daily activity against a real PostgreSQL.

mod common;

use chrono::NaiveDate;
use common::{TestDb, user};
use database::auth::users;
use database::features::{
    ActivityIncrement, CreateTodo, JoinWaitlist, TodoPatch, todos, user_activity_daily, waitlist,
};
use database::{Error, TodoId, UserId};

fn todo(title: &str) -> CreateTodo {
    CreateTodo {
        title: title.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn todos_create_find_update_list_delete() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let bob = user(&t, "bob@example.com").await;
    let mut conn = t.conn().await;

    let created = todos::create(
        &mut conn,
        ann,
        &CreateTodo {
            title: "Write tests".into(),
            description: Some("all of them".into()),
            tenant_id: None,
        },
    )
    .await
    .unwrap();
    assert!(!created.completed);
    assert_eq!(
        todos::find(&mut conn, ann, created.id).await.unwrap(),
        created
    );
    // Another user can neither see nor change it.
    assert!(matches!(
        todos::find(&mut conn, bob, created.id).await,
        Err(Error::NotFound { entity: "todo" })
    ));
    let patch = TodoPatch {
        completed: Some(true),
        description: Some(None),
        ..Default::default()
    };
    assert!(matches!(
        todos::update(&mut conn, bob, created.id, &patch).await,
        Err(Error::NotFound { .. })
    ));
    let updated = todos::update(&mut conn, ann, created.id, &patch)
        .await
        .unwrap();
    assert!(updated.completed);
    assert_eq!(updated.description, None);
    assert!(updated.updated_at >= created.updated_at);

    for i in 0..4 {
        todos::create(&mut conn, ann, &todo(&format!("t{i}")))
            .await
            .unwrap();
    }
    let p1 = todos::list_for_user(&mut conn, ann, None, 3).await.unwrap();
    assert_eq!(p1.items.len(), 3);
    let p2 = todos::list_for_user(&mut conn, ann, p1.next, 3)
        .await
        .unwrap();
    assert_eq!(p2.items.len(), 2);
    assert!(p2.next.is_none());
    let titles: Vec<_> = p1
        .items
        .iter()
        .chain(&p2.items)
        .map(|t| t.title.clone())
        .collect();
    assert_eq!(titles, vec!["t3", "t2", "t1", "t0", "Write tests"]);
    assert!(
        todos::list_for_user(&mut conn, bob, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    assert!(matches!(
        todos::delete(&mut conn, bob, created.id).await,
        Err(Error::NotFound { .. })
    ));
    todos::delete(&mut conn, ann, created.id).await.unwrap();
    assert_eq!(t.count("todos").await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn todos_bad_input_writes_nothing() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;

    let err = todos::create(&mut conn, ann, &todo("")).await.unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["title"]);
    let err = todos::create(
        &mut conn,
        ann,
        &CreateTodo {
            title: "x".repeat(256),
            description: Some("d".repeat(1001)),
            tenant_id: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["description", "title"]);
    let err = todos::create(&mut conn, UserId::new(), &todo("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }));
    let err = todos::create(
        &mut conn,
        ann,
        &CreateTodo {
            title: "x".into(),
            description: None,
            tenant_id: Some(database::TenantId::new()),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "tenant" }));
    let err = todos::list_for_user(&mut conn, ann, None, 0)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["limit"]);
    assert_eq!(t.count("todos").await, 0);

    let kept = todos::create(&mut conn, ann, &todo("keep")).await.unwrap();
    let err = todos::update(
        &mut conn,
        ann,
        kept.id,
        &TodoPatch {
            title: Some(String::new()),
            completed: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["title"]);
    assert_eq!(todos::find(&mut conn, ann, kept.id).await.unwrap(), kept);
    assert!(matches!(
        todos::find(&mut conn, ann, TodoId::new()).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_todo_goes_only_into_a_tenant_of_its_user() {
    use database::tenancy::{NewTenant, tenants};
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let eve = user(&t, "eve@example.com").await;
    let mut conn = t.conn().await;
    let acme = tenants::create_with_owner(
        &mut conn,
        &NewTenant {
            name: "Acme".into(),
            slug: "acme".into(),
        },
        ann,
    )
    .await
    .unwrap();
    // The tenant id comes from the client: eve is no member of acme.
    let input: CreateTodo =
        serde_json::from_value(serde_json::json!({"title": "x", "tenant_id": acme.id})).unwrap();
    let err = todos::create(&mut conn, eve, &input).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "tenant" }),
        "{err:?}"
    );
    assert_eq!(t.count("todos").await, 0);
    let todo = todos::create(&mut conn, ann, &input).await.unwrap();
    assert_eq!(todo.tenant_id, Some(acme.id));
}

#[tokio::test(flavor = "multi_thread")]
async fn todos_go_with_their_user() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;
    todos::create(&mut conn, ann, &todo("x")).await.unwrap();
    users::delete(&mut conn, ann).await.unwrap();
    assert_eq!(t.count("todos").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn waitlist_join_is_idempotent_and_case_insensitive() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let first = waitlist::join(
        &mut conn,
        &JoinWaitlist {
            email: "Ann@Example.com".into(),
        },
    )
    .await
    .unwrap();
    assert!(first.created);
    let again = waitlist::join(
        &mut conn,
        &JoinWaitlist {
            email: "ann@example.COM".into(),
        },
    )
    .await
    .unwrap();
    assert!(!again.created);
    assert_eq!(again.entry, first.entry);
    let bob = waitlist::join(
        &mut conn,
        &JoinWaitlist {
            email: "bob@example.com".into(),
        },
    )
    .await
    .unwrap();
    assert!(bob.entry.position > first.entry.position);
    assert_eq!(t.count("waitlist").await, 2);

    let err = waitlist::join(
        &mut conn,
        &JoinWaitlist {
            email: "not-an-email".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["email"]);
    assert_eq!(t.count("waitlist").await, 2);

    let invited = waitlist::invite_next(&mut conn, 1).await.unwrap();
    assert_eq!(invited.len(), 1);
    assert_eq!(invited[0].id, first.entry.id);
    assert!(invited[0].invited_at.is_some());
    let invited = waitlist::invite_next(&mut conn, 10).await.unwrap();
    assert_eq!(
        invited.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![bob.entry.id]
    );
    let err = waitlist::invite_next(&mut conn, 0).await.unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["count"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_joins_of_one_address_make_one_entry() {
    let t = TestDb::new().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let db = t.owner.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = db.conn().await.unwrap();
            let email = if i % 2 == 0 {
                "Zed@Example.com"
            } else {
                "zed@example.com"
            };
            waitlist::join(
                &mut conn,
                &JoinWaitlist {
                    email: email.into(),
                },
            )
            .await
            .unwrap()
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let joined = task.await.unwrap();
        created += joined.created as usize;
        ids.insert(joined.entry.id);
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(t.count("waitlist").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_activity_increments_lose_none() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let db = t.owner.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = db.conn().await.unwrap();
            user_activity_daily::record_activity(&mut conn, ann, &ActivityIncrement { day, by: 1 })
                .await
                .unwrap()
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    seen.sort();
    // Every increment saw a distinct running total: none was lost.
    assert_eq!(seen, (1..=50).collect::<Vec<i64>>());
    let mut conn = t.conn().await;
    let days = user_activity_daily::activity_between(&mut conn, ann, day, day)
        .await
        .unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].count, 50);
    assert_eq!(t.count("user_activity_daily").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn activity_bad_input_writes_nothing() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let mut conn = t.conn().await;
    let err =
        user_activity_daily::record_activity(&mut conn, ann, &ActivityIncrement { day, by: 0 })
            .await
            .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["by"]);
    let err = user_activity_daily::record_activity(
        &mut conn,
        UserId::new(),
        &ActivityIncrement { day, by: 1 },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }));
    assert_eq!(t.count("user_activity_daily").await, 0);
    let next = day.succ_opt().unwrap();
    user_activity_daily::record_activity(&mut conn, ann, &ActivityIncrement { day, by: 3 })
        .await
        .unwrap();
    let err = user_activity_daily::activity_between(&mut conn, ann, next, day)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["to"]);
    // The range bounds the result: a year (366 days) is answered, more is not.
    let year_on = day + chrono::Duration::days(user_activity_daily::MAX_RANGE_DAYS - 1);
    let days = user_activity_daily::activity_between(&mut conn, ann, day, year_on)
        .await
        .unwrap();
    assert_eq!(days.len(), 1);
    let err =
        user_activity_daily::activity_between(&mut conn, ann, day, year_on.succ_opt().unwrap())
            .await
            .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["to"]);
}
