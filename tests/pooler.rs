//! Pooler mode (`DB_POOLER=transaction`) through a real PgBouncer (Debian's,
//! 1.18 here) in transaction mode in front of the test server, started by
//! the crate's launcher (`TempPgBouncer`) with a pool smaller than the
//! number of clients, so that clients really share server connections.
//!
//! The rest of the concurrency-heavy suite runs through the same kind of
//! PgBouncer with `DB_TEST_POOLER=1` (a step of `.ci/run`).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{TestDb, skip_without, start_bouncer};
use database::auth::{NewUser, users};
use database::db::Pooler;
use database::features::todos::{self, CreateTodo};
use database::ops::cluster::TempPgBouncer;
use database::workflows::{ExecutionStatus, StartExecution, executions};
use database::{Config, Db, Error, UserId};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

fn bouncer() -> Option<TempPgBouncer> {
    match start_bouncer() {
        Ok(b) => Some(b),
        Err(e) => {
            skip_without("pgbouncer", &e);
            None
        }
    }
}

/// A `Db` on `t`'s database through `bouncer`, in `pooler` mode.
fn through(bouncer: &TempPgBouncer, t: &TestDb, pooler: Pooler, pool_size: usize) -> Db {
    let mut config = Config::new(common::through_bouncer(bouncer, &t.name));
    config.pooler = pooler;
    config.migration_url = Some(t.url.clone());
    config.pool_size = pool_size;
    Db::new(config).unwrap()
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.to_owned(),
        ..Default::default()
    }
}

/// One unit of the load: a user and its first todo in one transaction, then
/// a read outside any transaction.
async fn signup(db: &Db, email: &str) -> Result<UserId, Error> {
    let mut conn = db.conn().await?;
    let email = email.to_owned();
    let id = conn
        .transaction::<_, Error, _>(async |conn| {
            let user = users::create(conn, &new_user(&email)).await?;
            todos::create(
                conn,
                user.id,
                &CreateTodo {
                    title: "first".into(),
                    ..Default::default()
                },
            )
            .await?;
            Ok(user.id)
        })
        .await?;
    users::find(&mut conn, id).await?;
    Ok(id)
}

/// `tasks` tasks, `per_task` signups each; what each call returned.
async fn load(
    db: &Db,
    tag: &str,
    tasks: usize,
    per_task: usize,
) -> Vec<(String, Result<UserId, Error>)> {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let db = db.clone();
        let tag = tag.to_owned();
        handles.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let email = format!("{tag}-{task}-{i}@example.com");
                let result = signup(&db, &email).await;
                seen.push((email, result));
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all
}

/// What each call returned, as text.
fn outcomes(seen: &[(String, Result<UserId, Error>)]) -> Vec<(String, Result<(), String>)> {
    seen.iter()
        .map(|(email, r)| {
            (
                email.clone(),
                r.as_ref().map(|_| ()).map_err(|e| e.to_string()),
            )
        })
        .collect()
}

/// Every call the client saw succeed is in the database with exactly its
/// one todo; nothing the client saw fail is.
async fn assert_all_or_nothing(t: &TestDb, seen: &[(String, Result<(), String>)]) {
    use diesel::sql_types::{BigInt, Text};
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        email: String,
        #[diesel(sql_type = BigInt)]
        todos: i64,
    }
    let mut conn = database::Conn::establish(&t.url).await.unwrap();
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT u.email, (SELECT count(*) FROM todos WHERE user_id = u.id) AS todos FROM users u",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let stored: HashSet<&str> = rows.iter().map(|r| r.email.as_str()).collect();
    for row in &rows {
        assert_eq!(row.todos, 1, "{} was committed without its todo", row.email);
    }
    for (email, result) in seen {
        match result {
            Ok(_) => assert!(
                stored.contains(email.as_str()),
                "{email}: success not committed"
            ),
            Err(e) => assert!(
                !stored.contains(email.as_str()),
                "{email}: the caller was told it failed ({e}) yet it was committed"
            ),
        }
    }
}

/// The failure the issue measured, reproduced: named statements (the direct
/// path) through a transaction-mode pooler fail under concurrency; the
/// errors now name the setting that fixes them. Then the same load in pooler
/// mode: no error, nothing half-committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn named_statements_fail_behind_a_transaction_pooler_and_pooler_mode_does_not() {
    let Some(bouncer) = bouncer() else { return };
    let t = TestDb::new().await;

    let direct = through(&bouncer, &t, Pooler::None, 16);
    let seen = load(&direct, "direct", 16, 20).await;
    let failures: Vec<&Error> = seen.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    assert!(
        !failures.is_empty(),
        "named statements through PgBouncer in transaction mode all succeeded: the test no \
         longer reproduces the failure it guards against"
    );
    assert!(
        failures
            .iter()
            .any(|e| e.to_string().contains("DB_POOLER=transaction")),
        "no failure names the setting: {failures:?}"
    );
    direct.close();

    let pooled = through(&bouncer, &t, Pooler::Transaction, 16);
    let seen = load(&pooled, "pooled", 16, 40).await;
    let failures: Vec<_> = seen.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failures.is_empty(),
        "pooler mode failed: {failures:?}\n{}",
        bouncer.log()
    );
    assert_all_or_nothing(&t, &outcomes(&seen)).await;
}

/// Enum result columns and enum binds (tokio-postgres would look their types
/// up through named statements), transactions that roll back, and
/// pipelined queries on one connection, all through the pooler.
#[tokio::test(flavor = "multi_thread")]
async fn enums_transactions_and_pipelining_through_the_pooler() {
    let Some(bouncer) = bouncer() else { return };
    let t = TestDb::new().await;
    let db = through(&bouncer, &t, Pooler::Transaction, 4);
    let mut conn = db.conn().await.unwrap();
    assert!(conn.is_pooler_mode());

    let owner = users::create(&mut conn, &new_user("owner@example.com"))
        .await
        .unwrap();
    let tenant = database::tenancy::tenants::create_with_owner(
        &mut conn,
        &database::tenancy::NewTenant {
            name: "Pooled".into(),
            slug: "pooled".into(),
        },
        owner.id,
    )
    .await
    .unwrap();
    let workflow = common::workflows::workflow(&mut conn, tenant.id).await;
    let started = executions::start(
        &mut conn,
        tenant.id,
        workflow,
        &StartExecution {
            user_id: Some(owner.id),
            input: serde_json::json!({}),
            max_attempts: 3,
        },
    )
    .await
    .unwrap();
    assert_eq!(started.execution.status, ExecutionStatus::Pending);
    let claimed = executions::claim_next(&mut conn, tenant.id, "worker-1")
        .await
        .unwrap()
        .expect("a pending execution");
    assert_eq!(claimed.status, ExecutionStatus::Running);

    // An enum bound as a parameter, and an array of enums returned.
    #[derive(diesel::QueryableByName)]
    struct Statuses {
        #[diesel(sql_type = diesel::sql_types::Array<database::schema::sql_types::ExecutionStatus>)]
        all: Vec<ExecutionStatus>,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        matches: bool,
    }
    let row: Statuses = diesel::sql_query(
        "SELECT enum_range(NULL::execution_status) AS all, $1 = 'running'::execution_status AS matches",
    )
    .bind::<database::schema::sql_types::ExecutionStatus, _>(ExecutionStatus::Running)
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(row.all[0], ExecutionStatus::Pending);
    assert!(row.matches);

    // A failed transaction leaves nothing and the connection usable.
    let before = t.count("users").await;
    let failed = conn
        .transaction::<(), Error, _>(async |conn| {
            users::create(conn, &new_user("rolled-back@example.com")).await?;
            users::create(conn, &new_user("OWNER@example.com")).await?;
            Ok(())
        })
        .await;
    assert!(matches!(failed, Err(Error::Conflict { .. })), "{failed:?}");
    assert_eq!(t.count("users").await, before);

    // Two queries in flight on one connection (the `&Conn` path).
    use database::schema::users as u;
    use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
    let shared: &database::Conn = &conn;
    let by_email = |email: &'static str| async move {
        let mut c = shared;
        u::table
            .filter(u::email.eq(email))
            .select(u::id)
            .first::<UserId>(&mut c)
            .await
            .optional()
    };
    let (a, b) = tokio::join!(
        by_email("owner@example.com"),
        by_email("nobody@example.com")
    );
    assert_eq!(a.unwrap(), Some(owner.id));
    assert_eq!(b.unwrap(), None);
}

/// A type created after a pooler-mode connection opened is unknown to it.
/// The statement has already run when its result turns out unreadable
/// (Parse, Bind and Execute go in one message), so the error is never a
/// retryable one: `CommitOutcomeUnknown`, with the write committed; the
/// connection is discarded and the next one knows the type.
#[tokio::test(flavor = "multi_thread")]
async fn a_result_type_newer_than_the_connection_is_never_reported_retryable() {
    let Some(bouncer) = bouncer() else { return };
    let t = TestDb::new().await;
    let db = through(&bouncer, &t, Pooler::Transaction, 1);
    db.health().await.unwrap();
    let mut admin = database::Conn::establish(&t.url).await.unwrap();
    admin
        .batch_execute("CREATE TYPE mood AS ENUM ('calm', 'busy')")
        .await
        .unwrap();
    admin
        .batch_execute("CREATE TABLE moods (m mood NOT NULL)")
        .await
        .unwrap();

    #[derive(Debug, diesel::QueryableByName)]
    struct Label {
        #[diesel(sql_type = diesel::sql_types::Text)]
        label: String,
    }
    let insert =
        || diesel::sql_query("INSERT INTO moods VALUES ('busy') RETURNING m::text AS label, m");
    let err = {
        let mut conn = db.conn().await.unwrap();
        insert().get_result::<Label>(&mut conn).await.unwrap_err()
    };
    let err = Error::from(err);
    assert!(matches!(err, Error::CommitOutcomeUnknown(_)), "{err:?}");
    assert!(!err.is_retryable(), "{err:?}");
    eprintln!("the INSERT's error: {err}");
    // The client fails on the RowDescription, which the server sends before
    // it executes, and discards the connection. Whether the INSERT then
    // commits is truly unknown, which is why the error says so: usually it
    // does, moments later (its Execute, COMMIT and Sync were sent in the same
    // flight), but when PgBouncer sees the client leave before it has passed
    // the whole flight on, it rolls the server connection back (seen in CI
    // under load). Either way the count settles at 0 or 1, never more.
    // Settled once no server connection of the database is inside a
    // statement or a transaction any more.
    common::wait_until(
        "the refused INSERT's server connection to finish",
        Duration::from_secs(10),
        async || {
            #[derive(diesel::QueryableByName)]
            struct Busy {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let busy: Busy = diesel::sql_query(
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                   AND backend_type = 'client backend' AND state <> 'idle'",
            )
            .get_result(&mut admin)
            .await
            .unwrap();
            busy.n == 0
        },
    )
    .await;
    let settled = t.count("moods").await;
    assert!(settled <= 1, "{settled} rows");
    eprintln!("the refused INSERT committed: {}", settled == 1);
    // The pool of one discarded it: the next connection is new and knows the type.
    let mut conn = db.conn().await.unwrap();
    let label: Label = insert().get_result(&mut conn).await.unwrap();
    assert_eq!(label.label, "busy");
    assert_eq!(t.count("moods").await, settled + 1);
}

/// What cannot run behind a transaction-mode pooler is refused, naming the
/// setting: a session statement timeout, and migrations without a URL of
/// the server itself.
#[tokio::test(flavor = "multi_thread")]
async fn pooler_mode_refuses_what_would_leak_between_clients() {
    let t = TestDb::new().await;
    let mut config = Config::new(t.url.clone());
    config.pooler = Pooler::Transaction;
    config.statement_timeout = Some(Duration::from_secs(5));
    let err = Db::new(config).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("ALTER ROLE"), "{err}");

    let mut config = Config::new(t.url.clone());
    config.pooler = Pooler::Transaction;
    let db = Db::new(config.clone()).unwrap();
    let err = db.migrate().await.unwrap_err();
    assert!(err.to_string().contains("DATABASE_MIGRATION_URL"), "{err}");

    config.migration_url = Some(t.url.clone());
    let db = Db::new(config).unwrap();
    db.migrate().await.unwrap();

    let from_env = Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(t.url.clone()),
        "DB_POOLER" => Some("session".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(from_env.to_string().contains("DB_POOLER"), "{from_env}");
}

/// One process of `two_processes_through_one_pooler`: does nothing unless
/// that test started it (with `POOLER_LOAD_OUT` set).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pooler_load_worker() {
    let Ok(out) = std::env::var("POOLER_LOAD_OUT") else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k}"));
    let mut config = Config::new(var("POOLER_LOAD_URL"));
    config.pooler = Pooler::Transaction;
    config.pool_size = 16;
    let db = Db::new(config).unwrap();
    let per_task: usize = var("POOLER_LOAD_PER_TASK").parse().unwrap();
    let seen = load(&db, &var("POOLER_LOAD_TAG"), 16, per_task).await;
    let lines: String = seen
        .iter()
        .map(|(email, result)| match result {
            Ok(_) => format!("ok\t{email}\n"),
            Err(e) => format!("err\t{email}\t{}\n", e.to_string().replace('\n', " ")),
        })
        .collect();
    std::fs::write(out, lines).unwrap();
}

/// 16 tasks in each of two processes through one PgBouncer in pooler mode:
/// no error, every success committed whole, no failure committed. 1,024
/// signups (2,048 statements in transactions, plus reads) here; 50,016 with
/// `DB_TEST_LONG=1`.
#[tokio::test(flavor = "multi_thread")]
async fn two_processes_through_one_pooler() {
    let Some(bouncer) = bouncer() else { return };
    let t = TestDb::new().await;
    let long = std::env::var("DB_TEST_LONG").is_ok_and(|v| v == "1");
    let per_task = if long { 1563 } else { 32 };
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..2)
        .map(|p| {
            let out = dir.path().join(format!("p{p}.txt"));
            let child = tokio::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "pooler_load_worker", "--nocapture"])
                .env("POOLER_LOAD_OUT", &out)
                .env(
                    "POOLER_LOAD_URL",
                    common::through_bouncer(&bouncer, &t.name),
                )
                .env("POOLER_LOAD_TAG", format!("p{p}"))
                .env("POOLER_LOAD_PER_TASK", per_task.to_string())
                .env_remove("DB_TEST_POOLER")
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let mut seen = Vec::new();
    for (mut child, out) in children {
        assert!(child.wait().await.unwrap().success());
        for line in std::fs::read_to_string(out).unwrap().lines() {
            let mut parts = line.splitn(3, '\t');
            let (kind, email) = (parts.next().unwrap(), parts.next().unwrap().to_owned());
            let result = match kind {
                "ok" => Ok(()),
                _ => Err(parts.next().unwrap_or_default().to_owned()),
            };
            seen.push((email, result));
        }
    }
    assert_eq!(seen.len(), 2 * 16 * per_task);
    let failures: Vec<_> = seen.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_all_or_nothing(&t, &seen).await;
    eprintln!(
        "{} signups from two processes through PgBouncer: 0 errors, 0 partial",
        seen.len()
    );
}

/// `Db::run`'s client-side deadline in pooler mode: the call fails with
/// `Timeout { kind: Client }` on time, its connection is discarded, and the
/// pool goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn the_client_deadline_holds_in_pooler_mode() {
    let Some(bouncer) = bouncer() else { return };
    let t = TestDb::new().await;
    let mut config = Config::new(common::through_bouncer(&bouncer, &t.name));
    config.pooler = Pooler::Transaction;
    config.migration_url = Some(t.url.clone());
    config.query_timeout = Duration::from_millis(300);
    let db = Db::new(config).unwrap();
    let started = std::time::Instant::now();
    let err = db
        .run(async |conn| {
            diesel::sql_query("SELECT pg_sleep(5)")
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                kind: database::TimeoutKind::Client,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let n = db
        .run(async |conn| {
            Ok(users::find_by_email(conn, "nobody@example.com")
                .await
                .is_err())
        })
        .await
        .unwrap();
    assert!(n);
}

/// One process of `a_misconfigured_pooler_never_runs_another_statement`:
/// does nothing unless that test started it (with `MISCONFIGURED_OUT` set).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn misconfigured_pooler_worker() {
    let Ok(out) = std::env::var("MISCONFIGURED_OUT") else {
        return;
    };
    let url = std::env::var("MISCONFIGURED_URL").unwrap();
    let tag = std::env::var("MISCONFIGURED_TAG").unwrap();
    let mut config = Config::new(url);
    config.pool_size = 8;
    let direct = Db::new(config).unwrap();
    let seen = load(&direct, &tag, 8, 10).await;
    let lines: String = seen
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .map(|e| format!("{e:?}\n").replace('\n', " ") + "\n")
        .collect();
    std::fs::write(out, lines).unwrap();
}

/// Two processes in direct mode behind a transaction-mode pooler that hands
/// out its server connections in turn (`server_round_robin`, so a
/// connection's statements land on different server connections, where the
/// other process's statements of the same names live): every failure is the
/// error that names `DB_POOLER=transaction`, and the server's log
/// (`log_statement = all`, each line tagged with the client's
/// `application_name`) shows no statement name of a process executed with
/// two different texts, which is what running another client's statement
/// with this one's parameters looks like. (The crate used to run named
/// statements there: a third of the failures were plain database errors.)
#[tokio::test(flavor = "multi_thread")]
async fn a_misconfigured_pooler_never_runs_another_statement() {
    use database::migrate::{self, MigrationSet};
    use database::ops::cluster::{BouncerOptions, Options, TempCluster};
    use std::collections::{HashMap, HashSet};
    let cluster = match TempCluster::start(Options {
        settings: vec![
            "log_statement = 'all'".into(),
            "log_line_prefix = '%a|'".into(),
        ],
        ..Options::scratch()
    }) {
        Ok(c) => c,
        Err(e) => {
            skip_without("a throwaway cluster", &e);
            return;
        }
    };
    let url = cluster.url_of("postgres");
    migrate::run(
        &mut database::Conn::establish(&url).await.unwrap(),
        MigrationSet::embedded(),
    )
    .await
    .unwrap();
    let parsed = url::Url::parse(&url).unwrap();
    let mut options = BouncerOptions::transaction_mode(
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port().unwrap_or(5432),
    );
    options.pool_size = 4;
    options.server_round_robin = true;
    if let Some(secrets) = &cluster.record().secrets {
        options
            .server_passwords
            .push(("postgres".into(), secrets.superuser.clone()));
    }
    let bouncer = match TempPgBouncer::start(&options) {
        Ok(b) => b,
        Err(e) => {
            skip_without("pgbouncer", &e);
            return;
        }
    };
    let user = if parsed.username().is_empty() {
        "postgres"
    } else {
        parsed.username()
    };
    let through = bouncer.url_of(user, "postgres");
    let log_from = std::fs::metadata(cluster.log_path()).unwrap().len() as usize;
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..2)
        .map(|p| {
            let out = dir.path().join(format!("p{p}.txt"));
            let mut url = url::Url::parse(&through).unwrap();
            url.query_pairs_mut()
                .append_pair("application_name", &format!("misconfigured-p{p}"));
            let child = tokio::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "misconfigured_pooler_worker", "--nocapture"])
                .env("MISCONFIGURED_OUT", &out)
                .env("MISCONFIGURED_URL", url.to_string())
                .env("MISCONFIGURED_TAG", format!("p{p}"))
                .env_remove("DB_TEST_POOLER")
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let mut failures = Vec::new();
    for (mut child, out) in children {
        assert!(child.wait().await.unwrap().success());
        failures.extend(
            std::fs::read_to_string(out)
                .unwrap()
                .lines()
                .map(str::to_owned),
        );
    }
    assert!(!failures.is_empty(), "the misconfiguration went unnoticed");
    for e in &failures {
        assert!(
            e.starts_with("Config(") && e.contains("DB_POOLER=transaction"),
            "a failure that does not name the setting: {e}"
        );
    }
    // "misconfigured-p0|LOG:  execute s12: INSERT ...": one text per
    // (process, statement name), or a statement ran that was not its own.
    let log = std::fs::read_to_string(cluster.log_path()).unwrap();
    let mut texts: HashMap<(String, String), HashSet<String>> = HashMap::new();
    for line in log[log_from..].lines() {
        let Some((app, rest)) = line.split_once('|') else {
            continue;
        };
        let Some(rest) = rest.split("execute ").nth(1) else {
            continue;
        };
        let Some((name, sql)) = rest.split_once(": ") else {
            continue;
        };
        if app.starts_with("misconfigured-") && name.starts_with('s') {
            texts
                .entry((app.to_owned(), name.to_owned()))
                .or_default()
                .insert(sql.to_owned());
        }
    }
    let foreign: Vec<_> = texts.iter().filter(|(_, t)| t.len() > 1).collect();
    assert!(
        foreign.is_empty(),
        "statements ran with another statement's parameters: {foreign:?}"
    );
}

/// Two row streams open at once on one pooler-mode connection (the `&Conn`
/// path): the second is answered while the first is still unread. A stream
/// used to hold the connection's turn until it was dropped, so the second
/// request waited for it forever.
#[tokio::test(flavor = "multi_thread")]
async fn two_open_row_streams_on_one_pooler_connection_both_proceed() {
    use diesel::sql_types::Integer;
    use futures::TryStreamExt;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = Integer)]
        n: i32,
    }
    let Some(bouncer) = bouncer() else { return };
    let t = TestDb::new().await;
    let db = through(&bouncer, &t, Pooler::Transaction, 2);
    let mut conn = db.conn().await.unwrap();
    assert!(conn.is_pooler_mode());
    // Inside a transaction (outside one, each statement is its own
    // transaction, read whole before its COMMIT).
    let (first, second) = conn
        .transaction::<_, Error, _>(async |conn| {
            let shared: &database::Conn = conn;
            let (mut c1, mut c2) = (shared, shared);
            let first = diesel::sql_query("SELECT generate_series(1, 1000) AS n")
                .load_stream::<N>(&mut c1)
                .await?;
            let second = tokio::time::timeout(
                Duration::from_secs(5),
                diesel::sql_query("SELECT generate_series(1, 3) AS n").load_stream::<N>(&mut c2),
            )
            .await
            .expect(
                "the second stream opens while the first is unread (it waited for it forever)",
            )?;
            let second: Vec<i32> = second.map_ok(|r| r.n).try_collect().await?;
            let first: Vec<i32> = first.map_ok(|r| r.n).try_collect().await?;
            Ok((first, second))
        })
        .await
        .unwrap();
    assert_eq!(second, vec![1, 2, 3]);
    assert_eq!(first.len(), 1000);
    assert_eq!(first.last(), Some(&1000));
}

/// A statement outside a transaction under a context runs in a transaction
/// of its own that carries the settings: `BEGIN` with them, the statement
/// and `COMMIT`. Once the statement is prepared on the connection, all three
/// go out in one flight, one round trip like the statement alone; a
/// statement prepared anew on every run (a boxed query, or with the
/// statement cache off) needs the prepare's answer first, so its `COMMIT`
/// waits for the statement. A current-thread runtime: the driver then
/// writes what one poll queued in one write (see `common::wire`).
#[tokio::test(flavor = "current_thread")]
async fn a_statement_under_a_context_is_one_round_trip_once_prepared() {
    use common::wire::MessageCounter;
    use database::Ctx;

    let t = TestDb::new().await;
    let user = users::create(&mut t.conn().await, &new_user("trips@example.com"))
        .await
        .unwrap();
    let tenant = database::tenancy::tenants::create_with_owner(
        &mut *t.conn().await,
        &database::tenancy::NewTenant {
            name: "Trips".into(),
            slug: "trips".into(),
        },
        user.id,
    )
    .await
    .unwrap();
    let workflow = common::workflows::workflow(&mut *t.conn().await, tenant.id).await;
    let mut seen = Vec::new();
    for statement_cache in [true, false] {
        // As the service's role: a tenant context needs one that row-level
        // security applies to.
        let service = t.service_url();
        let counter = MessageCounter::in_front_of(&service).await;
        let mut config = Config::new(counter.url_through(&service));
        config.pool_size = 1;
        config.statement_cache = statement_cache;
        let db = Db::new(config).unwrap();
        let ctx = db.with(Ctx::tenant(tenant.id).user(user.id));
        let input = CreateTodo {
            title: "trip".into(),
            description: None,
            tenant_id: None,
        };
        macro_rules! trips {
            ($name:literal, $call:expr) => {{
                for _ in 0..2 {
                    $call;
                }
                let before = counter.sent().trips;
                for _ in 0..4 {
                    $call;
                }
                let trips = counter.sent().trips - before;
                seen.push((statement_cache, $name, trips as f64 / 4.0));
            }};
        }
        trips!("lookup", {
            let mut conn = ctx.conn().await.unwrap();
            users::find(&mut conn, user.id).await.unwrap();
        });
        trips!("insert", {
            let mut conn = ctx.conn().await.unwrap();
            todos::create(&mut conn, user.id, &input).await.unwrap();
        });
        trips!("boxed page", {
            let mut conn = ctx.conn().await.unwrap();
            todos::list_for_tenant(&mut conn, tenant.id, None, 5)
                .await
                .unwrap();
        });
        if !statement_cache {
            continue;
        }
        // Two reads pipelined (the workflow, its executions), then the steps.
        trips!("workflow tree", {
            let mut conn = ctx.conn().await.unwrap();
            database::workflows::workflows::find_with_recent_executions(
                &mut conn, tenant.id, workflow, 10,
            )
            .await
            .unwrap();
        });
    }
    let expected = vec![
        (true, "lookup", 1.0),
        (true, "insert", 1.0),
        // Cached by its SQL text (boxed, with the limit in the text).
        (true, "boxed page", 1.0),
        // The two pipelined reads share a flight, each in a transaction of
        // its own.
        (true, "workflow tree", 2.0),
        // Prepared on every run: BEGIN with the prepare, the statement,
        // COMMIT.
        (false, "lookup", 3.0),
        (false, "insert", 3.0),
        (false, "boxed page", 3.0),
    ];
    assert_eq!(
        seen, expected,
        "(statement cache, call, round trips per call)"
    );
}

/// Requests (simple queries and Syncs) and statements parsed per call, in
/// direct and pooler mode: pinned, so that a change that adds a request to a
/// call fails here (#29). Counted from the protocol messages, not timed, and
/// not round trips: several requests can share a flight. A context's
/// statement outside a transaction runs in one of its own (its settings
/// travel with its `BEGIN`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_sends_the_requests_it_is_known_to_send() {
    use common::wire::{MessageCounter, Sent};
    use database::Ctx;

    let t = TestDb::new().await;
    let bouncer = match start_bouncer() {
        Ok(b) => Some(b),
        Err(e) => {
            skip_without("pgbouncer (the pooler-mode half)", &e);
            None
        }
    };
    // A database of its own for the pooler with the login role's
    // statements bounded by the server (what `db setup` does for the
    // service role): the pooler's server connections keep the defaults
    // they logged in with, so the two pooler modes cannot share one.
    let bounded = TestDb::new().await;
    let query_timeout = Duration::from_secs(30);
    common::bound_login_role(&bounded, query_timeout).await;
    let mut modes = vec![("direct", &t, t.url.clone())];
    if let Some(bouncer) = &bouncer {
        modes.push(("pooler", &t, common::through_bouncer(bouncer, &t.name)));
        modes.push((
            "pooler-bounded",
            &bounded,
            common::through_bouncer(bouncer, &bounded.name),
        ));
    }
    let mut seen = Vec::new();
    for (mode, t, upstream) in modes {
        let counter = MessageCounter::in_front_of(&upstream).await;
        let mut config = Config::new(counter.url_through(&upstream));
        config.pool_size = 1;
        config.query_timeout = query_timeout;
        if mode != "direct" {
            config.pooler = Pooler::Transaction;
            config.migration_url = Some(t.url.clone());
        }
        let db = Db::new(config).unwrap();
        let mut conn = db.conn().await.unwrap();
        let user = users::create(&mut conn, &new_user(&format!("{mode}-wire@example.com")))
            .await
            .unwrap();
        drop(conn);
        let as_user = db.with(Ctx::default().user(user.id));
        // A workflow with executions enough to read a tree of and to claim.
        let mut direct = t.conn().await;
        let tenant = database::tenancy::tenants::create_with_owner(
            &mut direct,
            &database::tenancy::NewTenant {
                name: format!("Wire {mode}"),
                slug: format!("wire-{mode}"),
            },
            user.id,
        )
        .await
        .unwrap();
        let workflow = common::workflows::workflow(&mut direct, tenant.id).await;
        let start_input = StartExecution {
            user_id: Some(user.id),
            input: serde_json::json!({}),
            max_attempts: 3,
        };
        for _ in 0..10 {
            executions::start(&mut direct, tenant.id, workflow, &start_input)
                .await
                .unwrap();
        }
        // Invites to accept, one per call, each for a user of its own.
        let mut invites = Vec::new();
        for i in 0..8 {
            let email = format!("invitee{i}-{mode}@example.com");
            let invitee = users::create(&mut direct, &new_user(&email)).await.unwrap();
            let sent = database::tenancy::tenant_invites::invite(
                &mut direct,
                tenant.id,
                user.id,
                &common::tenancy::invite_input(&email, database::tenancy::TenantRole::Member),
            )
            .await
            .unwrap();
            invites.push((sent.token.expose().to_owned(), invitee.id));
        }
        drop(direct);
        let input = CreateTodo {
            title: "wire".into(),
            description: None,
            tenant_id: None,
        };
        macro_rules! per_call {
            ($name:literal, $call:expr) => {{
                for _ in 0..3 {
                    $call;
                }
                let before = counter.sent();
                for _ in 0..5 {
                    $call;
                }
                let after = counter.sent();
                let requests = after.requests - before.requests;
                let parses = after.parses - before.parses;
                assert_eq!(
                    requests % 5,
                    0,
                    "{mode} {}: {requests} requests in 5 calls",
                    $name
                );
                seen.push((
                    mode,
                    $name,
                    Sent {
                        requests: requests / 5,
                        parses: parses / 5,
                        trips: (after.trips - before.trips) / 5,
                    },
                ));
            }};
        }
        per_call!("lookup", {
            let mut conn = db.conn().await.unwrap();
            users::find(&mut conn, user.id).await.unwrap();
        });
        per_call!("insert", {
            let mut conn = db.conn().await.unwrap();
            todos::create(&mut conn, user.id, &input).await.unwrap();
        });
        per_call!("transaction of two", {
            db.transaction(async |conn| {
                users::find(conn, user.id).await?;
                users::find(conn, user.id).await
            })
            .await
            .unwrap();
        });
        per_call!("lookup under a context", {
            let mut conn = as_user.conn().await.unwrap();
            users::find(&mut conn, user.id).await.unwrap();
        });
        per_call!("workflow tree", {
            let mut conn = db.conn().await.unwrap();
            database::workflows::workflows::find_with_recent_executions(
                &mut conn, tenant.id, workflow, 10,
            )
            .await
            .unwrap();
        });
        per_call!("claim", {
            let mut conn = db.conn().await.unwrap();
            let claimed = executions::claim_next(&mut conn, tenant.id, "wire")
                .await
                .unwrap();
            assert!(claimed.is_some());
        });
        per_call!("start execution", {
            let mut conn = db.conn().await.unwrap();
            executions::start(&mut conn, tenant.id, workflow, &start_input)
                .await
                .unwrap();
        });
        per_call!("accept invite", {
            let (token, invitee) = invites.pop().unwrap();
            let mut conn = db.conn().await.unwrap();
            database::tenancy::tenant_invites::accept(&mut conn, tenant.id, &token, invitee)
                .await
                .unwrap();
        });
    }
    let expected = [
        ("direct", "lookup", 1, 0),
        ("direct", "insert", 1, 0),
        ("direct", "transaction of two", 4, 0),
        ("direct", "lookup under a context", 3, 0),
        ("direct", "workflow tree", 3, 0),
        ("direct", "claim", 1, 0),
        ("direct", "start execution", 5, 0),
        ("direct", "accept invite", 1, 0),
        // Every pooler-mode statement outside a transaction runs in one of
        // its own that carries its timeouts: BEGIN, the statement and COMMIT
        // are three requests, sent in one flight.
        ("pooler", "lookup", 3, 1),
        ("pooler", "insert", 3, 1),
        ("pooler", "transaction of two", 4, 2),
        ("pooler", "lookup under a context", 3, 1),
        ("pooler", "workflow tree", 9, 3),
        ("pooler", "claim", 3, 1),
        ("pooler", "start execution", 5, 3),
        ("pooler", "accept invite", 3, 1),
        // With the role's statement_timeout on the server at the call's
        // bound, a statement outside a transaction goes alone; a context's
        // settings still need a transaction to apply in.
        ("pooler-bounded", "lookup", 1, 1),
        ("pooler-bounded", "insert", 1, 1),
        ("pooler-bounded", "transaction of two", 4, 2),
        ("pooler-bounded", "lookup under a context", 3, 1),
        ("pooler-bounded", "workflow tree", 3, 3),
        ("pooler-bounded", "claim", 1, 1),
        ("pooler-bounded", "start execution", 5, 3),
        ("pooler-bounded", "accept invite", 1, 1),
    ];
    for (mode, name, sent) in &seen {
        let (_, _, requests, parses) = expected
            .iter()
            .find(|(m, n, _, _)| m == mode && n == name)
            .unwrap();
        assert_eq!(
            (sent.requests, sent.parses),
            (*requests, *parses),
            "{mode} {name}: requests and parses per call (all: {seen:?})"
        );
    }
}

/// Behind a pooler, a role whose statements the server does not bound as
/// each call is bounded makes every statement outside a transaction run in
/// a transaction of its own: the pool says so, once, naming what to set.
/// With the role bounded (`db setup`), it says nothing.
#[tokio::test(flavor = "current_thread")]
async fn a_role_the_server_does_not_bound_is_named_once() {
    let Some(bouncer) = bouncer() else { return };
    // Both databases ready before anything is captured: under
    // DB_TEST_POOLER=1 a `TestDb`'s own connections go through a pooler too,
    // and its pool would speak for itself.
    let unbounded = TestDb::new().await;
    let bounded = TestDb::new().await;
    common::bound_login_role(&bounded, Config::new(String::new()).query_timeout).await;
    let (captured, _guard) = common::Captured::install("database=warn");
    let warning = "the role's statement_timeout on the server is not between";

    let db = through(&bouncer, &unbounded, Pooler::Transaction, 3);
    let conns = [
        db.conn().await.unwrap(),
        db.conn().await.unwrap(),
        db.conn().await.unwrap(),
    ];
    drop(conns);
    let logs = captured.text();
    assert_eq!(logs.matches(warning).count(), 1, "{logs}");
    assert!(
        logs.contains("db setup") && logs.contains("ALTER ROLE"),
        "{logs}"
    );

    let db = through(&bouncer, &bounded, Pooler::Transaction, 2);
    drop([db.conn().await.unwrap(), db.conn().await.unwrap()]);
    let logs = captured.text();
    assert_eq!(logs.matches(warning).count(), 1, "{logs}");
}
