//! The pool against a real PostgreSQL: outages surface as `Unavailable`,
//! the pool recovers by itself, and the connection settings take effect.

mod common;

use std::time::Duration;

use common::TestDb;
use database::{Config, Db, Error};
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;

#[derive(Debug, diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn config_for(t: &TestDb) -> Config {
    let mut config = Config::new(t.url.clone());
    config.pool_size = 2;
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_is_unavailable_and_hides_the_password() {
    let mut config = Config::new("postgres://app:s3cretpw@127.0.0.1:1/app");
    config.connect_timeout = Duration::from_secs(2);
    let db = Db::new(config).unwrap();
    let Err(err) = db.conn().await else {
        panic!("expected an error")
    };
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    let message = err.to_string();
    assert!(!message.contains("s3cretpw"), "{message}");
    assert!(message.contains("app:***@127.0.0.1:1"), "{message}");
    assert!(!format!("{db:?}").contains("s3cretpw"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_pool_is_unavailable_until_a_connection_returns() {
    let t = TestDb::new().await;
    let mut config = config_for(&t);
    config.pool_size = 1;
    config.wait_timeout = Duration::from_millis(200);
    let db = Db::new(config).unwrap();
    let held = db.conn().await.unwrap();
    let Err(err) = db.conn().await else {
        panic!("expected an error")
    };
    assert!(
        matches!(&err, Error::Unavailable(m) if m.contains("DB_POOL_SIZE")),
        "{err:?}"
    );
    drop(held);
    let _again = db
        .conn()
        .await
        .expect("the returned connection is handed out again");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_recovers_after_the_server_drops_every_connection() {
    let t = TestDb::new().await;
    let db = Db::new(config_for(&t)).unwrap();
    for _ in 0..2 {
        let mut conn = db.conn().await.unwrap();
        diesel::sql_query("SELECT 1::bigint AS n")
            .get_result::<Count>(&mut conn)
            .await
            .unwrap();
    }
    // What a server restart does to open connections.
    let mut admin = common::admin_conn().await;
    let killed = diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = $1",
    )
    .bind::<diesel::sql_types::Text, _>(&t.name)
    .get_result::<Count>(&mut admin)
    .await
    .unwrap();
    assert!(killed.n >= 1);

    let mut errors = Vec::new();
    let mut recovered = false;
    for _ in 0..20 {
        let attempt = async {
            let mut conn = db.conn().await?;
            Ok::<_, Error>(
                diesel::sql_query("SELECT 1::bigint AS n")
                    .get_result::<Count>(&mut conn)
                    .await?
                    .n,
            )
        };
        match attempt.await {
            Ok(1) => {
                recovered = true;
                break;
            }
            Ok(n) => panic!("SELECT 1 returned {n}"),
            Err(e) => errors.push(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "the pool never recovered: {errors:?}");
    assert!(
        errors.iter().all(|e| matches!(e, Error::Unavailable(_))),
        "{errors:?}"
    );
    assert!(db.health().await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_timeout_is_applied() {
    let t = TestDb::new().await;
    let mut config = config_for(&t);
    config.statement_timeout = Some(Duration::from_millis(100));
    let db = Db::new(config).unwrap();
    let mut conn = db.conn().await.unwrap();
    let err = diesel::sql_query("SELECT count(pg_sleep(2))::bigint AS n")
        .get_result::<Count>(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("statement timeout"), "{err}");
}

/// How many named prepared statements a repository call leaves on its connection.
async fn statements_prepared_by_a_query(statement_cache: bool) -> i64 {
    let t = TestDb::new().await;
    let mut config = config_for(&t);
    config.pool_size = 1;
    config.statement_cache = statement_cache;
    let db = Db::new(config).unwrap();
    let mut conn = db.conn().await.unwrap();
    let count = async |conn: &mut database::Conn| {
        diesel::sql_query("SELECT count(*) AS n FROM pg_prepared_statements")
            .get_result::<Count>(conn)
            .await
            .unwrap()
            .n
    };
    let before = count(&mut conn).await;
    database::auth::users::find_by_email(&mut conn, "nobody@example.com")
        .await
        .unwrap_err();
    database::auth::users::find_by_email(&mut conn, "nobody@example.com")
        .await
        .unwrap_err();
    count(&mut conn).await - before
}

#[tokio::test(flavor = "multi_thread")]
async fn the_statement_cache_can_be_switched_off_for_pgbouncer() {
    assert_eq!(
        statements_prepared_by_a_query(true).await,
        1,
        "cached once, reused"
    );
    assert_eq!(
        statements_prepared_by_a_query(false).await,
        0,
        "unnamed statements only"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let t = TestDb::new().await;
    let mut config = config_for(&t);
    config.idle_timeout = Duration::from_secs(1);
    let db = Db::new(config).unwrap();
    drop(db.conn().await.unwrap());
    assert_eq!(db.pool_status().size, 1);
    let mut closed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if db.pool_status().size == 0 {
            closed = true;
            break;
        }
    }
    assert!(closed, "the idle connection was never closed");
}

#[tokio::test(flavor = "current_thread")]
async fn query_logging_shows_statements_and_durations_but_not_values() {
    let (captured, _guard) = common::Captured::install("database::query=debug");

    let t = TestDb::new().await;
    let mut config = config_for(&t);
    config.log_queries = true;
    let db = Db::new(config).unwrap();
    let mut conn = db.conn().await.unwrap();
    database::auth::users::find_by_email(&mut conn, "secret-person@example.com")
        .await
        .unwrap_err();

    let logs = captured.text();
    assert!(logs.contains("lower(") && logs.contains("users"), "{logs}");
    assert!(logs.contains("elapsed_us"), "{logs}");
    assert!(
        !logs.contains("secret-person"),
        "bind values stay out of DEBUG logs: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_latency_and_pool() {
    let t = TestDb::new().await;
    let health = t.owner.health().await.unwrap();
    assert_eq!(health.pool.max_size, 8);
    assert!(health.pool.size >= 1);
}
