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

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::PgConn;
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Nullable, Text};
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
}

/// The replicas of one `Db` and the monitor's view of them.
pub(super) struct Replicas {
    members: Vec<Arc<Member>>,
    max_lag: Duration,
    next: AtomicUsize,
}

#[derive(QueryableByName)]
struct Position {
    #[diesel(sql_type = Nullable<Text>)]
    lsn: Option<String>,
}

#[derive(QueryableByName)]
struct Reached {
    #[diesel(sql_type = Bool)]
    reached: bool,
}

/// A WAL position one of PostgreSQL's `pg_*_lsn()` functions reports
/// (`None` where it has none: a replay position on a primary).
async fn position(conn: &mut PgConn, function: &str) -> Result<Option<WalPosition>> {
    let row: Position = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(format!("SELECT {function}()::text AS lsn")),
        conn,
    )
    .await?;
    Ok(row.lsn.as_deref().and_then(WalPosition::parse))
}

async fn replayed(conn: &mut PgConn) -> Result<Option<WalPosition>> {
    position(conn, "pg_last_wal_replay_lsn").await
}

/// A position of the primary's WAL; an error on a replica, which has none.
async fn primary_position(conn: &mut PgConn, function: &str) -> Result<WalPosition> {
    position(conn, function).await?.ok_or_else(|| {
        Error::Config("the primary reported no WAL position (is it a replica?)".into())
    })
}

/// The primary's WAL flush position: what the lag monitor compares replay
/// positions with (the insert position may point past a page header or a
/// segment switch that an idle primary's replicas never "replay").
async fn flush_position(conn: &mut PgConn) -> Result<WalPosition> {
    primary_position(conn, "pg_current_wal_flush_lsn").await
}

/// The primary's WAL insert position now (a read-your-writes token: past
/// every commit record written so far).
pub(super) async fn insert_position(conn: &mut PgConn) -> Result<WalPosition> {
    primary_position(conn, "pg_current_wal_insert_lsn").await
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
                })
            })
            .collect();
        let replicas = Arc::new(Replicas {
            members,
            max_lag,
            next: AtomicUsize::new(0),
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
                let samples = Mutex::new(VecDeque::with_capacity(SAMPLES));
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

    async fn sample(
        &self,
        primary: &Pool<PgConn>,
        samples: &Mutex<VecDeque<(Instant, WalPosition)>>,
    ) {
        let now = Instant::now();
        let primary_position = match tokio::time::timeout(CHECK_TIMEOUT, async {
            let mut conn = primary.get().await.ok()?;
            flush_position(&mut conn).await.ok()
        })
        .await
        {
            Ok(Some(p)) => Some(p),
            _ => None,
        };
        if let Some(p) = primary_position {
            let mut s = samples.lock().unwrap_or_else(|e| e.into_inner());
            if s.len() == SAMPLES {
                s.pop_front();
            }
            s.push_back((now, p));
        }
        for member in &self.members {
            let seen = tokio::time::timeout(CHECK_TIMEOUT, async {
                let mut conn = member.pool.get().await.ok()?;
                replayed(&mut conn).await.ok()
            })
            .await
            .ok()
            .flatten()
            .flatten();
            let Some(position) = seen else {
                if member.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(replica = %member.shown_url, "replica not answering; reads go elsewhere");
                }
                // Its idle connections are likely dead: don't hand them out.
                member.pool.retain(|_, _| false);
                continue;
            };
            member.replayed.store(position.0, Ordering::Relaxed);
            // Lag: age of the oldest primary position not replayed yet.
            let lag = {
                let s = samples.lock().unwrap_or_else(|e| e.into_inner());
                s.iter()
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

    fn usable(&self, member: &Member) -> bool {
        member.healthy.load(Ordering::Relaxed)
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
            if !member.healthy.load(Ordering::Relaxed) {
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
