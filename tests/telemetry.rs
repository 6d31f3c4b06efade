//! Observability (#27): the spans of each workload, attribute by attribute
//! against OpenTelemetry's database client conventions, recorded in memory
//! by a `tracing` layer (tests/common/recorder.rs) with every level on; and
//! that no bind value, password or token reaches a span, an event or a
//! metric label. One file past 600 lines: a test binary can install its
//! global subscriber once, and every workload here shares it and the
//! assertion helpers.

mod common;
// Only this binary records spans (the cli's tests share tests/common).
#[path = "common/recorder.rs"]
mod recorder;

use std::time::Duration;

use common::{TestDb, skip_without, start_bouncer};
use database::auth::{NewUser, users};
use database::features::todos::{self, CreateTodo};
use database::{Config, Db, Error};
use diesel_async::RunQueryDsl;
use recorder::{Recorded, SpanRecord};
use tracing::Instrument;

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.to_owned(),
        ..Default::default()
    }
}

/// The statement spans on test database `name`.
fn statements(recorded: &Recorded, name: &str) -> Vec<SpanRecord> {
    let namespace = format!("{name}.public");
    recorded
        .spans()
        .into_iter()
        .filter(|s| s.name == "db.query" && s.get("db.namespace") == Some(namespace.as_str()))
        .collect()
}

/// The statement spans of `name` whose summary is `summary`.
fn with_summary(recorded: &Recorded, name: &str, summary: &str) -> Vec<SpanRecord> {
    statements(recorded, name)
        .into_iter()
        .filter(|s| s.get("db.query.summary") == Some(summary))
        .collect()
}

/// The attributes every PostgreSQL statement span carries.
fn assert_postgres_client_span(span: &SpanRecord, name: &str, operation: &str, table: &str) {
    let server = common::server_url();
    assert_eq!(span.target, "database");
    assert_eq!(span.level, tracing::Level::INFO);
    assert_eq!(span.get("otel.kind"), Some("client"), "{span:?}");
    assert_eq!(span.get("db.system.name"), Some("postgresql"));
    assert_eq!(
        span.get("db.namespace"),
        Some(format!("{name}.public").as_str())
    );
    assert_eq!(span.get("db.operation.name"), Some(operation));
    assert_eq!(span.get("db.collection.name"), Some(table));
    let summary = format!("{operation} {table}");
    assert!(
        span.get("db.query.summary")
            .is_some_and(|s| s.starts_with(&summary)),
        "{span:?}"
    );
    assert_eq!(span.get("otel.name"), span.get("db.query.summary"));
    assert_eq!(span.get("server.address"), server.host_str());
    let port = server.port().unwrap_or(5432).to_string();
    assert_eq!(span.get("server.port"), Some(port.as_str()));
    let text = span.get("db.query.text").expect("db.query.text");
    assert!(text.starts_with(operation), "{text}");
    assert!(span.closed, "the statement's span ended: {span:?}");
}

/// A batch (several statements in one simple-protocol string) says how
/// many it holds; a single statement does not carry the attribute.
#[tokio::test]
async fn a_batch_says_how_many_statements_it_holds() {
    use diesel_async::SimpleAsyncConnection;
    let recorded = recorder::install();
    let t = TestDb::new().await;
    let mut conn = t.owner.conn().await.unwrap();
    conn.batch_execute("CREATE TEMP TABLE batch_probe (n int); INSERT INTO batch_probe VALUES (1); DROP TABLE batch_probe")
        .await
        .unwrap();
    conn.batch_execute("CREATE TEMP TABLE single_probe (n int)")
        .await
        .unwrap();
    drop(conn);
    let spans = statements(&recorded, &t.name);
    let batch = spans
        .iter()
        .find(|s| {
            s.get("db.query.text")
                .is_some_and(|q| q.contains("batch_probe"))
        })
        .expect("the batch's span");
    assert_eq!(
        batch.get("db.operation.batch.size"),
        Some("3"),
        "{batch:#?}"
    );
    let single = spans
        .iter()
        .find(|s| {
            s.get("db.query.text")
                .is_some_and(|q| q.contains("single_probe"))
        })
        .expect("the single statement's span");
    assert_eq!(single.get("db.operation.batch.size"), None, "{single:#?}");
}

/// `DB_TRACE_RETURNED_ROWS` (opt-in in the conventions) gives each
/// statement's span the rows it returned; off, the attribute is absent.
#[tokio::test]
async fn returned_rows_are_counted_only_when_asked() {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[allow(dead_code)]
        relname: String,
    }
    let recorded = recorder::install();
    let t = TestDb::new().await;
    let sql = "SELECT relname::text AS relname FROM pg_class ORDER BY oid LIMIT 3";
    for trace_returned_rows in [false, true] {
        let mut config = Config::new(&t.url);
        config.trace_returned_rows = trace_returned_rows;
        let db = Db::new(config).unwrap();
        let mut conn = db.conn().await.unwrap();
        let rows: Vec<Name> = diesel::sql_query(sql).load(&mut conn).await.unwrap();
        assert_eq!(rows.len(), 3);
    }
    let spans = with_summary(&recorded, &t.name, "SELECT pg_class");
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert_eq!(spans[0].get("db.response.returned_rows"), None);
    assert_eq!(spans[1].get("db.response.returned_rows"), Some("3"));
}

#[tokio::test]
async fn a_primary_key_lookup_is_one_client_span() {
    let recorded = recorder::install();
    let t = TestDb::new().await;
    let mut conn = t.owner.conn().await.unwrap();
    let user = users::create(&mut conn, &new_user("lookup@example.com"))
        .await
        .unwrap();
    users::find(&mut conn, user.id).await.unwrap();
    drop(conn);

    let selects = with_summary(&recorded, &t.name, "SELECT users");
    assert_eq!(selects.len(), 1, "{selects:#?}");
    let span = &selects[0];
    assert_postgres_client_span(span, &t.name, "SELECT", "users");
    let text = span.get("db.query.text").unwrap();
    assert!(text.contains("$1"), "parameterised: {text}");
    assert!(
        !text.contains(&user.id.to_string()),
        "no bind value: {text}"
    );
    assert_eq!(span.get("error.type"), None);
    assert_eq!(span.get("db.response.status_code"), None);
    assert_eq!(span.get("otel.status_code"), None);
    assert_eq!(span.get("database.route"), Some("primary"));
    assert_eq!(span.get("database.route.reason"), Some("requested"));
    assert_eq!(span.get("database.pooler_mode"), Some("false"));

    // A read asked of a Db without replicas runs on the primary, and says why.
    let mut read = t.owner.read().await.unwrap();
    users::find_by_email(&mut read, "lookup@example.com")
        .await
        .unwrap();
    drop(read);
    let reads = with_summary(&recorded, &t.name, "SELECT users");
    assert_eq!(reads.len(), 2, "{reads:#?}");
    assert_eq!(reads[1].get("database.route"), Some("primary"));
    assert_eq!(reads[1].get("database.route.reason"), Some("no_replicas"));
}

#[tokio::test]
async fn a_unique_violation_records_its_sqlstate() {
    let recorded = recorder::install();
    let t = TestDb::new().await;
    let mut conn = t.owner.conn().await.unwrap();
    users::create(&mut conn, &new_user("twice@example.com"))
        .await
        .unwrap();
    let again = users::create(&mut conn, &new_user("twice@example.com")).await;
    assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
    drop(conn);

    let inserts = with_summary(&recorded, &t.name, "INSERT users");
    assert_eq!(inserts.len(), 2, "{inserts:#?}");
    assert_postgres_client_span(&inserts[0], &t.name, "INSERT", "users");
    assert_eq!(inserts[0].get("error.type"), None);
    let failed = &inserts[1];
    assert_postgres_client_span(failed, &t.name, "INSERT", "users");
    assert_eq!(failed.get("db.response.status_code"), Some("23505"));
    assert_eq!(failed.get("error.type"), Some("23505"));
    assert_eq!(failed.get("otel.status_code"), Some("ERROR"));
}

#[tokio::test]
async fn a_transaction_is_the_parent_of_its_statements() {
    let recorded = recorder::install();
    let t = TestDb::new().await;
    let user = t
        .owner
        .run(async |conn| users::create(conn, &new_user("tx@example.com")).await)
        .await
        .unwrap();
    t.owner
        .transaction(async |conn| {
            users::find(conn, user.id).await?;
            todos::create(
                conn,
                user.id,
                &CreateTodo {
                    title: "one".into(),
                    ..Default::default()
                },
            )
            .await?;
            todos::list_for_user(conn, user.id, None, 10).await?;
            Ok(())
        })
        .await
        .unwrap();

    let namespace = format!("{}.public", t.name);
    let transactions: Vec<_> = recorded
        .spans()
        .into_iter()
        .filter(|s| s.name == "db.transaction" && s.get("db.namespace") == Some(namespace.as_str()))
        .collect();
    assert_eq!(transactions.len(), 1, "{transactions:#?}");
    let tx = &transactions[0];
    assert_eq!(tx.get("otel.kind"), Some("internal"));
    assert_eq!(tx.get("otel.name"), Some("transaction"));
    assert_eq!(tx.get("db.system.name"), Some("postgresql"));
    assert_eq!(tx.get("database.transaction.outcome"), Some("commit"));
    assert_eq!(tx.get("error.type"), None);
    assert!(tx.closed);

    let children: Vec<_> = statements(&recorded, &t.name)
        .into_iter()
        .filter(|s| s.parent == Some(tx.seq))
        .collect();
    let summaries: Vec<_> = children
        .iter()
        .map(|s| s.get("db.query.summary").unwrap())
        .collect();
    assert_eq!(
        summaries,
        ["SELECT users", "INSERT todos", "SELECT todos"],
        "{children:#?}"
    );
    assert_postgres_client_span(&children[0], &t.name, "SELECT", "users");
    assert_postgres_client_span(&children[1], &t.name, "INSERT", "todos");
    assert_postgres_client_span(&children[2], &t.name, "SELECT", "todos");
    // The statement before the transaction is not its child.
    let before = with_summary(&recorded, &t.name, "INSERT users");
    assert_eq!(before.len(), 1);
    assert_ne!(before[0].parent, Some(tx.seq));
}

#[tokio::test]
async fn a_keyset_page_is_one_select_with_its_limit_as_a_parameter() {
    let recorded = recorder::install();
    let t = TestDb::new().await;
    let mut conn = t.owner.conn().await.unwrap();
    let user = users::create(&mut conn, &new_user("page@example.com"))
        .await
        .unwrap();
    for title in ["a", "b", "c"] {
        todos::create(
            &mut conn,
            user.id,
            &CreateTodo {
                title: title.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let first = todos::list_for_user(&mut conn, user.id, None, 2)
        .await
        .unwrap();
    let cursor = first.next.expect("a second page");
    todos::list_for_user(&mut conn, user.id, Some(cursor), 2)
        .await
        .unwrap();
    drop(conn);

    let pages = with_summary(&recorded, &t.name, "SELECT todos");
    assert_eq!(pages.len(), 2, "{pages:#?}");
    for page in &pages {
        assert_postgres_client_span(page, &t.name, "SELECT", "todos");
        let text = page.get("db.query.text").unwrap();
        assert!(text.contains("LIMIT"), "{text}");
        assert!(!text.contains(&user.id.to_string()), "{text}");
    }
    // The second page's condition on the cursor makes it another shape.
    assert_ne!(pages[0].get("db.query.text"), pages[1].get("db.query.text"));
}

#[tokio::test]
async fn waiting_on_an_exhausted_pool_is_a_span() {
    let recorded = recorder::install();
    let t = TestDb::new().await;
    let mut config = Config::new(t.url.clone());
    config.pool_size = 1;
    config.wait_timeout = Duration::from_millis(200);
    let db = Db::new(config).unwrap();
    let root = tracing::info_span!("test.pool_wait");
    let root_seq = recorded.seq_of(&root);
    async {
        let held = db.conn().await.unwrap();
        let waited = db.conn().await;
        assert!(matches!(waited, Err(Error::Unavailable(_))), "{waited:?}");
        drop(held);
        db.conn().await.unwrap();
    }
    .instrument(root)
    .await;

    let waits: Vec<_> = recorded
        .tree(root_seq)
        .into_iter()
        .filter(|s| s.name == "db.pool.wait")
        .collect();
    assert_eq!(waits.len(), 3, "{waits:#?}");
    for wait in &waits {
        assert_eq!(wait.parent, Some(root_seq));
        assert_eq!(wait.get("otel.kind"), Some("internal"));
        assert_eq!(wait.get("otel.name"), Some("pool wait"));
        assert_eq!(wait.get("db.system.name"), Some("postgresql"));
        assert_eq!(wait.get("db.client.connection.pool.name"), Some("primary"));
        assert!(wait.closed);
    }
    assert_eq!(waits[0].get("error.type"), None);
    assert_eq!(waits[1].get("error.type"), Some("timeout"));
    assert_eq!(waits[1].get("otel.status_code"), Some("ERROR"));
    assert_eq!(waits[2].get("error.type"), None);
}

#[tokio::test]
async fn a_pooler_mode_query_is_the_same_span_marked_pooler_mode() {
    let recorded = recorder::install();
    let bouncer = match start_bouncer() {
        Ok(b) => b,
        Err(e) => {
            skip_without("pgbouncer", &e);
            return;
        }
    };
    let t = TestDb::new().await;
    let mut config = Config::new(common::through_bouncer(&bouncer, &t.name));
    config.pooler = database::db::Pooler::Transaction;
    config.migration_url = Some(t.url.clone());
    let db = Db::new(config).unwrap();
    let mut conn = db.conn().await.unwrap();
    assert!(conn.is_pooler_mode());
    let user = users::create(&mut conn, &new_user("pooler@example.com"))
        .await
        .unwrap();
    users::find(&mut conn, user.id).await.unwrap();
    drop(conn);

    let selects = with_summary(&recorded, &t.name, "SELECT users");
    assert_eq!(selects.len(), 1, "{selects:#?}");
    let span = &selects[0];
    assert_eq!(span.get("otel.kind"), Some("client"));
    assert_eq!(span.get("db.system.name"), Some("postgresql"));
    assert_eq!(span.get("db.operation.name"), Some("SELECT"));
    assert_eq!(span.get("db.collection.name"), Some("users"));
    assert_eq!(span.get("database.pooler_mode"), Some("true"));
    let bouncer_url = url::Url::parse(&common::through_bouncer(&bouncer, &t.name)).unwrap();
    assert_eq!(span.get("server.address"), bouncer_url.host_str());
    let port = bouncer_url.port().unwrap().to_string();
    assert_eq!(span.get("server.port"), Some(port.as_str()));
    assert!(span.get("db.query.text").unwrap().contains("$1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_query_is_a_client_span_of_system_sqlite() {
    let recorded = recorder::install();
    let t = common::any::AnyTestDb::sqlite().await;
    let mut conn = t.conn().await;
    let user = users::create(&mut conn, &new_user("lite@example.com"))
        .await
        .unwrap();
    users::find(&mut conn, user.id).await.unwrap();
    drop(conn);

    let path = match &t.db {
        database::AnyDb::Sqlite(db) => match db.target() {
            database::db::sqlite::SqliteTarget::File(path) => path.to_string_lossy().into_owned(),
            other => panic!("{other:?}"),
        },
        _ => unreachable!(),
    };
    let selects: Vec<_> = recorded
        .spans()
        .into_iter()
        .filter(|s| {
            s.name == "db.query"
                && s.get("db.namespace") == Some(path.as_str())
                && s.get("db.query.summary") == Some("SELECT users")
        })
        .collect();
    assert_eq!(selects.len(), 1, "{selects:#?}");
    let span = &selects[0];
    assert_eq!(span.get("otel.kind"), Some("client"));
    assert_eq!(span.get("otel.name"), Some("SELECT users"));
    assert_eq!(span.get("db.system.name"), Some("sqlite"));
    assert_eq!(span.get("db.operation.name"), Some("SELECT"));
    assert_eq!(span.get("db.collection.name"), Some("users"));
    let text = span.get("db.query.text").unwrap();
    assert!(text.starts_with("SELECT"), "{text}");
    assert!(!text.contains("binds"), "{text}");
    assert!(!text.contains(&user.id.to_string()), "{text}");
    assert_eq!(span.get("server.address"), None);
    assert!(span.closed);
}

// Metrics through a local recorder on this thread (see the metrics test
// below), spans and events through the binary's recorder.
#[test]
fn no_bind_value_password_or_token_reaches_telemetry() {
    let metrics_recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = metrics_recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secrets =
        metrics::with_local_recorder(&metrics_recorder, || runtime.block_on(secret_workload()));
    let metrics = metrics_of(snapshotter.snapshot());
    assert!(!metrics.is_empty(), "the workload was measured");
    for (name, labels, _) in metrics {
        for (key, value) in labels {
            for secret in &secrets {
                assert!(
                    !value.contains(secret.as_str()),
                    "metric {name} label {key}: {value}"
                );
            }
        }
    }
}

/// Sends a marker, a token and a password through a workload; asserts no
/// span or event shows them; returns them for the metrics' check.
async fn secret_workload() -> Vec<String> {
    let recorded = recorder::install();
    let marker = format!("marker{}x", std::process::id());
    let token = format!("tok{}secret", std::process::id());
    let t = TestDb::new().await;
    // The crate's query logger on: every statement (and every failure) at
    // DEBUG on one handle, every statement as "slow" on the others.
    let logging = |mut c: Config, slow: bool| {
        c.log_queries = true;
        c.slow_query = slow.then_some(Duration::ZERO);
        Db::new(c).unwrap()
    };
    // The service role logs in with a password (the URL carries it).
    let service = t.service_db();
    let password = url::Url::parse(&service.config().database_url)
        .unwrap()
        .password()
        .expect("the service URL has a password")
        .to_owned();
    let service = logging(service.config().clone(), true);
    let mut handles = vec![
        logging(t.owner.config().clone(), false),
        logging(t.owner.config().clone(), true),
    ];
    // Pooler mode renders its statements itself: the same workload there.
    let bouncer = match start_bouncer() {
        Ok(b) => Some(b),
        Err(e) => {
            skip_without("pgbouncer (the pooler-mode half)", &e);
            None
        }
    };
    if let Some(bouncer) = &bouncer {
        let mut c = Config::new(common::through_bouncer(bouncer, &t.name));
        c.pooler = database::db::Pooler::Transaction;
        c.migration_url = Some(t.url.clone());
        handles.push(logging(c.clone(), false));
        handles.push(logging(c, true));
    }

    for (i, db) in handles.iter().enumerate() {
        let email = format!("{marker}{i}@example.com");
        let mut conn = db.conn().await.unwrap();
        let user = users::create(&mut conn, &new_user(&email)).await.unwrap();
        users::find_by_email(&mut conn, &email).await.unwrap();
        let again = users::create(&mut conn, &new_user(&email)).await;
        assert!(again.is_err());
        // A server message that would quote the value.
        let bad = diesel::sql_query("SELECT $1::uuid")
            .bind::<diesel::sql_types::Text, _>(&token)
            .execute(&mut conn)
            .await;
        assert!(bad.is_err());
        drop(conn);
        db.transaction(async |conn| {
            todos::create(
                conn,
                user.id,
                &CreateTodo {
                    title: token.clone(),
                    description: Some(marker.clone()),
                    ..Default::default()
                },
            )
            .await?;
            Ok(())
        })
        .await
        .unwrap();
    }
    let mut conn = service.conn().await.unwrap();
    let _ = diesel::sql_query("SELECT $1::text")
        .bind::<diesel::sql_types::Text, _>(&marker)
        .execute(&mut conn)
        .await;
    drop(conn);

    let spans = recorded.spans();
    assert!(
        statements(&recorded, &t.name).len() >= 6,
        "the workload was recorded"
    );
    let secrets = [marker.as_str(), token.as_str(), password.as_str()];
    for span in &spans {
        for (key, value) in &span.fields {
            for secret in secrets {
                assert!(
                    !value.contains(secret),
                    "span {} field {key}: {value}",
                    span.name
                );
            }
        }
    }
    let events = recorded.events();
    assert!(
        events.iter().any(|e| e.target == "database::query"),
        "the query logger wrote events"
    );
    for event in &events {
        for (key, value) in &event.fields {
            for secret in secrets {
                assert!(
                    !value.contains(secret),
                    "event {} field {key}: {value}",
                    event.target
                );
            }
        }
    }
    vec![marker, token, password]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_run_is_a_span_with_a_child_per_migration() {
    let recorded = recorder::install();
    let t = TestDb::empty().await;
    let root = tracing::info_span!("test.migrate");
    let root_seq = recorded.seq_of(&root);
    let report = t.owner.migrate().instrument(root).await.unwrap();
    assert!(!report.applied.is_empty());

    let tree = recorded.tree(root_seq);
    let runs: Vec<_> = tree.iter().filter(|s| s.name == "db.migrate").collect();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = runs[0];
    assert_eq!(run.parent, Some(root_seq));
    assert_eq!(run.get("otel.kind"), Some("internal"));
    assert_eq!(run.get("otel.name"), Some("migrate"));
    assert_eq!(run.get("db.system.name"), Some("postgresql"));
    let applied = report.applied.len().to_string();
    assert_eq!(
        run.get("database.migrations.applied"),
        Some(applied.as_str())
    );
    assert_eq!(run.get("error.type"), None);

    let migrations: Vec<_> = tree.iter().filter(|s| s.name == "db.migration").collect();
    let names: Vec<_> = migrations
        .iter()
        .map(|s| s.get("database.migration.name").unwrap().to_owned())
        .collect();
    assert_eq!(names, report.applied);
    for m in &migrations {
        assert_eq!(m.parent, Some(run.seq));
        assert_eq!(m.get("otel.kind"), Some("internal"));
        let name = format!("migration {}", m.get("database.migration.name").unwrap());
        assert_eq!(m.get("otel.name"), Some(name.as_str()));
        assert!(m.get("database.migration.version").is_some());
        assert!(m.closed);
    }
    // Each migration's statements are spans under it (directly, or under
    // its transaction).
    let first = migrations[1].seq;
    assert!(
        recorded
            .tree(first)
            .iter()
            .any(|s| s.name == "db.query" && s.get("otel.kind") == Some("client")),
        "{:#?}",
        recorded.tree(first)
    );
}

/// One metric of a snapshot: its name, labels (sorted) and value.
type Metric = (
    String,
    Vec<(String, String)>,
    metrics_util::debugging::DebugValue,
);

fn metrics_of(snapshot: metrics_util::debugging::Snapshot) -> Vec<Metric> {
    snapshot
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<_> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            (key.name().to_owned(), labels, value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

fn find<'a>(metrics: &'a [Metric], name: &str, with: &[(&str, &str)]) -> &'a Metric {
    let want = labels(with);
    metrics
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .unwrap_or_else(|| panic!("no {name} {want:?} in {metrics:#?}"))
}

fn histogram(metric: &Metric) -> Vec<f64> {
    match &metric.2 {
        metrics_util::debugging::DebugValue::Histogram(values) => {
            values.iter().map(|v| v.0).collect()
        }
        other => panic!("{} is not a histogram: {other:?}", metric.0),
    }
}

fn gauge(metric: &Metric) -> f64 {
    match &metric.2 {
        metrics_util::debugging::DebugValue::Gauge(v) => v.0,
        other => panic!("{} is not a gauge: {other:?}", metric.0),
    }
}

// Handles are cached per pool: a recorder that arrives after the `Db` was
// built and had already measured calls (into the no-op recorder) must still
// receive the next ones, and a second recorder after it its own.
#[test]
fn a_recorder_installed_after_the_db_receives_its_metrics() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (t, db, user) = runtime.block_on(async {
        let t = TestDb::new().await;
        let db = Db::new(Config::new(t.url.clone())).unwrap();
        let mut conn = db.conn().await.unwrap();
        let user = users::create(&mut conn, &new_user("late@example.com"))
            .await
            .unwrap();
        users::find(&mut conn, user.id).await.unwrap();
        drop(conn);
        (t, db, user.id)
    });
    for lookups in [2, 3] {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let mut conn = db.conn().await.unwrap();
                for _ in 0..lookups {
                    users::find(&mut conn, user).await.unwrap();
                }
            })
        });
        let seen = metrics_of(snapshotter.snapshot());
        let selects = histogram(find(
            &seen,
            "db.client.operation.duration",
            &[
                ("db.system.name", "postgresql"),
                ("db.client.connection.pool.name", "primary"),
                ("db.operation.name", "SELECT"),
                ("db.collection.name", "users"),
            ],
        ));
        assert_eq!(selects.len(), lookups, "{seen:?}");
        let waits = histogram(find(
            &seen,
            "db.client.connection.wait_time",
            &[
                ("db.system.name", "postgresql"),
                ("db.client.connection.pool.name", "primary"),
            ],
        ));
        assert_eq!(waits.len(), 1, "{seen:?}");
    }
    drop(t);
}

// The recorder is this thread's only (`with_local_recorder`), and the
// workload runs on a current-thread runtime inside it: the other tests of
// this binary, running at the same time, record nothing into it.
#[test]
fn the_duration_histogram_and_the_pool_gauges_move_under_a_small_load() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let during = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let t = TestDb::new().await;
            let mut config = Config::new(t.url.clone());
            config.pool_size = 2;
            config.wait_timeout = Duration::from_millis(200);
            let db = Db::new(config).unwrap();
            let mut conn = db.conn().await.unwrap();
            let user = users::create(&mut conn, &new_user("metrics@example.com"))
                .await
                .unwrap();
            for _ in 0..3 {
                users::find(&mut conn, user.id).await.unwrap();
            }
            let taken = users::create(&mut conn, &new_user("metrics@example.com")).await;
            assert!(taken.is_err());
            let second = db.conn().await.unwrap();
            let during = metrics_of(snapshotter.snapshot());
            // Both connections out: the third caller times out.
            assert!(db.conn().await.is_err());
            drop(second);
            drop(conn);
            (during, t, user.id)
        })
    });
    let (during, _t, user_id) = during;
    let after = metrics_of(snapshotter.snapshot());

    let pool = ("db.client.connection.pool.name", "primary");
    let system = ("db.system.name", "postgresql");
    let selects = histogram(find(
        &during,
        "db.client.operation.duration",
        &[
            system,
            pool,
            ("db.operation.name", "SELECT"),
            ("db.collection.name", "users"),
        ],
    ));
    assert_eq!(selects.len(), 3, "{selects:?}");
    assert!(
        selects.iter().all(|s| *s > 0.0 && *s < 10.0),
        "seconds: {selects:?}"
    );
    let inserts = histogram(find(
        &during,
        "db.client.operation.duration",
        &[
            system,
            pool,
            ("db.operation.name", "INSERT"),
            ("db.collection.name", "users"),
        ],
    ));
    assert_eq!(inserts.len(), 1);
    let failed = histogram(find(
        &during,
        "db.client.operation.duration",
        &[
            system,
            pool,
            ("db.operation.name", "INSERT"),
            ("db.collection.name", "users"),
            ("error.type", "23505"),
        ],
    ));
    assert_eq!(failed.len(), 1);
    // No label carries query text, ids or addresses.
    for (name, labels, _) in &during {
        for (key, value) in labels {
            assert!(
                [
                    "db.system.name",
                    "db.operation.name",
                    "db.collection.name",
                    "db.client.connection.pool.name",
                    "db.client.connection.state",
                    "error.type"
                ]
                .contains(&key.as_str()),
                "{name}: label {key}={value}"
            );
            assert!(!value.contains(&user_id.to_string()));
        }
    }

    // Two connections out, both opened, none waiting.
    let state = |s| ("db.client.connection.state", s);
    assert_eq!(
        gauge(find(
            &during,
            "db.client.connection.count",
            &[system, pool, state("used")]
        )),
        2.0
    );
    assert_eq!(
        gauge(find(
            &during,
            "db.client.connection.count",
            &[system, pool, state("idle")]
        )),
        0.0
    );
    assert_eq!(
        gauge(find(&during, "db.client.connection.max", &[system, pool])),
        2.0
    );
    assert_eq!(
        gauge(find(
            &during,
            "db.client.connection.pending_requests",
            &[system, pool]
        )),
        0.0
    );
    let waits = histogram(find(
        &during,
        "db.client.connection.wait_time",
        &[system, pool],
    ));
    assert_eq!(waits.len(), 2);
    let created = histogram(find(
        &during,
        "db.client.connection.create_time",
        &[system, pool],
    ));
    assert_eq!(created.len(), 2);

    // After: the timeout counted, both connections back and idle.
    match &find(&after, "db.client.connection.timeouts", &[system, pool]).2 {
        metrics_util::debugging::DebugValue::Counter(n) => assert_eq!(*n, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        gauge(find(
            &after,
            "db.client.connection.count",
            &[system, pool, state("used")]
        )),
        0.0
    );
    assert_eq!(
        gauge(find(
            &after,
            "db.client.connection.count",
            &[system, pool, state("idle")]
        )),
        2.0
    );
    let used = histogram(find(
        &after,
        "db.client.connection.use_time",
        &[system, pool],
    ));
    assert_eq!(used.len(), 2);
}

#[tokio::test]
async fn the_handlers_span_parents_the_query_spans_of_its_context() {
    let recorded = recorder::install();
    let t = TestDb::new().await;
    let handler = tracing::info_span!("handler");
    let handler_seq = recorded.seq_of(&handler);
    // The context is attached inside the handler's span; the call runs in
    // a task of its own, outside it.
    let db = handler.in_scope(|| t.owner.with(database::Ctx::new()));
    let id = tokio::spawn(async move {
        db.run(async |conn| users::create(conn, &new_user("parent@example.com")).await)
            .await
            .unwrap()
            .id
    })
    .await
    .unwrap();
    let explicit = tracing::info_span!("explicit");
    let explicit_seq = recorded.seq_of(&explicit);
    let db = t.owner.with(database::Ctx::new().trace(explicit));
    db.run(async |conn| users::find(conn, id).await)
        .await
        .unwrap();

    let inserts = with_summary(&recorded, &t.name, "INSERT users");
    assert_eq!(inserts.len(), 1);
    assert_eq!(inserts[0].parent, Some(handler_seq));
    let selects = with_summary(&recorded, &t.name, "SELECT users");
    assert_eq!(selects.len(), 1);
    assert_eq!(selects[0].parent, Some(explicit_seq));
}

/// A throwaway primary and its streaming replica, or `None` (said why)
/// where PostgreSQL's server binaries are missing.
fn replica_pair() -> Option<(
    database::ops::cluster::TempCluster,
    database::ops::cluster::TempCluster,
)> {
    use database::ops::cluster::{Options, TempCluster};
    let primary = match TempCluster::start(Options::scratch()) {
        Ok(p) => p,
        Err(e) => {
            skip_without("a throwaway cluster", &e);
            return None;
        }
    };
    let replica = TempCluster::replica_of(&primary, Options::scratch()).expect("replica starts");
    Some((primary, replica))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_read_is_routed_and_the_monitor_makes_no_spans() {
    use database::db::ReadSource;
    let recorded = recorder::install();
    let Some((primary, replica)) = replica_pair() else {
        return;
    };
    let mut config = Config::new(primary.url_of("postgres"));
    config.replica_urls = vec![replica.url_of("postgres")];
    config.replica_max_lag = Duration::from_secs(5);
    let db = Db::new(config).unwrap();
    let replica_port = url::Url::parse(&replica.url_of("postgres"))
        .unwrap()
        .port()
        .unwrap()
        .to_string();
    let primary_port = url::Url::parse(&primary.url_of("postgres"))
        .unwrap()
        .port()
        .unwrap()
        .to_string();
    let started = std::time::Instant::now();
    let mut conn = loop {
        let (conn, source) = db.read_from().await.unwrap();
        if matches!(source, ReadSource::Replica(_)) {
            break conn;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the replica never served a read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    diesel::sql_query("SELECT relname FROM pg_class WHERE oid = $1")
        .bind::<diesel::sql_types::Oid, _>(1259_u32)
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    // Ctx::system never reads from a replica: the primary, and why.
    let (mut system, source) = db
        .with(database::Ctx::system("telemetry test"))
        .read_from()
        .await
        .unwrap();
    assert_eq!(source, ReadSource::Primary);
    diesel::sql_query("SELECT nspname FROM pg_namespace WHERE oid = $1")
        .bind::<diesel::sql_types::Oid, _>(11_u32)
        .execute(&mut system)
        .await
        .unwrap();
    drop(system);
    // The monitor keeps polling both servers meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let on = |port: &str| -> Vec<SpanRecord> {
        recorded
            .spans()
            .into_iter()
            .filter(|s| s.name == "db.query" && s.get("server.port") == Some(port))
            .collect()
    };
    let reads: Vec<_> = on(&replica_port)
        .into_iter()
        .filter(|s| s.get("db.query.summary") == Some("SELECT pg_class"))
        .collect();
    assert_eq!(reads.len(), 1, "{reads:#?}");
    let read = &reads[0];
    assert_eq!(read.get("database.route"), Some("replica"));
    assert_eq!(read.get("database.route.reason"), Some("read"));
    assert_eq!(read.get("db.namespace"), Some("postgres.public"));
    assert_eq!(read.get("db.collection.name"), Some("pg_class"));
    assert_eq!(read.get("otel.kind"), Some("client"));
    let system_reads: Vec<_> = on(&primary_port)
        .into_iter()
        .filter(|s| s.get("db.query.summary") == Some("SELECT pg_namespace"))
        .collect();
    assert_eq!(system_reads.len(), 1, "{system_reads:#?}");
    assert_eq!(system_reads[0].get("database.route"), Some("primary"));
    assert_eq!(
        system_reads[0].get("database.route.reason"),
        Some("system_context")
    );
    for span in on(&replica_port).iter().chain(on(&primary_port).iter()) {
        let text = span.get("db.query.text").unwrap_or("");
        assert!(
            !text.contains("pg_last_wal_replay_lsn()::text AS lsn")
                && !text.contains("pg_is_in_recovery() THEN NULL"),
            "a span of the replica monitor: {span:#?}"
        );
    }
}

/// `DB_SQLCOMMENTER`: a statement run under a context with a trace parent
/// shows the server the trace that sent it (the session's own
/// `pg_stat_activity.query`), in direct and pooler mode, inside a
/// transaction and outside one; never when the setting is off (the
/// default) or the context has none; the span's query text stays the
/// statement's own; and in direct mode the commented statements stay out
/// of the statement cache (their text changes with every request).
#[tokio::test]
async fn a_traceparent_comment_reaches_the_server_only_when_asked() {
    use database::{Ctx, TraceParent};
    use diesel::sql_types::{BigInt, Text};

    let recorded = recorder::install();
    let t = TestDb::new().await;
    let own_query = || {
        diesel::select(diesel::dsl::sql::<Text>(
            "(SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid())",
        ))
    };
    let prepared = || {
        diesel::select(diesel::dsl::sql::<BigInt>(
            "(SELECT count(*) FROM pg_prepared_statements)",
        ))
    };
    for pooler in [false, true] {
        for commenter in [false, true] {
            let mut config = Config::new(t.url.clone());
            config.pool_size = 1;
            config.sqlcommenter = commenter;
            if pooler {
                config.pooler = database::db::Pooler::Transaction;
            }
            let db = Db::new(config).unwrap();
            let what = format!("pooler {pooler}, DB_SQLCOMMENTER {commenter}");
            // Prepares the statements without a comment.
            db.run(async |conn| Ok(own_query().get_result::<String>(conn).await?))
                .await
                .unwrap();
            let email = format!("uncommented-{pooler}-{commenter}@example.com");
            db.run(async |conn| users::create(conn, &new_user(&email)).await)
                .await
                .unwrap();
            let before: i64 = db
                .run(async |conn| Ok(prepared().get_result(conn).await?))
                .await
                .unwrap();
            for (i, trace) in [
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "0af7651916cd43dd8448eb211c80319c",
            ]
            .into_iter()
            .enumerate()
            {
                let header = format!("00-{trace}-00f067aa0ba902b7-01");
                let comment = format!("/*traceparent='{header}'*/");
                let traced = db.with(Ctx::new().correlate(TraceParent::parse(&header).unwrap()));
                let untraced = db.with(Ctx::new());
                let outside = traced
                    .run(async |conn| Ok(own_query().get_result::<String>(conn).await?))
                    .await
                    .unwrap();
                let inside = traced
                    .transaction(async |tx| Ok(own_query().get_result::<String>(tx).await?))
                    .await
                    .unwrap();
                let plain = untraced
                    .run(async |conn| Ok(own_query().get_result::<String>(conn).await?))
                    .await
                    .unwrap();
                assert_eq!(outside.contains(&comment), commenter, "{what}: {outside}");
                assert_eq!(inside.contains(&comment), commenter, "{what}: {inside}");
                assert!(!plain.contains("traceparent"), "{what}: {plain}");
                // A write under the context: its own transaction, commented.
                let email = format!("commented-{pooler}-{commenter}-{i}@example.com");
                traced
                    .run(async |conn| users::create(conn, &new_user(&email)).await)
                    .await
                    .unwrap();
            }
            let after: i64 = db
                .run(async |conn| Ok(prepared().get_result(conn).await?))
                .await
                .unwrap();
            assert_eq!(
                after, before,
                "{what}: no commented statement was kept prepared"
            );
        }
    }
    let texts: Vec<String> = statements(&recorded, &t.name)
        .iter()
        .filter_map(|s| s.get("db.query.text").map(str::to_owned))
        .collect();
    assert!(
        texts.iter().any(|q| q.contains("pg_stat_activity")),
        "{texts:#?}"
    );
    assert!(
        texts.iter().all(|q| !q.contains("traceparent")),
        "the spans' query text is the statement's own: {texts:#?}"
    );
}
