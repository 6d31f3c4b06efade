//! The read path: streaming replicas behind one `Db`, chosen by `Db`, never
//! by a repository function's SQL.
//!
//! A monitor task samples, every `TICK`, the primary's WAL insert position
//! and each replica's replay position. A replica's lag is *measured*: the
//! age of the oldest primary sample it has not replayed yet (0 when it has
//! replayed the newest), so an idle primary does not look like a lagging
//! replica and a paused replay does. `read()` takes a healthy replica within
//! `DB_REPLICA_MAX_LAG_MS`, round-robin, and falls back to the primary when
//! there is none, or when checking a replica's connection out fails (which
//! also marks it down until the monitor sees it answer again), so a stopped
//! replica never surfaces an error to a caller that starts after it is gone.
//!
//! Read-your-writes: after a write commits, `Db::wal_position()` returns the
//! primary's WAL insert position, which is past that commit's record.
//! `read_after(position)` serves from a replica only once its replay
//! position has reached it (known from the monitor, or asked live on the
//! connection about to be handed out), else from the primary.
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

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::PgConn;
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

struct Member {
    shown_url: String,
    pool: Pool<PgConn>,
    healthy: AtomicBool,
    /// Replayed WAL position, as last seen.
    replayed: AtomicU64,
    /// Measured lag in milliseconds, as last computed.
    lag_ms: AtomicU64,
    /// The timeline it replays, as last seen (0: not known yet).
    timeline: AtomicU32,
}

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

impl Replicas {
    /// The replicas, with their monitor started (it ends with the last `Db`).
    pub fn start(
        primary: &Pool<PgConn>,
        pools: Vec<(String, Pool<PgConn>)>,
        max_lag: Duration,
    ) -> Option<Arc<Replicas>> {
        if pools.is_empty() {
            return None;
        }
        let members = pools
            .into_iter()
            .map(|(url, pool)| {
                Arc::new(Member {
                    shown_url: redact_url(&url),
                    pool,
                    // Unknown until the first sample: not used before it.
                    healthy: AtomicBool::new(false),
                    replayed: AtomicU64::new(0),
                    lag_ms: AtomicU64::new(u64::MAX),
                    timeline: AtomicU32::new(0),
                })
            })
            .collect();
        let replicas = Arc::new(Replicas {
            members,
            max_lag,
            next: AtomicUsize::new(0),
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
                    replicas.sample(&primary, &samples).await;
                }
            });
        }
        Some(replicas)
    }

    async fn sample(&self, primary: &Pool<PgConn>, samples: &Mutex<Samples>) {
        let now = Instant::now();
        let primary_position = match tokio::time::timeout(CHECK_TIMEOUT, async {
            let mut conn = primary.get().await.ok()?;
            conn.set_untraced();
            Some(flush_position(&mut conn).await)
        })
        .await
        {
            Ok(Some(Ok(p))) => Some(p),
            Ok(Some(Err(NotPrimary::ReadOnly))) => {
                // After a failover the pool may still hold connections to
                // the old primary (fenced, so still answering): its idle
                // ones go now, rather than each failing a write first.
                tracing::warn!(
                    "a connection of the primary's pool reached a server that accepts no writes; its idle connections are closed"
                );
                primary.retain(|_, _| false);
                None
            }
            _ => None,
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
        for member in &self.members {
            let seen = tokio::time::timeout(CHECK_TIMEOUT, async {
                let mut conn = member.pool.get().await.ok()?;
                conn.set_untraced();
                replayed_on_timeline(&mut conn).await.ok()
            })
            .await
            .ok()
            .flatten()
            .flatten();
            let Some((position, timeline)) = seen else {
                if member.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(replica = %member.shown_url, "replica not answering; reads go elsewhere");
                }
                // Its idle connections are likely dead: don't hand them out.
                member.pool.retain(|_, _| false);
                continue;
            };
            member.replayed.store(position.0, Ordering::Relaxed);
            let before = member.timeline.swap(timeline, Ordering::Relaxed);
            let primary = self.timeline.load(Ordering::Relaxed);
            if before != timeline && primary != 0 && timeline != primary {
                tracing::warn!(replica = %member.shown_url, timeline, primary_timeline = primary,
                    "replica not on the primary's timeline (a replica of the old primary after a failover); no reads until it follows the new one");
            }
            // Lag: age of the oldest primary position not replayed yet.
            let lag = {
                let s = samples.lock().unwrap_or_else(|e| e.into_inner());
                s.positions
                    .iter()
                    .find(|(_, p)| *p > position)
                    .map(|(at, _)| now.saturating_duration_since(*at))
                    .unwrap_or_default()
            };
            member
                .lag_ms
                .store(lag.as_millis() as u64, Ordering::Relaxed);
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

    /// Closes every replica pool (`Db::close`): no read goes to a replica after.
    pub fn close(&self) {
        for member in &self.members {
            member.healthy.store(false, Ordering::Relaxed);
            member.pool.close();
        }
    }

    /// A connection to a usable replica, or `None` (the caller uses the primary).
    pub async fn read(&self) -> Option<(Object<PgConn>, ReadSource)> {
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
    pub async fn read_after(&self, position: WalPosition) -> Option<(Object<PgConn>, ReadSource)> {
        for member in self.rotation() {
            if !member.healthy.load(Ordering::Relaxed) || !self.on_primary_timeline(member) {
                continue;
            }
            let known = WalPosition(member.replayed.load(Ordering::Relaxed)) >= position;
            let Some(mut conn) = checkout(member).await else {
                continue;
            };
            let live = diesel::sql_query(format!(
                "SELECT coalesce(pg_last_wal_replay_lsn() >= '{position}'::pg_lsn, false) AS reached"
            ));
            let reached = known
                || diesel_async::RunQueryDsl::get_result::<Reached>(live, &mut *conn)
                    .await
                    .map(|r| r.reached)
                    .unwrap_or(false);
            if reached {
                return Some((conn, ReadSource::Replica(member.shown_url.clone())));
            }
        }
        None
    }
}

/// Checks a connection out of `member`'s pool, briefly: a replica whose
/// pool is busy is skipped for this read (not marked down), and one that
/// does not let a connection open within `CHECKOUT_CREATE` is marked down
/// (until the monitor sees it answer) and not the caller's problem.
async fn checkout(member: &Member) -> Option<Object<PgConn>> {
    use deadpool::managed::{PoolError, TimeoutType, Timeouts};
    let timeouts = Timeouts {
        wait: Some(CHECKOUT_WAIT),
        create: Some(CHECKOUT_CREATE),
        recycle: None,
    };
    match member.pool.timeout_get(&timeouts).await {
        Ok(conn) => Some(conn),
        Err(PoolError::Timeout(TimeoutType::Wait)) => None,
        Err(e) => {
            if member.healthy.swap(false, Ordering::Relaxed) {
                tracing::warn!(replica = %member.shown_url, error = %e, "replica checkout failed; reads go to the primary");
            }
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
