//! Failover on loopback: a primary and a streaming replica from the crate's
//! launcher, the primary crashed (every process killed at once) or fenced
//! (`default_transaction_read_only`, the server still running), the replica
//! promoted (`pg_ctl promote`), and a service configured with both hosts
//! (`host=a,b` with `target_session_attrs=read-write`) writing from 16 tasks
//! throughout. What is checked: writes reach the new primary within a bound,
//! a pooled connection to the fenced old primary fails one write as a
//! retryable `Unavailable` and is closed, acknowledged writes lost (some are
//! allowed with asynchronous replication, none with a synchronous standby),
//! (`tests/failover_routing.rs` has the connection-level cases and
//! read-your-writes across the change of timeline.)
//!
//! On loopback a replica receives WAL within a millisecond, so a crash
//! rarely finds anything unsent. The "behind" scenarios make the replica
//! lag the way a distant or busy one does: the primary's WAL sender is
//! stopped (SIGSTOP) for `BEHIND` before the crash, so whatever commits in
//! that window was never sent.
//!
//! The default is CI-sized (half a second of writes on each side of the
//! event, and no round with the replica unhindered).
//! `DB_TEST_LONG=1` (what `scripts/failover` runs) writes 10 s on each side,
//! repeats each scenario `FAILOVER_ROUNDS` times (default 3) and prints the
//! figures docs/scaling.md quotes, one `failover figures:` line per round.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::clusters::{admin, both_hosts, fence, flag, replica_of, sql, start};
use common::wait_until;
use database::ops::cluster::TempCluster;
use database::{Config, Db, Error};
use diesel::sql_types::Integer;
use diesel_async::RunQueryDsl;

const WRITERS: i32 = 16;

/// How far behind the "behind" scenarios leave the replica at the crash.
const BEHIND: Duration = Duration::from_millis(300);

/// How long an acknowledgement may take from the server's commit to the
/// writer's clock (scheduling), for telling writes before the WAL sender
/// stopped from writes after it.
const MARGIN: Duration = Duration::from_millis(50);

fn long() -> bool {
    std::env::var("DB_TEST_LONG").is_ok_and(|v| v == "1")
}

/// Seconds of writes before the event and after writes are back.
fn phase() -> Duration {
    if long() {
        Duration::from_secs(10)
    } else {
        Duration::from_millis(500)
    }
}

fn rounds() -> usize {
    if !long() {
        return 1;
    }
    std::env::var("FAILOVER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

async fn wal_insert_position(cluster: &TempCluster) -> String {
    #[derive(diesel::QueryableByName)]
    struct Lsn {
        #[diesel(sql_type = diesel::sql_types::Text)]
        lsn: String,
    }
    diesel::sql_query("SELECT pg_current_wal_insert_lsn()::text AS lsn")
        .get_result::<Lsn>(&mut admin(cluster).await)
        .await
        .unwrap()
        .lsn
}

/// The name of an error's kind in the figures.
fn kind(e: &Error) -> String {
    match e {
        Error::Unavailable(m) if m.contains("25006") => {
            "Unavailable (read-only server, 25006)".into()
        }
        Error::Unavailable(_) => "Unavailable".into(),
        Error::CommitOutcomeUnknown(_) => "CommitOutcomeUnknown".into(),
        Error::Timeout { kind, .. } => format!("Timeout ({kind})"),
        Error::Conflict { .. } => "Conflict".into(),
        Error::Database(_) => format!("Database ({e})"),
        other => format!("{other:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap()
            .to_owned(),
    }
}

/// What one writing task saw.
#[derive(Default)]
struct Writer {
    /// Sequence numbers acknowledged, with when.
    acked: Vec<(i32, Instant)>,
    /// Sequence numbers whose outcome the crate reported unknown.
    unknown: Vec<i32>,
    errors: BTreeMap<String, usize>,
}

/// 16 tasks inserting `(task, seq)` rows outside a transaction through
/// `db`, each retrying a retryable failure with the same row (nothing was
/// written, so a retry can never conflict) and moving on after any other.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Writer>>,
}

impl Load {
    fn start(db: &Db) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..WRITERS)
            .map(|task| {
                let db = db.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut w = Writer::default();
                    let mut seq = 0;
                    while !AtomicBool::load(&stop, Ordering::Relaxed) {
                        let insert = format!("INSERT INTO fw (task, seq) VALUES ({task}, {seq})");
                        let result = db
                            .run(async |c| {
                                diesel::sql_query(insert).execute(c).await?;
                                Ok(())
                            })
                            .await;
                        match result {
                            Ok(()) => {
                                w.acked.push((seq, Instant::now()));
                                seq += 1;
                            }
                            Err(e) => {
                                *w.errors.entry(kind(&e)).or_default() += 1;
                                if !e.is_retryable() {
                                    w.unknown.push(seq);
                                    seq += 1;
                                }
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    w
                })
            })
            .collect();
        Load { stop, tasks }
    }

    async fn finish(self) -> Vec<Writer> {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = Vec::new();
        for t in self.tasks {
            out.push(t.await.unwrap());
        }
        out
    }
}

/// Writes the load acknowledged after `since`: the first one's time.
fn first_ack_after(writers: &[Writer], since: Instant) -> Option<Instant> {
    writers
        .iter()
        .flat_map(|w| w.acked.iter().map(|(_, at)| *at))
        .filter(|at| *at > since)
        .min()
}

async fn rows(cluster: &TempCluster) -> HashSet<(i32, i32)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Integer)]
        task: i32,
        #[diesel(sql_type = Integer)]
        seq: i32,
    }
    diesel::sql_query("SELECT task, seq FROM fw")
        .load::<Row>(&mut admin(cluster).await)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.task, r.seq))
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Event {
    /// The primary crashes; asynchronous replication.
    CrashAsync,
    /// The primary crashes with its asynchronous replica `BEHIND`.
    CrashAsyncBehind,
    /// The primary crashes with its synchronous standby `BEHIND`.
    CrashSyncBehind,
    /// The primary keeps running, fenced read-only; asynchronous replication.
    Fence,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::CrashAsync => "crash, asynchronous replica",
            Event::CrashAsyncBehind => "crash, asynchronous replica 300 ms behind",
            Event::CrashSyncBehind => "crash, synchronous standby 300 ms behind",
            Event::Fence => "fence, asynchronous replica",
        }
    }
}

/// Stops (SIGSTOP) the primary's WAL sender: from now on nothing reaches
/// the replica. It dies with the primary.
async fn stall_wal_sender(primary: &TempCluster) {
    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = Integer)]
        pid: i32,
    }
    let sender = diesel::sql_query("SELECT pid FROM pg_stat_replication")
        .get_result::<Pid>(&mut admin(primary).await)
        .await
        .unwrap()
        .pid;
    // SAFETY: kill(2) on the WAL sender of a server this test started.
    assert_eq!(unsafe { libc::kill(sender, libc::SIGSTOP) }, 0);
}

/// What one round measured.
struct Figures {
    acked: usize,
    lost: usize,
    /// Lost writes acknowledged well before the WAL sender stopped (the
    /// "behind" scenarios; `MARGIN` earlier): must be none.
    lost_early: usize,
    /// Writes acknowledged while the WAL sender was stopped (from `MARGIN`
    /// after it stopped to the crash): committed after it, never sent.
    acked_while_behind: usize,
    unknown: usize,
    unknown_present: usize,
    promote: Duration,
    back_after_promotion: Duration,
    outage: Duration,
    errors: BTreeMap<String, usize>,
}

/// One failover under load: the primary and its replica, 16 writers through
/// the two-host URL, the event, the promotion, writes until they are back
/// and a while after; then every acknowledged row is looked for on the new
/// primary.
async fn failover_round(event: Event) -> Option<Figures> {
    let primary = start()?;
    let replica = replica_of(&primary);
    sql(
        &primary,
        "CREATE TABLE fw (task int, seq int, PRIMARY KEY (task, seq))",
    )
    .await;
    wait_until("the replica streams", Duration::from_secs(20), async || {
        flag(
            &primary,
            "SELECT count(*) = 1 AS flag FROM pg_stat_replication WHERE state = 'streaming'",
        )
        .await
    })
    .await;
    if event == Event::CrashSyncBehind {
        sql(&primary, "ALTER SYSTEM SET synchronous_standby_names = '*'").await;
        sql(&primary, "SELECT pg_reload_conf()").await;
        wait_until(
            "the standby is synchronous",
            Duration::from_secs(20),
            async || flag(&primary, "SELECT count(*) = 1 AS flag FROM pg_stat_replication WHERE sync_state = 'sync'").await,
        )
        .await;
    }
    let mut config = Config::new(both_hosts(&primary, &replica));
    config.pool_size = WRITERS as usize;
    config.query_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(2);
    config.wait_timeout = Duration::from_secs(2);
    let db = Db::new(config).unwrap();

    let load = Load::start(&db);
    tokio::time::sleep(phase()).await;
    // The launcher's calls block: off the runtime's workers, so that the
    // writers' acknowledgements are timed when they arrive.
    let mut stalled_at = None;
    let failed_at = match event {
        Event::CrashAsync | Event::CrashAsyncBehind | Event::CrashSyncBehind => {
            if event != Event::CrashAsync {
                stall_wal_sender(&primary).await;
                stalled_at = Some(Instant::now());
                tokio::time::sleep(BEHIND).await;
            }
            let at = Instant::now();
            tokio::task::block_in_place(|| primary.crash().unwrap());
            at
        }
        Event::Fence => {
            // The operator's procedure: fence, let statements already
            // running finish, wait until the replica has everything, promote.
            fence(&primary).await;
            let at = Instant::now();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let position = wal_insert_position(&primary).await;
            wait_until(
                "the replica catches up",
                Duration::from_secs(10),
                async || {
                    flag(
                        &replica,
                        &format!("SELECT pg_last_wal_replay_lsn() >= '{position}' AS flag"),
                    )
                    .await
                },
            )
            .await;
            at
        }
    };
    tokio::task::block_in_place(|| replica.promote().unwrap());
    let promoted_at = Instant::now();
    // Writes are back when the new primary gains rows; then write a while.
    let before = rows(&replica).await.len();
    wait_until(
        "writes reach the new primary",
        Duration::from_secs(15),
        async || rows(&replica).await.len() > before,
    )
    .await;
    tokio::time::sleep(phase()).await;
    let writers = load.finish().await;

    // Only the new primary can acknowledge a write after the promotion.
    let back = first_ack_after(&writers, promoted_at).expect("a write after the failover");
    let last_before = writers
        .iter()
        .flat_map(|w| w.acked.iter().map(|(_, at)| *at))
        .filter(|at| *at <= failed_at)
        .max()
        .expect("writes before the failover");
    let present = rows(&replica).await;
    let mut errors = BTreeMap::new();
    let (mut acked, mut lost, mut unknown, mut unknown_present) = (0, 0, 0, 0);
    let (mut lost_early, mut acked_while_behind) = (0, 0);
    for (task, w) in writers.iter().enumerate() {
        let task = task as i32;
        acked += w.acked.len();
        for (seq, at) in &w.acked {
            let early = stalled_at.is_some_and(|s| *at + MARGIN < s);
            if stalled_at.is_some_and(|s| *at > s + MARGIN) && *at < failed_at {
                acked_while_behind += 1;
            }
            if !present.contains(&(task, *seq)) {
                lost += 1;
                if early {
                    lost_early += 1;
                }
            }
        }
        unknown += w.unknown.len();
        unknown_present += w
            .unknown
            .iter()
            .filter(|seq| present.contains(&(task, **seq)))
            .count();
        for (k, n) in &w.errors {
            *errors.entry(k.clone()).or_default() += n;
        }
    }
    Some(Figures {
        acked,
        lost,
        lost_early,
        acked_while_behind,
        unknown,
        unknown_present,
        promote: promoted_at - failed_at,
        back_after_promotion: back.saturating_duration_since(promoted_at),
        outage: back - last_before,
        errors,
    })
}

fn report(event: Event, round: usize, f: &Figures) {
    let errors: Vec<String> = f.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
    eprintln!(
        "failover figures: {}, round {round}: {} writers, {} writes acknowledged ({} while the \
         replica was behind), {} of them lost; {} outcome unknown ({} of those present); {} ms from the event to the end of the \
         promotion; first write acknowledged {} ms after the promotion, {} ms without any; \
         errors: {}",
        event.name(),
        WRITERS,
        f.acked,
        f.acked_while_behind,
        f.lost,
        f.unknown,
        f.unknown_present,
        f.promote.as_millis(),
        f.back_after_promotion.as_millis(),
        f.outage.as_millis(),
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join(", ")
        }
    );
}

/// Asserts what holds in every scenario: no retried write ever conflicted
/// (a retryable error really wrote nothing), nothing surfaced as a plain
/// database error, and writes came back within a bound.
fn common_checks(f: &Figures) {
    assert!(!f.errors.contains_key("Conflict"), "{:?}", f.errors);
    assert!(
        !f.errors.keys().any(|k| k.starts_with("Database")),
        "{:?}",
        f.errors
    );
    assert!(
        f.back_after_promotion < Duration::from_secs(10),
        "writes took {:?} to come back after the promotion",
        f.back_after_promotion
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_primary_with_an_asynchronous_replica_on_loopback() {
    // The figure of an unhindered replica; CI's budget goes to the
    // scenarios that assert something.
    if !long() {
        eprintln!("runs in the long form only (scripts/failover, DB_TEST_LONG=1)");
        return;
    }
    for round in 1..=rounds() {
        let Some(f) = failover_round(Event::CrashAsync).await else {
            return;
        };
        report(Event::CrashAsync, round, &f);
        common_checks(&f);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_asynchronous_replica_behind_loses_exactly_the_writes_it_had_not_received() {
    for round in 1..=rounds() {
        let Some(f) = failover_round(Event::CrashAsyncBehind).await else {
            return;
        };
        report(Event::CrashAsyncBehind, round, &f);
        common_checks(&f);
        // What PostgreSQL allows: commits acknowledged but never sent are
        // gone; everything sent before the replica fell behind survives.
        assert_eq!(
            f.lost_early, 0,
            "a write sent before the replica fell behind was lost"
        );
        assert!(
            f.lost >= f.acked_while_behind,
            "{} lost, but {} were committed while nothing was sent",
            f.lost,
            f.acked_while_behind
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_synchronous_standby_behind_loses_no_acknowledged_write() {
    for round in 1..=rounds() {
        let Some(f) = failover_round(Event::CrashSyncBehind).await else {
            return;
        };
        report(Event::CrashSyncBehind, round, &f);
        common_checks(&f);
        assert_eq!(f.lost, 0, "an acknowledged write was lost");
        // Nothing is acknowledged while the standby confirms nothing.
        assert_eq!(f.acked_while_behind, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_to_a_fenced_primary_fail_one_write_each_and_are_replaced() {
    for round in 1..=rounds() {
        let Some(f) = failover_round(Event::Fence).await else {
            return;
        };
        report(Event::Fence, round, &f);
        common_checks(&f);
        // Each pooled connection to the old primary fails at most one write:
        // it is closed, never handed out again.
        let refused = f
            .errors
            .get("Unavailable (read-only server, 25006)")
            .copied()
            .unwrap_or(0);
        assert!(refused <= WRITERS as usize, "{:?}", f.errors);
        // Fenced, the old primary still streamed everything it acknowledged.
        assert_eq!(f.lost, 0);
    }
}
