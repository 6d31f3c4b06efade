//! The pools of PostgreSQL connections and what they hand out: a
//! `PooledConn` that goes back to its pool when dropped, unless the call it
//! served left it dirty (then it is closed, so the server rolls back at once
//! and nobody inherits its state).

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};

use super::config::{Config, Recycle};
use super::connection::{ConnectionSettings, connection_error};
use super::metrics::Meter;
use super::pg_conn::{PgConn, Scope};
use super::url::redact_url;
use crate::error::{Error, Result};

/// A connection checked out of a pool. It dereferences to `Conn`, so every
/// repository function and Diesel query takes it (`&mut conn`). Dropped, it
/// returns to the pool, unless a statement was abandoned half-way, its
/// deadline passed, the connection failed or a transaction is still open:
/// then it is closed (the server rolls the transaction back at once).
pub struct PooledConn {
    conn: Option<Object<PgConn>>,
    /// When it left the pool (`db.client.connection.use_time`).
    since: Instant,
}

impl PooledConn {
    /// A checked-out connection entering the scope of the call it serves.
    pub(super) fn new(conn: Object<PgConn>, scope: Scope) -> Self {
        Self::since(conn, scope, Instant::now())
    }

    /// `new`, out of the pool at `since` (a clock read the caller made).
    fn since(mut conn: Object<PgConn>, scope: Scope, since: Instant) -> Self {
        conn.enter(scope);
        Self {
            conn: Some(conn),
            since,
        }
    }

    /// Takes the connection out of its pool for good (it is closed when the
    /// returned value is dropped, and the pool opens another).
    pub fn detach(mut self) -> PgConn {
        Object::take(self.conn.take().expect("present until dropped"))
    }
}

impl std::fmt::Debug for PooledConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConn")
            .field("pooler_mode", &self.is_pooler_mode())
            .finish_non_exhaustive()
    }
}

impl Deref for PooledConn {
    type Target = PgConn;

    fn deref(&self) -> &PgConn {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut PgConn {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let meter = conn.meter();
        let pool = Object::pool(&conn);
        if conn.is_dirty() {
            // Closing it is the only safe end: its protocol or transaction
            // state is not what the next caller would expect.
            drop(Object::take(conn));
        } else {
            drop(conn);
        }
        meter.used(self.since.elapsed());
        if let Some(pool) = pool {
            meter.pool_status(pool.status());
        }
    }
}

/// Numbers of a pool at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Open connections not checked out.
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

impl From<deadpool::Status> for PoolStatus {
    fn from(s: deadpool::Status) -> Self {
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        }
    }
}

/// What `health` measured.
#[derive(Debug, Clone)]
pub struct Health {
    /// Round trip of `SELECT 1` including the checkout.
    pub latency: Duration,
    /// The pool after the check.
    pub pool: PoolStatus,
}

/// A pool of PostgreSQL connections and its metrics.
pub(super) struct PgPool {
    pool: Pool<PgConn>,
    meter: Arc<Meter>,
}

impl Deref for PgPool {
    type Target = Pool<PgConn>;

    fn deref(&self) -> &Pool<PgConn> {
        &self.pool
    }
}

/// A pool named `name` (`primary`, `replica-1`, `system`: the metrics'
/// label) of connections to `url`, each set up by the one connection set-up
/// (`connection.rs`) with `settings`.
pub(super) fn build(
    config: &Config,
    settings: ConnectionSettings,
    url: &str,
    size: usize,
    name: &str,
) -> Result<PgPool> {
    let meter = Meter::new("postgresql", name);
    let settings = settings.for_pool(Arc::clone(&meter));
    let mut manager_config = ManagerConfig::<PgConn>::default();
    manager_config.recycling_method = match config.recycle {
        Recycle::Fast => RecyclingMethod::Fast,
        Recycle::Verified => RecyclingMethod::Verified,
    };
    manager_config.custom_setup = Box::new(move |url| {
        let settings = settings.clone();
        let url = url.to_owned();
        Box::pin(async move { settings.establish(&url).await })
    });
    let manager = AsyncDieselConnectionManager::new_with_config(url, manager_config);
    let pool = Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(config.wait_timeout))
        // establish() enforces the connect timeout itself; this is a backstop.
        .create_timeout(Some(config.connect_timeout + Duration::from_secs(1)))
        // Only a verified recycle does I/O. A fast one is a flag check,
        // and a timeout around it would build a timer on every checkout.
        .recycle_timeout((config.recycle == Recycle::Verified).then_some(config.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Config(format!("cannot build the pool: {e}")))?;
    spawn_idle_reaper(&pool, config.idle_timeout);
    Ok(PgPool { pool, meter })
}

/// Closes connections idle for longer than `idle_timeout`. deadpool has no
/// idle timeout of its own; this task holds only a weak reference, so it
/// ends when the last `Db` clone is dropped.
fn spawn_idle_reaper(pool: &Pool<PgConn>, idle_timeout: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = pool.weak();
    let period = (idle_timeout / 2).max(Duration::from_millis(500));
    runtime.spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(pool) = weak.upgrade() else { break };
            pool.retain(|_, metrics| metrics.last_used() < idle_timeout);
        }
    });
}

/// A connection of `pool` for a call that started at `started` and is
/// bounded by `deadline`: waiting for a free one and opening one both end
/// there. Nothing has been sent when this fails, so the error is
/// `Unavailable` (retryable), `Config`, or `Timeout` when the deadline had
/// already passed.
pub(super) async fn checkout(
    pool: &PgPool,
    config: &Config,
    url: &str,
    (started, deadline): (Instant, Instant),
    scope: Scope,
) -> Result<PooledConn> {
    let meter = &pool.meter;
    // A timer polls its work first: a free connection would otherwise be
    // handed to a call whose deadline has already passed.
    if deadline <= started {
        return Err(super::call::deadline_passed("it began").into());
    }
    let waiting = tokio::time::timeout_at(deadline.into(), pool.get());
    let span = super::telemetry::enabled().then(|| {
        super::telemetry::pool_wait_span("postgresql", meter.pool(), scope.parent.as_ref())
    });
    let got = match &span {
        Some(span) => tracing::Instrument::instrument(waiting, span.clone()).await,
        None => waiting.await,
    };
    let timed_out = matches!(&got, Ok(Err(PoolError::Timeout(_))) | Err(_));
    let got_at = Instant::now();
    meter.waited(got_at.saturating_duration_since(started), timed_out);
    meter.pool_status(pool.status());
    if let Some(span) = &span {
        match &got {
            Ok(Ok(_)) => {}
            Ok(Err(PoolError::Timeout(_))) | Err(_) => {
                super::telemetry::record_failure(span, "timeout")
            }
            Ok(Err(_)) => super::telemetry::record_failure(span, "unavailable"),
        }
    }
    match got {
        Ok(Ok(conn)) => Ok(PooledConn::since(conn, scope, got_at)),
        Ok(Err(e)) => Err(pool_error(e, config, url, pool.status())),
        Err(_) => Err(Error::Unavailable(format!(
            "no connection to {} before the call's deadline ({} of {} connections open, {} \
             callers waiting); nothing was sent",
            redact_url(url),
            pool.status().size,
            pool.status().max_size,
            pool.status().waiting
        ))),
    }
}

fn pool_error(e: PoolError, config: &Config, url: &str, status: deadpool::Status) -> Error {
    use deadpool::managed::{PoolError as P, TimeoutType};
    match e {
        // Every slot is taken; say by what. Slots whose connection is still
        // being opened are not "in use": the server has not answered them.
        P::Timeout(TimeoutType::Wait) if status.size < status.max_size => {
            Error::Unavailable(format!(
                "no connection within {} s: {} of {} connections are open and busy, the others \
                 are still being opened ({} has not answered yet; connect timeout {} s)",
                config.wait_timeout.as_secs(),
                status.size,
                status.max_size,
                redact_url(url),
                config.connect_timeout.as_secs()
            ))
        }
        P::Timeout(TimeoutType::Wait) => Error::Unavailable(format!(
            "no free connection within {} s: all {} connections of the pool are in use (DB_POOL_SIZE)",
            config.wait_timeout.as_secs(),
            status.max_size
        )),
        P::Timeout(TimeoutType::Create) => Error::Unavailable(format!(
            "connecting to {} timed out after {} s",
            redact_url(url),
            config.connect_timeout.as_secs()
        )),
        P::Timeout(TimeoutType::Recycle) => {
            Error::Unavailable("checking a pooled connection timed out".into())
        }
        P::Backend(diesel_async::pooled_connection::PoolError::ConnectionError(e)) => {
            connection_error(e, url)
        }
        P::Backend(diesel_async::pooled_connection::PoolError::QueryError(e)) => Error::from(e),
        P::Closed => Error::Unavailable("the pool is closed".into()),
        P::NoRuntimeSpecified => Error::Config("the pool has no async runtime".into()),
        P::PostCreateHook(e) => {
            Error::Unavailable(format!("setting up a new connection failed: {e}"))
        }
    }
}
