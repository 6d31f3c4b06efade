//! Which server a connection reaches around a failover, on loopback with the
//! crate's launcher: a connection whose server turned read-only fails one
//! write as a retryable `Unavailable` and is replaced (direct and pooler
//! mode), and read-your-writes holds across the change of timeline (the old
//! primary's replicas serve nothing until they follow the new one).
//! `tests/failover.rs` has the writes under load.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::clusters::{both_hosts, fence, flag, replica_of, sql, start};
use common::wait_until;
use database::db::{Pooler, ReadSource, redact_url};
use database::ops::cluster::TempCluster;
use database::{Config, Db, Error};
use diesel::sql_types::{BigInt, Integer};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

/// The smallest case of the fence, in direct and pooler mode: a write on a
/// connection whose server turned read-only is a retryable `Unavailable`
/// that names SQLSTATE 25006, the connection is not reused, and a
/// transaction the caller declared `READ ONLY` still gets the server's own
/// error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_refused_as_read_only_is_unavailable_and_closes_its_connection() {
    let Some(server) = start() else {
        return;
    };
    sql(
        &server,
        "CREATE TABLE fw (task int, seq int, PRIMARY KEY (task, seq))",
    )
    .await;
    for pooler in [Pooler::None, Pooler::Transaction] {
        let mut config = Config::new(server.url_of("postgres"));
        config.pool_size = 1;
        config.pooler = pooler;
        let db = Db::new(config).unwrap();
        let pid = async || {
            #[derive(diesel::QueryableByName)]
            struct Pid {
                #[diesel(sql_type = Integer)]
                pid: i32,
            }
            let mut conn = db.conn().await.unwrap();
            diesel::sql_query("SELECT pg_backend_pid() AS pid")
                .get_result::<Pid>(&mut conn)
                .await
                .unwrap()
                .pid
        };
        // A declared read-only transaction on a writable server: the
        // refusal is the caller's own doing, reported as the server said.
        let declared = db
            .transaction(async |c| {
                c.batch_execute("SET TRANSACTION READ ONLY").await?;
                diesel::sql_query("INSERT INTO fw VALUES (-1, -1)")
                    .execute(c)
                    .await?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(matches!(declared, Error::Database(_)), "{declared:?}");
        let before = pid().await;
        fence(&server).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        for in_transaction in [false, true] {
            let insert = "INSERT INTO fw VALUES (0, 0)";
            let err = if in_transaction {
                db.transaction(async |c| {
                    diesel::sql_query(insert).execute(c).await?;
                    Ok(())
                })
                .await
            } else {
                db.run(async |c| {
                    diesel::sql_query(insert).execute(c).await?;
                    Ok(())
                })
                .await
            }
            .unwrap_err();
            assert!(
                matches!(&err, Error::Unavailable(m) if m.contains("25006")),
                "{pooler:?}, in a transaction: {in_transaction}: {err:?}"
            );
            assert!(err.is_retryable());
        }
        assert_ne!(
            pid().await,
            before,
            "{pooler:?}: the refused connection was reused"
        );
        sql(&server, "ALTER SYSTEM RESET default_transaction_read_only").await;
        sql(&server, "SELECT pg_reload_conf()").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        db.run(async |c| {
            diesel::sql_query("INSERT INTO fw VALUES (0, 0)")
                .execute(c)
                .await?;
            Ok(())
        })
        .await
        .unwrap();
        sql(&server, "DELETE FROM fw").await;
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Read-your-writes across the change of timeline. Three replicas of the
/// primary: R1 (promoted), R2, which replays writes the failover loses (its
/// positions on the old timeline are *ahead* of the new primary's), and
/// R3, which stopped before them and follows the new primary later. After
/// the failover a position from the new primary must never be served by R2
/// (by position alone it has "replayed" it, but not on the new timeline),
/// and R3 serves again once it follows the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_your_writes_holds_across_the_change_of_timeline() {
    let Some(primary) = start() else {
        return;
    };
    // One after the other: base backups at once remove WAL from under each
    // other (no replication slots).
    let (r1, r2, r3) = (
        replica_of(&primary),
        replica_of(&primary),
        replica_of(&primary),
    );
    sql(&primary, "CREATE TABLE rw (id bigint PRIMARY KEY)").await;
    let mut config = Config::new(both_hosts(&primary, &r1));
    config.replica_urls = [&r1, &r2, &r3]
        .iter()
        .map(|r| r.url_of("postgres"))
        .collect();
    config.pool_size = 4;
    config.query_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(2);
    let db = Db::new(config).unwrap();
    // A read source names its replica as logs do: the password redacted.
    let url = |r: &TempCluster| ReadSource::Replica(redact_url(&r.url_of("postgres")));
    let insert = async |id: i64| {
        loop {
            let done = db
                .run(async |c| {
                    diesel::sql_query(format!("INSERT INTO rw VALUES ({id})"))
                        .execute(c)
                        .await?;
                    Ok(())
                })
                .await;
            match done {
                Ok(()) => return,
                Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => panic!("{e}"),
            }
        }
    };
    insert(1).await;
    let token = db.wal_position().await.unwrap();
    wait_until(
        "every replica serves",
        Duration::from_secs(20),
        async || {
            let mut seen = HashSet::new();
            for _ in 0..6 {
                if let (_, ReadSource::Replica(u)) = db.read_after(token).await.unwrap() {
                    seen.insert(u);
                }
            }
            seen.len() == 3
        },
    )
    .await;

    // R1 and R3 stop receiving; R2 replays writes that R1 will never have.
    for r in [&r1, &r3] {
        sql(r, "ALTER SYSTEM SET primary_conninfo = ''").await;
        sql(r, "SELECT pg_reload_conf()").await;
        wait_until("the receiver stops", Duration::from_secs(10), async || {
            flag(r, "SELECT count(*) = 0 AS flag FROM pg_stat_wal_receiver").await
        })
        .await;
    }
    sql(
        &primary,
        "INSERT INTO rw SELECT -g FROM generate_series(1, 5000) g",
    )
    .await;
    let lost_token = db.wal_position().await.unwrap();
    wait_until(
        "R2 replays the doomed writes",
        Duration::from_secs(10),
        async || {
            flag(
                &r2,
                &format!("SELECT pg_last_wal_replay_lsn() >= '{lost_token}' AS flag"),
            )
            .await
        },
    )
    .await;

    primary.crash().unwrap();
    r1.promote().unwrap();
    insert(2).await;
    let token = db.wal_position().await.unwrap();
    assert!(
        token < lost_token,
        "the test needs R2 ahead of the new primary by position ({token} vs {lost_token})"
    );
    let seen = async |conn: &mut database::PooledConn| {
        diesel::sql_query("SELECT count(*) AS n FROM rw WHERE id = 2")
            .get_result::<Count>(&mut **conn)
            .await
            .unwrap()
            .n
    };
    let mut sources = Vec::new();
    for _ in 0..30 {
        let (mut conn, source) = db.read_after(token).await.unwrap();
        assert_eq!(
            seen(&mut conn).await,
            1,
            "a read after the token, from {source:?}, missed the write"
        );
        sources.push(source);
        let (_, plain) = db.read_from().await.unwrap();
        sources.push(plain);
    }
    assert!(
        !sources.contains(&url(&r2)) && !sources.contains(&url(&r3)),
        "a replica of the old timeline served a read: {sources:?}"
    );

    // R3 follows the new primary (it stopped before the fork point): back in
    // routing. R2, past the fork point, cannot follow without pg_rewind.
    // Over TCP the cluster asks for the password (SCRAM); the replicas share
    // the primary's.
    let password = r1
        .record()
        .secrets
        .as_ref()
        .map(|s| format!(" password={}", s.superuser))
        .unwrap_or_default();
    for r in [&r3, &r2] {
        sql(
            r,
            &format!(
                "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port={} user=postgres{password}'",
                r1.record().port
            ),
        )
        .await;
        sql(r, "SELECT pg_reload_conf()").await;
    }
    insert(3).await;
    let token = db.wal_position().await.unwrap();
    let start = Instant::now();
    wait_until("R3 serves again", Duration::from_secs(20), async || {
        let (mut conn, source) = db.read_after(token).await.unwrap();
        assert_ne!(source, url(&r2), "R2 served a read");
        let n = diesel::sql_query("SELECT count(*) AS n FROM rw WHERE id = 3")
            .get_result::<Count>(&mut *conn)
            .await
            .unwrap()
            .n;
        assert_eq!(
            n, 1,
            "a read after the token, from {source:?}, missed the write"
        );
        source == url(&r3)
    })
    .await;
    eprintln!(
        "failover figures: read-your-writes: 60 reads after the failover, none from the old \
         timeline; the replica that follows the new primary served again {} ms after it was \
         pointed there",
        start.elapsed().as_millis()
    );
}
