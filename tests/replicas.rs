//! The read path against a real streaming replica: a throwaway primary and
//! its replica (`pg_basebackup -R`), started by the crate's own cluster
//! launcher on free ports and removed afterwards. `DB_TEST_LONG=1` runs the
//! 10,000-pair read-your-writes check; the default is a CI-sized 400.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::faults::{Balancer, FaultProxy};
use common::wait_until;
use database::Conn;
use database::db::ReadSource;
use database::ops::cluster::{Options, TempCluster};
use database::{Config, Ctx, Db, Error, TenantId};
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A primary and a streaming replica, or `None` (with the reason printed)
/// where PostgreSQL's server binaries are missing.
fn pair() -> Option<(TempCluster, TempCluster)> {
    let primary = match TempCluster::start(Options::scratch()) {
        Ok(p) => p,
        Err(e) => {
            assert!(
                std::env::var("DB_TEST_REQUIRE_ALL").is_err(),
                "a throwaway cluster is required: {e}"
            );
            eprintln!("skipped: cannot start a throwaway cluster ({e})");
            return None;
        }
    };
    let replica = TempCluster::replica_of(&primary, Options::scratch()).expect("replica starts");
    Some((primary, replica))
}

async fn setup(primary: &TempCluster) {
    let mut conn = Conn::establish(&primary.url_of("postgres")).await.unwrap();
    conn.batch_execute("CREATE TABLE IF NOT EXISTS rw (id bigint PRIMARY KEY)")
        .await
        .unwrap();
}

fn db_for(primary: &TempCluster, replica: &TempCluster, max_lag: Duration) -> Db {
    let mut config = Config::new(primary.url_of("postgres"));
    config.replica_urls = vec![replica.url_of("postgres")];
    config.replica_max_lag = max_lag;
    config.pool_size = 8;
    Db::new(config).unwrap()
}

async fn count(conn: &mut Conn, id: i64) -> i64 {
    diesel::sql_query(format!("SELECT count(*) AS n FROM rw WHERE id = {id}"))
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .n
}

/// Waits until the replica serves reads and has replayed everything the
/// primary has now (the test's table included).
async fn until_replica_serves(db: &Db) {
    let start = Instant::now();
    let now = db.wal_position().await.unwrap();
    loop {
        let (_, plain) = db.read_from().await.unwrap();
        let (_, after) = db.read_after(now).await.unwrap();
        if matches!(plain, ReadSource::Replica(_)) && matches!(after, ReadSource::Replica(_)) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the replica never served a read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_go_to_the_replica_and_read_your_writes_holds_under_load() {
    let Some((primary, replica)) = pair() else {
        return;
    };
    setup(&primary).await;
    let db = db_for(&primary, &replica, Duration::from_millis(1000));
    until_replica_serves(&db).await;

    // Background write load on the primary while the pairs run.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let db = db.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut id = 1_000_000_000i64;
            while !AtomicBool::load(&stop, Ordering::Relaxed) {
                id += 1;
                let mut conn = db.conn().await.unwrap();
                diesel::sql_query(format!("INSERT INTO rw VALUES ({id})"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        })
    };
    let pairs: i64 = if std::env::var("DB_TEST_LONG").is_ok() {
        10_000
    } else {
        400
    };
    let (mut on_replica, mut stale) = (0, 0);
    for id in 0..pairs {
        {
            let mut conn = db.conn().await.unwrap();
            diesel::sql_query(format!("INSERT INTO rw VALUES ({id})"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let token = db.wal_position().await.unwrap();
        // Most reads follow at once (the replica rarely has the write yet:
        // they go to the primary); every fourth waits a little, as a user's
        // next request would, and a caught-up replica serves it.
        if id % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let (mut conn, source) = db.read_after(token).await.unwrap();
        if count(&mut conn, id).await != 1 {
            stale += 1;
        }
        if matches!(source, ReadSource::Replica(_)) {
            on_replica += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    eprintln!("{pairs} write-then-read pairs: {on_replica} served by the replica, {stale} stale");
    assert_eq!(stale, 0, "a read after its token missed the write");
    assert!(on_replica > 0, "the replica served none of the reads");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_replica_is_lagging_and_reads_go_to_the_primary() {
    let Some((primary, replica)) = pair() else {
        return;
    };
    setup(&primary).await;
    let db = db_for(&primary, &replica, Duration::from_millis(300));
    until_replica_serves(&db).await;

    let mut on_replica = Conn::establish(&replica.url_of("postgres")).await.unwrap();
    on_replica
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    let mut writer = Conn::establish(&primary.url_of("postgres")).await.unwrap();
    writer
        .batch_execute("INSERT INTO rw VALUES (-1)")
        .await
        .unwrap();
    // Keep the primary moving so the lag is measurable, then wait past the limit.
    let start = Instant::now();
    loop {
        writer
            .batch_execute("INSERT INTO rw SELECT -2 - count(*) FROM rw")
            .await
            .unwrap();
        let (_, source) = db.read_from().await.unwrap();
        if source == ReadSource::Primary {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a paused replica kept serving reads"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Caught up again after resuming: the replica serves again.
    on_replica
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    until_replica_serves(&db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_replica_never_fails_a_read_that_starts_after_it_is_gone() {
    let Some((primary, replica)) = pair() else {
        return;
    };
    setup(&primary).await;
    let db = db_for(&primary, &replica, Duration::from_millis(1000));
    until_replica_serves(&db).await;

    let stopped = Arc::new(AtomicBool::new(false));
    let failures_after_stop = Arc::new(AtomicUsize::new(0));
    let in_flight_failures = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            let stopped = stopped.clone();
            let after = failures_after_stop.clone();
            let during = in_flight_failures.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(4);
                while Instant::now() < deadline {
                    let started_after_stop = AtomicBool::load(&stopped, Ordering::Relaxed);
                    let result = async {
                        let mut conn = db.read().await?;
                        diesel::sql_query("SELECT count(*) AS n FROM rw")
                            .get_result::<Count>(&mut conn)
                            .await
                            .map_err(Error::from)
                    }
                    .await;
                    match result {
                        Ok(_) => {}
                        Err(e) if started_after_stop => {
                            eprintln!("read started after the stop failed: {e}");
                            after.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            assert!(e.is_retryable(), "a read on the dying replica: {e:?}");
                            during.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    replica.stop().unwrap();
    stopped.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    eprintln!(
        "reads in flight when the replica stopped that failed (retryable): {}",
        AtomicUsize::load(&in_flight_failures, Ordering::Relaxed)
    );
    assert_eq!(
        AtomicUsize::load(&failures_after_stop, Ordering::Relaxed),
        0
    );
    // New reads go to the primary, unless the stopped replica's port was
    // taken meanwhile by a server another test of this binary started (the
    // launcher picks free ports from one range): then its URL reaches a live
    // server and serving from it is right.
    let (_, source) = db.read_from().await.unwrap();
    let port = url::Url::parse(&replica.url_of("postgres"))
        .unwrap()
        .port()
        .unwrap();
    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        eprintln!("port {port} was reused by another test's server: the source is not checked");
    } else {
        assert_eq!(source, ReadSource::Primary);
    }
}

/// Reads the number of rows with `id` on `conn`, as a repository function
/// would (errors returned, not unwrapped).
async fn try_count(conn: &mut database::db::PgConn, id: i64) -> database::Result<i64> {
    Ok(
        diesel::sql_query(format!("SELECT count(*) AS n FROM rw WHERE id = {id}"))
            .get_result::<Count>(conn)
            .await?
            .n,
    )
}

/// A replica whose traffic freezes (a hung network path) costs a read at
/// most `DB_REPLICA_READ_TIMEOUT_MS` plus a read on the primary, and no
/// read fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_replica_costs_a_read_at_most_the_replica_bound() {
    let Some((primary, replica)) = pair() else {
        return;
    };
    setup(&primary).await;
    let proxy = FaultProxy::in_front_of(&replica.url_of("postgres")).await;
    let mut config = Config::new(primary.url_of("postgres"));
    config.replica_urls = vec![proxy.url_through(&replica.url_of("postgres"))];
    config.replica_read_timeout = Duration::from_millis(1000);
    config.pool_size = 8;
    let db = Db::new(config).unwrap();
    until_replica_serves(&db).await;

    let stall = Duration::from_secs(4);
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let (mut slowest, mut errors) = (Duration::ZERO, 0);
                let end = Instant::now() + Duration::from_secs(6);
                while Instant::now() < end {
                    let start = Instant::now();
                    match db.read_run(async |conn| try_count(conn, 1).await).await {
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("a read failed: {e}");
                            errors += 1;
                        }
                    }
                    slowest = slowest.max(start.elapsed());
                }
                (slowest, errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.stall(true);
    tokio::time::sleep(stall).await;
    proxy.stall(false);
    let (mut slowest, mut errors) = (Duration::ZERO, 0);
    for r in readers {
        let (s, e) = r.await.unwrap();
        slowest = slowest.max(s);
        errors += e;
    }
    eprintln!(
        "replica frozen for {stall:?} under 16 readers: slowest read {slowest:?}, {errors} errors"
    );
    assert_eq!(errors, 0, "a stalled replica surfaced errors");
    // The bound, plus a read on the primary and scheduling on a busy machine.
    assert!(
        slowest < Duration::from_millis(2500),
        "a read took {slowest:?} with a 1 s replica bound (the stall lasted {stall:?})"
    );
    // Back in routing once it answers again.
    wait_until(
        "the replica serves again",
        Duration::from_secs(10),
        async || db.read_from().await.unwrap().1 != ReadSource::Primary,
    )
    .await;
}

/// The monitor samples the primary on a connection of its own: with every
/// pooled primary connection held, a paused replica's lag is still seen
/// and it serves no reads.
#[tokio::test(flavor = "multi_thread")]
async fn a_held_primary_pool_does_not_switch_the_lag_bound_off() {
    let Some((primary, replica)) = pair() else {
        return;
    };
    setup(&primary).await;
    let mut config = Config::new(primary.url_of("postgres"));
    config.replica_urls = vec![replica.url_of("postgres")];
    config.replica_max_lag = Duration::from_millis(300);
    config.pool_size = 2;
    config.wait_timeout = Duration::from_millis(200);
    let db = Db::new(config).unwrap();
    until_replica_serves(&db).await;

    let held = (db.conn().await.unwrap(), db.conn().await.unwrap());
    let mut on_replica = Conn::establish(&replica.url_of("postgres")).await.unwrap();
    on_replica
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    let mut writer = Conn::establish(&primary.url_of("postgres")).await.unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        writer
            .batch_execute("INSERT INTO rw SELECT -1 - count(*) FROM rw")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A read routed to the replica comes back at once; one routed to the
    // primary waits for the held pool and fails.
    match db.read_from().await {
        Ok((_, ReadSource::Replica(url))) => {
            panic!("a replica paused for 1.5 s (bound 300 ms) served a read: {url}")
        }
        Ok((_, ReadSource::Primary)) => panic!("the primary's pool was held"),
        Err(e) => assert!(matches!(e, Error::Unavailable(_)), "{e:?}"),
    }
    let status = &db.replica_status()[0];
    assert!(
        status.lag.is_some_and(|l| l >= Duration::from_millis(300)),
        "{status:?}"
    );
    drop(held);
    on_replica
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    until_replica_serves(&db).await;
}

/// Behind one address that balances connections over a paused and a live
/// replica, every read after a write sees it: the replay position is asked
/// on the connection handed out, never taken from what the monitor saw on
/// that address.
#[tokio::test(flavor = "multi_thread")]
async fn read_your_writes_holds_behind_a_balanced_reader_address() {
    let Some((primary, live)) = pair() else {
        return;
    };
    let paused = TempCluster::replica_of(&primary, Options::scratch()).expect("replica starts");
    setup(&primary).await;
    let balancer = Balancer::over(&[live.url_of("postgres"), paused.url_of("postgres")]).await;
    let mut config = Config::new(primary.url_of("postgres"));
    config.replica_urls = vec![balancer.url_to(&live.url_of("postgres"))];
    config.replica_max_lag = Duration::from_secs(60);
    config.pool_size = 6;
    let db = Db::new(config).unwrap();
    until_replica_serves(&db).await;
    // A pool whose connections reach both servers (one at a time, the
    // pool would keep reusing a single one).
    let mut warm = Vec::new();
    while warm.len() < 6 {
        if let (conn, ReadSource::Replica(_)) = db.read_from().await.unwrap() {
            warm.push(conn);
        }
    }
    drop(warm);
    // Both servers have the table; the paused one replays nothing more.
    Conn::establish(&paused.url_of("postgres"))
        .await
        .unwrap()
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();

    // In rounds: writes, then (after the monitor has had time to look) a
    // read after each, so a view of the live server taken on that address
    // would be trusted for a connection to the paused one.
    let pairs = 1000;
    let (mut from_replica, mut missed) = (0, Vec::new());
    for round in 0..10 {
        let mut tokens = Vec::new();
        for i in 0..pairs / 10 {
            let id = round * 1000 + i + 1;
            db.run(async |c| {
                diesel::sql_query(format!("INSERT INTO rw VALUES ({id})"))
                    .execute(c)
                    .await?;
                Ok(())
            })
            .await
            .unwrap();
            tokens.push((id, db.wal_position().await.unwrap()));
        }
        tokio::time::sleep(Duration::from_millis(450)).await;
        for (id, token) in tokens {
            let (mut conn, source) = db.read_after(token).await.unwrap();
            if try_count(&mut conn, id).await.unwrap() != 1 {
                missed.push((id, source.clone()));
            }
            if source != ReadSource::Primary {
                from_replica += 1;
            }
        }
    }
    eprintln!(
        "{pairs} write-then-read pairs behind a balancer: {from_replica} served by a replica"
    );
    assert!(
        missed.is_empty(),
        "reads after a write missed it: {missed:?}"
    );
    assert!(from_replica > 0, "the live replica never served");
}

/// The monitor has connections of its own: a replica pool busy for longer
/// than the monitor's check does not take the replica out of routing.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_replica_pool_does_not_take_the_replica_out_of_routing() {
    let Some((primary, replica)) = pair() else {
        return;
    };
    setup(&primary).await;
    let mut config = Config::new(primary.url_of("postgres"));
    config.replica_urls = vec![replica.url_of("postgres")];
    config.pool_size = 3;
    let db = Db::new(config).unwrap();
    until_replica_serves(&db).await;

    let mut held = Vec::new();
    while held.len() < 3 {
        if let (conn, ReadSource::Replica(_)) = db.read_from().await.unwrap() {
            held.push(conn);
        }
    }
    // Longer than the monitor's check timeout (2 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(db.read_from().await.unwrap().1, ReadSource::Primary);
    held.pop();
    let (_, source) = db.read_from().await.unwrap();
    assert!(
        matches!(source, ReadSource::Replica(_)),
        "the replica left routing while its pool was busy"
    );
    assert_eq!(db.replica_status()[0].times_down, 0);
}

/// `close` ends the replicas too: no read is served after it.
#[tokio::test(flavor = "multi_thread")]
async fn close_refuses_reads_on_replicas_too() {
    let Some((primary, replica)) = pair() else {
        return;
    };
    setup(&primary).await;
    let db = db_for(&primary, &replica, Duration::from_millis(1000));
    until_replica_serves(&db).await;
    db.close();
    assert!(db.read().await.is_err(), "a read after close");
    assert!(db.read_run(async |c| try_count(c, 1).await).await.is_err());
    let token = database::db::WalPosition(0);
    assert!(db.read_after(token).await.is_err(), "a read after close");
}

/// A tenant context on a login that bypasses row-level security (here the
/// throwaway cluster's superuser) is refused on the read path as on the
/// primary's: `read`, `read_after` and `read_run`, with a healthy replica
/// ready to serve them. (The replica path used to skip the check.)
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_context_on_a_bypassing_login_is_refused_on_replicas_too() {
    let Some((primary, replica)) = pair() else {
        return;
    };
    setup(&primary).await;
    let db = db_for(&primary, &replica, Duration::from_secs(5));
    until_replica_serves(&db).await;
    let tenant = db.with(Ctx::tenant(TenantId::new()));
    let refused = |what: &str, result: Result<(), Error>| match result {
        Err(Error::Config(m)) => assert!(m.contains("row-level security"), "{what}: {m}"),
        other => panic!("{what}: expected Config, got {other:?}"),
    };
    refused("read_from", tenant.read_from().await.map(drop));
    let now = db.wal_position().await.unwrap();
    refused("read_after", tenant.read_after(now).await.map(drop));
    refused(
        "read_run",
        tenant
            .read_run(async |conn| Ok(count(conn, 1).await))
            .await
            .map(drop),
    );
    // Without a tenant the same Db still reads from the replica.
    let (_, source) = db.read_from().await.unwrap();
    assert!(matches!(source, ReadSource::Replica(_)), "{source:?}");
}
