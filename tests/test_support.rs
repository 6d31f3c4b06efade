//! The public test support (`database::testing`, `#[database::test]`) as a
//! service's tests use it: what each parameter receives, the fixtures, a
//! failing test's database kept and a passing one's dropped, and `clean`.

mod common;

use database::auth::{NewUser, users};
use database::migrate::MigrationSet;
use database::testing::fixtures::Fixtures;
use database::testing::{Options, TestDb};
use database::workflows::workflows;
use database::{Ctx, Db, SqliteDb};
use diesel::sql_types::Text;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The `Db` a test receives logs in as the service's role, to which
/// row-level security applies: no tenant, no rows of a tenant table.
#[database::test]
async fn the_db_parameter_is_the_services_role(db: Db, t: &TestDb) {
    let me: Name = diesel::sql_query("SELECT current_user::text AS name")
        .get_result(&mut *db.conn().await.unwrap())
        .await
        .unwrap();
    assert_eq!(me.name, "app");
    let acme = Fixtures::new(1).tenant().create(t).await;
    Fixtures::new(2).workflow(&acme).create(t).await;
    assert_eq!(t.count("workflows").await, 1, "the owner sees every row");
    let unscoped = common::count_rows(&mut *db.conn().await.unwrap(), "workflows").await;
    assert_eq!(unscoped, 0, "without a tenant the service's role sees none");
    let seen = db
        .with(acme.ctx())
        .run(async |conn| workflows::list(conn, acme.tenant.id, None, 10).await)
        .await
        .unwrap();
    assert_eq!(
        seen.items.len(),
        1,
        "the tenant's own context sees its workflow"
    );
}

/// A `Ctx` parameter is a new tenant's, acting as its owner.
#[database::test]
async fn the_ctx_parameter_is_a_new_tenants(db: Db, ctx: Ctx) -> Result<(), database::Error> {
    let tenant = ctx.tenant_id().expect("a tenant");
    let db = db.with(ctx);
    let input = database::workflows::NewWorkflow {
        name: "Mine".into(),
        ..Default::default()
    };
    db.run(async |conn| workflows::create(conn, tenant, None, &input).await)
        .await?;
    Ok(())
}

/// A `#[should_panic]` test passes by panicking (its database is dropped).
#[database::test]
#[should_panic(expected = "on purpose")]
async fn a_should_panic_test_passes_by_panicking(db: Db) {
    db.conn().await.unwrap();
    panic!("on purpose");
}

/// A SQLite-only test needs no PostgreSQL.
#[database::test]
async fn a_sqlite_test_gets_a_migrated_file(db: SqliteDb) {
    let mut conn = db.conn().await.unwrap();
    let new = NewUser {
        email: "lite@example.com".into(),
        ..Default::default()
    };
    let user = users::create(&mut conn, &new).await.unwrap();
    assert_eq!(
        users::find(&mut conn, user.id).await.unwrap().email,
        new.email
    );
}

/// Same seed, same content; ids differ.
#[database::test]
async fn fixtures_are_deterministic_per_seed_and_compose(t: &TestDb) {
    let other = TestDb::new().await;
    let mut seen = Vec::new();
    for db in [t, &other] {
        let rows = Fixtures::new(42);
        let acme = rows.tenant().with_members(3).create(db).await;
        let flow = rows.workflow(&acme).with_executions(2).create(db).await;
        let chat = rows
            .chat(&acme.members[0])
            .with_messages(4)
            .create(db)
            .await;
        assert_eq!(acme.members.len(), 3);
        assert_eq!(flow.executions.len(), 2);
        assert_eq!(chat.messages.len(), 4);
        assert_eq!(db.count("tenant_members").await, 4);
        let emails: Vec<String> = std::iter::once(&acme.owner)
            .chain(&acme.members)
            .map(|u| u.email.clone())
            .collect();
        let texts: Vec<String> = chat.messages.iter().map(|m| m.parts.to_string()).collect();
        seen.push((
            emails,
            acme.tenant.slug.clone(),
            flow.workflow.name.clone(),
            chat.chat.title.clone(),
            texts,
            acme.tenant.id,
        ));
    }
    let (a, b) = (&seen[0], &seen[1]);
    assert_eq!(
        (&a.0, &a.1, &a.2, &a.3, &a.4),
        (&b.0, &b.1, &b.2, &b.3, &b.4)
    );
    assert_ne!(a.5, b.5, "ids come from the clock, not the seed");
}

/// The names of the test databases on the server, now.
async fn databases_named(pattern: &str) -> Vec<String> {
    let mut admin = common::admin_conn().await;
    diesel::sql_query("SELECT datname::text AS name FROM pg_database WHERE datname LIKE $1")
        .bind::<Text, _>(pattern)
        .load::<Name>(&mut admin)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect()
}

/// What `#[database::test]` does with a failing test (a panic, or an
/// error returned) and with a passing one.
#[test]
fn a_failing_tests_database_is_kept_and_a_passing_ones_dropped() {
    let seen = std::sync::Mutex::new(Vec::new());
    let panicked = std::panic::catch_unwind(|| {
        database::testing::run(
            "x::fails_by_panic",
            Options::default(),
            async |t: &TestDb| {
                seen.lock().unwrap().push(t.name.clone());
                assert!(t.name.is_empty(), "fails on purpose");
            },
        )
    });
    assert!(panicked.is_err());
    let errored = std::panic::catch_unwind(|| {
        database::testing::run(
            "x::fails_by_error",
            Options::default(),
            async |t: &TestDb| {
                seen.lock().unwrap().push(t.name.clone());
                Err::<(), _>("on purpose")
            },
        )
    });
    assert!(errored.is_err());
    database::testing::run("x::passes", Options::default(), async |t: &TestDb| {
        seen.lock().unwrap().push(t.name.clone());
    });
    let names = seen.into_inner().unwrap();
    // A passing test's database is dropped in the background.
    assert!(database::testing::wait_for_drops(
        std::time::Duration::from_secs(30)
    ));
    assert!(
        names[0].starts_with("database_test_fails_by_panic_"),
        "{names:?}"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for (name, kept) in [(&names[0], true), (&names[1], true), (&names[2], false)] {
            assert_eq!(databases_named(name).await.len(), kept as usize, "{name}");
        }
        // The kept databases hold the failed test's rows: drop them here.
        let mut admin = common::admin_conn().await;
        for name in &names[..2] {
            admin
                .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .await
                .unwrap();
        }
    });
}

/// `clean` drops the databases of processes that are gone and templates of
/// old migration sets; a live process's database and the current template
/// stay.
#[tokio::test]
async fn clean_drops_leftovers_and_old_templates_and_nothing_in_use() {
    let live = TestDb::new().await;
    let mut admin = common::admin_conn().await;
    // A process that has exited: a leftover of a crashed run.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    let leftover = format!("database_test_leftover_{gone}_0");
    let old_template = "database_tpl_0000000000000000";
    for sql in [
        format!("DROP DATABASE IF EXISTS {leftover}"),
        format!("CREATE DATABASE {leftover}"),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE {leftover} IS 'database::testing pid={gone} template=-'"
        ))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {old_template}"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {old_template} IS_TEMPLATE true"))
        .await
        .unwrap();
    let report = database::testing::clean(&mut admin, &[MigrationSet::embedded()])
        .await
        .unwrap();
    assert!(report.dropped.contains(&leftover), "{report:?}");
    assert!(report.in_use.contains(&live.name), "{report:?}");
    assert!(
        report.templates_dropped.contains(&old_template.to_owned()),
        "{report:?}"
    );
    let current = database::testing::template_name(MigrationSet::embedded());
    assert!(report.templates_kept.contains(&current), "{report:?}");
    assert!(databases_named(&leftover).await.is_empty());
    assert_eq!(databases_named(&live.name).await.len(), 1);
    assert_eq!(
        live.count("users").await,
        0,
        "the live database still answers"
    );
}
