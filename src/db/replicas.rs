//! The read path: streaming replicas behind one `Db`, chosen by `Db`, never
//! by a repository function's SQL.
//!
//! A monitor task samples, every `TICK`, the primary's WAL flush position
//! and each replica's replay position, on connections of its own (one to
//! the primary, one per replica, reopened when they fail): it never waits
//! behind the application for a pooled connection, so a busy pool neither
//! marks a replica down nor stops the primary's sampling. A replica's lag is
//! *measured*: the age of the oldest primary sample it has not replayed yet
//! (0 when it has replayed the newest), so an idle primary does not look
//! like a lagging replica and a paused replay does. When the primary cannot
//! be sampled the lag is at least the age of the newest sample, and with no
//! sample at all it is unknown: a replica serves only while its lag is
//! known to be within `DB_REPLICA_MAX_LAG_MS`. `read()` takes a healthy
//! replica within that bound, round-robin, and falls back to the primary
//! when there is none, or when checking a replica's connection out fails
//! (which also marks it down until the monitor sees it answer again).
//!
//! A statement on a replica is bounded by `DB_REPLICA_READ_TIMEOUT_MS` (and
//! by the call's deadline): `Db::read_run` then runs the read again on the
//! primary and takes the replica out of routing until the monitor sees it
//! answer, so a stalled replica costs a read at most that bound.
//!
//! Read-your-writes: after a write commits, `Db::wal_position()` returns the
//! primary's WAL insert position, which is past that commit's record.
//! `read_after(position)` asks the connection it is about to hand out
//! whether its server has replayed the position (never what the monitor
//! saw on that URL: behind a load-balanced reader address each connection
//! may reach another server), else serves from the primary. A multi-host
//! replica URL is refused in pooler mode, where the check and the read
//! could reach different servers.
//!
//! Failover: a position is comparable only within one history. When a
//! replica is promoted, the new primary starts a new timeline where the old
//! primary's WAL past the promotion point does not exist, and replicas of
//! the old primary stay on the old timeline (replaying, maybe, writes that
//! the failover lost). So the monitor (and `wal_position`) also read the
//! primary's timeline, which only ever grows, and each replica's: the one it
//! receives when it streams (visible to roles with `pg_read_all_stats`),
//! else the timeline of its last restartpoint. A replica serves reads only
//! on the primary's current timeline: the old primary's replicas are out of
//! routing until they follow the new one, and a position taken before the
//! failover is only ever compared with replay positions on the new
//! timeline.
//!
//! One file, though long: the monitor, the lag it measures and the read path
//! that trusts it share one state (`Replicas`); split, that state would be
//! open to every part instead of private to one module.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::PgConn;
use super::config::Config;
use super::pool::PgPool;
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Integer, Nullable, Text};
use diesel_async::pooled_connection::deadpool::Pool;
// `RunQueryDsl` is called by path: in scope, its blanket `load` would
// shadow the atomics' own `load`.

use super::url::redact_url;
use crate::error::{Error, Result};
use diesel_async::pooled_connection::deadpool::Object;

/// How often the monitor samples the primary and the replicas.
const TICK: Duration = Duration::from_millis(200);
/// How long the monitor waits for a replica's answer before calling it down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a read waits for a busy replica pool before trying elsewhere.
const CHECKOUT_WAIT: Duration = Duration::from_millis(50);
/// How long a read lets a replica take to open a connection.
const CHECKOUT_CREATE: Duration = Duration::from_millis(1000);
/// Primary samples kept (the lag resolution is one tick, the horizon this many).
const SAMPLES: usize = 600;

/// A position in the primary's write-ahead log (`pg_lsn`), comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalPosition(pub u64);

impl WalPosition {
    /// Parses PostgreSQL's `X/Y` text form.
    pub fn parse(text: &str) -> Option<WalPosition> {
        let (hi, lo) = text.trim().split_once('/')?;
        let hi = u64::from_str_radix(hi, 16).ok()?;
        let lo = u64::from_str_radix(lo, 16).ok()?;
        Some(WalPosition((hi << 32) | lo))
    }
}

impl fmt::Display for WalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Which server a read connection came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadSource {
    /// A replica (its URL, password redacted).
    Replica(String),
    /// The primary: no replica was healthy, caught up, or configured.
    Primary,
}

/// What the monitor knows of one replica now (`Db::replica_status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Its URL, password redacted (as `ReadSource::Replica` names it).
    pub url: String,
    /// Whether it answers and may serve reads (lag and timeline aside).
    pub healthy: bool,
    /// Its measured lag (`None`: not known, so it serves no reads).
    pub lag: Option<Duration>,
    /// The WAL position it has replayed, as last seen.
    pub replayed: WalPosition,
    /// How many times it went out of routing for not answering (a failed
    /// check, checkout or read) since the `Db` was built.
    pub times_down: u64,
}

struct Member {
    /// The URL itself: the monitor opens its own connection with it.
    url: String,
    shown_url: String,
    pool: PgPool,
    healthy: AtomicBool,
    /// Replayed WAL position, as last seen.
    replayed: AtomicU64,
    /// Measured lag in milliseconds, as last computed.
    lag_ms: AtomicU64,
    /// The timeline it replays, as last seen (0: not known yet).
    timeline: AtomicU32,
    /// Times it was marked down (see `ReplicaStatus::times_down`).
    times_down: AtomicU64,
}

impl Member {
    /// Takes the replica out of routing until the monitor sees it answer;
    /// its idle connections are likely dead and go too.
    fn mark_down(&self, why: &dyn fmt::Display) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            self.times_down.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(replica = %self.shown_url, reason = %why, "replica not answering; reads go elsewhere");
        }
        self.pool.retain(|_, _| false);
    }
}

/// Lag in milliseconds that stands for "not known".
const LAG_UNKNOWN: u64 = u64::MAX;

/// The primary's positions the monitor sampled, on one timeline.
#[derive(Default)]
struct Samples {
    timeline: u32,
    positions: VecDeque<(Instant, WalPosition)>,
}

/// The replicas of one `Db` and the monitor's view of them.
pub(super) struct Replicas {
    members: Vec<Arc<Member>>,
    max_lag: Duration,
    next: AtomicUsize,
    /// `Db::close` was called: no read goes to a replica, the monitor ends.
    closed: AtomicBool,
    /// The primary's timeline: the highest seen (0: not known yet). A fenced
    /// old primary that still answers reports a lower one, which is ignored.
    timeline: AtomicU32,
}

/// A WAL position and the timeline it is on.
#[derive(QueryableByName)]
struct OnTimeline {
    #[diesel(sql_type = Nullable<Text>)]
    lsn: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    timeline: Option<i32>,
}

/// What the primary's connection reported: its position and timeline, or
/// that the server accepts no writes (a standby, or a fenced old primary
/// after a failover: `default_transaction_read_only`).
#[derive(QueryableByName)]
struct PrimaryState {
    #[diesel(sql_type = Nullable<Text>)]
    lsn: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    timeline: Option<i32>,
    #[diesel(sql_type = Bool)]
    writable: bool,
}

/// Why the primary's connection gave no position.
enum NotPrimary {
    /// The server answered, and accepts no writes.
    ReadOnly,
    /// It did not answer, or failed.
    Failed(Error),
}

#[derive(QueryableByName)]
struct Reached {
    #[diesel(sql_type = Bool)]
    reached: bool,
}

/// The primary's timeline, from the name of its current WAL file (the first
/// 8 hex digits): `pg_control_checkpoint()` would show it only after the
/// first checkpoint on it, which a new primary makes minutes later.
const PRIMARY_TIMELINE: &str =
    "('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int";

/// A replica's timeline: the one its WAL receiver streams (hidden from roles
/// without `pg_read_all_stats`), else the one of its last restartpoint
/// (behind after a promotion until the first restartpoint on the new one:
/// such a replica waits out of routing, never the reverse).
const REPLICA_TIMELINE: &str = "coalesce((SELECT received_tli FROM pg_stat_wal_receiver \
     WHERE status = 'streaming'), (SELECT timeline_id FROM pg_control_checkpoint()))";

/// A position of the primary and its timeline: `function` is one of
/// `pg_current_wal_*_lsn`.
async fn primary_on_timeline(
    conn: &mut PgConn,
    function: &str,
) -> std::result::Result<(WalPosition, u32), NotPrimary> {
    let row: PrimaryState = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(format!(
            "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE {function}()::text END AS lsn, \
                    CASE WHEN pg_is_in_recovery() THEN NULL ELSE {PRIMARY_TIMELINE} END AS timeline, \
                    NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off' \
                      AS writable"
        )),
        conn,
    )
    .await
    .map_err(|e| NotPrimary::Failed(e.into()))?;
    match (
        row.lsn.as_deref().and_then(WalPosition::parse),
        row.timeline,
    ) {
        (Some(p), Some(t)) if row.writable => Ok((p, t as u32)),
        _ => Err(NotPrimary::ReadOnly),
    }
}

/// A replica's replay position and timeline (`None`: it has replayed nothing).
async fn replayed_on_timeline(conn: &mut PgConn) -> Result<Option<(WalPosition, u32)>> {
    let row: OnTimeline = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(format!(
            "SELECT pg_last_wal_replay_lsn()::text AS lsn, {REPLICA_TIMELINE} AS timeline"
        )),
        conn,
    )
    .await?;
    Ok(row
        .lsn
        .as_deref()
        .and_then(WalPosition::parse)
        .map(|p| (p, row.timeline.unwrap_or(0) as u32)))
}

/// The primary's WAL flush position and timeline: what the lag monitor
/// compares replay positions with (the insert position may point past a
/// page header or a segment switch that an idle primary's replicas never
/// "replay").
async fn flush_position(conn: &mut PgConn) -> std::result::Result<(WalPosition, u32), NotPrimary> {
    primary_on_timeline(conn, "pg_current_wal_flush_lsn").await
}

/// The primary's WAL insert position now (a read-your-writes token: past
/// every commit record written so far). Its timeline goes to `replicas`
/// before the token is handed out, so that no read after it is served by a
/// replica of an older timeline, even before the monitor's next sample.
pub(super) async fn insert_position(
    conn: &mut PgConn,
    replicas: Option<&Replicas>,
) -> Result<WalPosition> {
    let (position, timeline) = primary_on_timeline(conn, "pg_current_wal_insert_lsn")
        .await
        .map_err(|e| match e {
            NotPrimary::Failed(e) => e,
            NotPrimary::ReadOnly => Error::Unavailable(
                "the primary's connection reached a server that accepts no writes (a standby, or \
                 the old primary fenced after a failover): no WAL position to read your writes \
                 after; run it again"
                    .into(),
            ),
        })?;
    if let Some(replicas) = replicas {
        replicas.primary_timeline(timeline);
    }
    Ok(position)
}

/// The monitor's own connections (`None`: to be opened at the next tick).
struct MonitorConns {
    primary: Option<PgConn>,
    members: Vec<Option<PgConn>>,
}

impl Replicas {
    /// The replicas, with their monitor started (it ends with the last `Db`
    /// or at `close`). `primary` is the application's pool, whose idle
    /// connections the monitor closes when they reach a server that no
    /// longer accepts writes (a failover).
    pub fn start(
        config: &Config,
        primary: &PgPool,
        pools: Vec<(String, PgPool)>,
    ) -> Option<Arc<Replicas>> {
        if pools.is_empty() {
            return None;
        }
        let members = pools
            .into_iter()
            .map(|(url, pool)| {
                Arc::new(Member {
                    shown_url: redact_url(&url),
                    url,
                    pool,
                    // Unknown until the first sample: not used before it.
                    healthy: AtomicBool::new(false),
                    replayed: AtomicU64::new(0),
                    lag_ms: AtomicU64::new(LAG_UNKNOWN),
                    timeline: AtomicU32::new(0),
                    times_down: AtomicU64::new(0),
                })
            })
            .collect::<Vec<_>>();
        let replicas = Arc::new(Replicas {
            members,
            max_lag: config.replica_max_lag,
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            timeline: AtomicU32::new(0),
        });
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::warn!(
                "Db built outside a Tokio runtime: the replica monitor cannot start, so every read goes to the primary"
            );
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&replicas);
            let primary = primary.weak();
            let config = config.clone();
            let mut conns = MonitorConns {
                primary: None,
                members: replicas.members.iter().map(|_| None).collect(),
            };
            runtime.spawn(async move {
                let samples = Mutex::new(Samples::default());
                let mut ticker = tokio::time::interval(TICK);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let (Some(replicas), Some(primary)) = (weak.upgrade(), primary.upgrade())
                    else {
                        break;
                    };
                    if replicas.closed.load(Ordering::Relaxed) {
                        break;
                    }
                    replicas
                        .sample(&config, &primary, &mut conns, &samples)
                        .await;
                }
            });
        }
        Some(replicas)
    }

    async fn sample(
        &self,
        config: &Config,
        primary: &Pool<PgConn>,
        conns: &mut MonitorConns,
        samples: &Mutex<Samples>,
    ) {
        let now = Instant::now();
        let checked = tokio::time::timeout(CHECK_TIMEOUT, async {
            if conns.primary.is_none() {
                let conn = super::connect(config, &config.database_url).await.ok()?;
                // The monitor's polling is not the service's work: no spans,
                // no metrics.
                conn.set_untraced();
                conns.primary = Some(conn);
            }
            Some(flush_position(conns.primary.as_mut()?).await)
        })
        .await;
        let primary_position = match checked {
            Ok(Some(Ok(p))) => Some(p),
            Ok(Some(Err(NotPrimary::ReadOnly))) => {
                // After a failover the pool may still hold connections to
                // the old primary (fenced, so still answering): its idle
                // ones go now, rather than each failing a write first.
                tracing::warn!(
                    "a connection to the primary reached a server that accepts no writes; the pool's idle connections are closed"
                );
                primary.retain(|_, _| false);
                conns.primary = None;
                None
            }
            _ => {
                // Failed, or cut short mid-statement: open a new one next tick.
                conns.primary = None;
                None
            }
        };
        if let Some((p, timeline)) = primary_position {
            let mut s = samples.lock().unwrap_or_else(|e| e.into_inner());
            // Positions of an older timeline say nothing of the lag of
            // replicas on the new one; a lower timeline is a fenced old
            // primary still answering.
            if timeline == self.primary_timeline(timeline) {
                if s.timeline != timeline {
                    s.timeline = timeline;
                    s.positions.clear();
                }
                if s.positions.len() == SAMPLES {
                    s.positions.pop_front();
                }
                s.positions.push_back((now, p));
            }
        }
        // Every replica at once: one that does not answer costs the others
        // nothing.
        let checks =
            self.members
                .iter()
                .zip(conns.members.iter_mut())
                .map(|(member, conn)| async move {
                    let seen = tokio::time::timeout(CHECK_TIMEOUT, async {
                        if conn.is_none() {
                            let opened = super::connect(config, &member.url).await.ok()?;
                            opened.set_untraced();
                            *conn = Some(opened);
                        }
                        replayed_on_timeline(conn.as_mut()?).await.ok()
                    })
                    .await;
                    match seen {
                        Ok(Some(seen)) => Some(seen),
                        _ => {
                            *conn = None;
                            None
                        }
                    }
                });
        let seen = futures::future::join_all(checks).await;
        for (member, seen) in self.members.iter().zip(seen) {
            let Some(seen) = seen else {
                member.mark_down(&"the monitor's check failed or timed out");
                continue;
            };
            let Some((position, timeline)) = seen else {
                // Answering, but has replayed nothing yet.
                member.lag_ms.store(LAG_UNKNOWN, Ordering::Relaxed);
                continue;
            };
            member.replayed.store(position.0, Ordering::Relaxed);
            let before = member.timeline.swap(timeline, Ordering::Relaxed);
            let primary = self.timeline.load(Ordering::Relaxed);
            if before != timeline && primary != 0 && timeline != primary {
                tracing::warn!(replica = %member.shown_url, timeline, primary_timeline = primary,
                    "replica not on the primary's timeline (a replica of the old primary after a failover); no reads until it follows the new one");
            }
            let lag = {
                let s = samples.lock().unwrap_or_else(|e| e.into_inner());
                lag_of(&s, position, now)
            };
            member.lag_ms.store(
                lag.map_or(LAG_UNKNOWN, |l| l.as_millis() as u64),
                Ordering::Relaxed,
            );
            if !member.healthy.swap(true, Ordering::Relaxed) {
                tracing::info!(replica = %member.shown_url, "replica answering; serving reads");
            }
        }
    }

    /// Records a timeline the primary reported; returns the current one
    /// (the highest seen: timelines only grow).
    fn primary_timeline(&self, timeline: u32) -> u32 {
        let before = self.timeline.fetch_max(timeline, Ordering::Relaxed);
        if before != 0 && timeline > before {
            tracing::warn!(
                timeline,
                previous = before,
                "the primary is on a new timeline (a failover): replicas serve reads again once they follow it"
            );
        }
        before.max(timeline)
    }

    /// Whether `member` replays the primary's current timeline (a position
    /// on it means the same history as the primary's).
    fn on_primary_timeline(&self, member: &Member) -> bool {
        let primary = self.timeline.load(Ordering::Relaxed);
        primary != 0 && member.timeline.load(Ordering::Relaxed) == primary
    }

    fn usable(&self, member: &Member) -> bool {
        member.healthy.load(Ordering::Relaxed)
            && self.on_primary_timeline(member)
            && member.lag_ms.load(Ordering::Relaxed) <= self.max_lag.as_millis() as u64
    }

    /// The members in round-robin order from the next one.
    fn rotation(&self) -> impl Iterator<Item = &Arc<Member>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.members.len();
        (0..n).map(move |i| &self.members[(start + i) % n])
    }

    /// Closes every replica pool and stops the monitor (`Db::close`): no
    /// read goes to a replica after.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        for member in &self.members {
            member.healthy.store(false, Ordering::Relaxed);
            member.pool.close();
        }
    }

    /// What the monitor knows of each replica now.
    pub fn status(&self) -> Vec<ReplicaStatus> {
        self.members
            .iter()
            .map(|m| ReplicaStatus {
                url: m.shown_url.clone(),
                healthy: m.healthy.load(Ordering::Relaxed),
                lag: match m.lag_ms.load(Ordering::Relaxed) {
                    LAG_UNKNOWN => None,
                    ms => Some(Duration::from_millis(ms)),
                },
                replayed: WalPosition(m.replayed.load(Ordering::Relaxed)),
                times_down: m.times_down.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Takes the replica that served `source` out of routing: a read on it
    /// did not answer in time (`Db::read_run` then reads from the primary).
    pub fn mark_down(&self, source: &ReadSource, why: &dyn fmt::Display) {
        if let ReadSource::Replica(url) = source
            && let Some(member) = self.members.iter().find(|m| &m.shown_url == url)
        {
            member.mark_down(why);
        }
    }

    /// A connection to a usable replica, or `None` (the caller uses the primary).
    pub async fn read(&self) -> Option<(Object<PgConn>, ReadSource)> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        for member in self.rotation() {
            if !self.usable(member) {
                continue;
            }
            if let Some(conn) = checkout(member).await {
                return Some((conn, ReadSource::Replica(member.shown_url.clone())));
            }
        }
        None
    }

    /// A connection to a replica that has replayed `position`, or `None`.
    /// The position is asked on the very connection handed out (see the
    /// module docs), within `DB_REPLICA_READ_TIMEOUT_MS`.
    pub async fn read_after(
        &self,
        position: WalPosition,
        timeout: Duration,
    ) -> Option<(Object<PgConn>, ReadSource)> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        for member in self.rotation() {
            if !member.healthy.load(Ordering::Relaxed) || !self.on_primary_timeline(member) {
                continue;
            }
            let Some(mut conn) = checkout(member).await else {
                continue;
            };
            let live = diesel::sql_query(format!(
                "SELECT coalesce(pg_last_wal_replay_lsn() >= '{position}'::pg_lsn, false) AS reached"
            ));
            let asked = tokio::time::timeout(
                timeout,
                diesel_async::RunQueryDsl::get_result::<Reached>(live, &mut *conn),
            )
            .await;
            match asked {
                Ok(Ok(r)) if r.reached => {
                    return Some((conn, ReadSource::Replica(member.shown_url.clone())));
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => member.mark_down(&e),
                Err(_) => {
                    // Cut short mid-statement: this connection never goes
                    // back to the pool.
                    let _ = Object::take(conn);
                    member.mark_down(&"no answer to the replay check in time");
                }
            }
        }
        None
    }
}

/// A replica's lag at `now`, having replayed `position`: the age of the
/// oldest primary sample past it, and at least the age of the newest
/// sample (the primary may have written since, unseen); `None` without any
/// sample of the primary on its current timeline.
fn lag_of(samples: &Samples, position: WalPosition, now: Instant) -> Option<Duration> {
    let (newest_at, _) = samples.positions.back()?;
    let behind = samples
        .positions
        .iter()
        .find(|(_, p)| *p > position)
        .map(|(at, _)| now.saturating_duration_since(*at))
        .unwrap_or_default();
    Some(behind.max(now.saturating_duration_since(*newest_at)))
}

/// Checks a connection out of `member`'s pool, briefly: a replica whose
/// pool is busy is skipped for this read (not marked down), and one that
/// does not let a connection open within `CHECKOUT_CREATE` is marked down
/// (until the monitor sees it answer) and not the caller's problem.
async fn checkout(member: &Member) -> Option<Object<PgConn>> {
    use deadpool::managed::{PoolError, TimeoutType, Timeouts};
    // A verified recycle asks the server: bounded like opening.
    let timeouts = Timeouts {
        wait: Some(CHECKOUT_WAIT),
        create: Some(CHECKOUT_CREATE),
        recycle: Some(CHECKOUT_CREATE),
    };
    match member.pool.timeout_get(&timeouts).await {
        Ok(conn) => Some(conn),
        Err(PoolError::Timeout(TimeoutType::Wait)) => None,
        Err(e) => {
            member.mark_down(&format!("checkout failed: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_positions_parse_compare_and_print() {
        let a = WalPosition::parse("0/16B3748").unwrap();
        let b = WalPosition::parse("1/0").unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "0/16B3748");
        assert_eq!(b.0, 1 << 32);
        assert_eq!(WalPosition::parse("nonsense"), None);
    }
}
