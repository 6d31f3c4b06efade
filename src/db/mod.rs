//! `Db`: configuration from the environment, the connection pool, and the
//! entry points a service calls at start-up (`migrate`, `health`).
//!
//! One file per concern: `config` (the settings), `url` (URLs and their
//! redaction), `connection` (how one connection is opened and set up), `local` (the
//! project-local cluster's URL when `DATABASE_URL` is unset) and this file (the pool and the `Db` handle).

mod any;
mod config;
mod connection;
mod deadline;
pub mod local;
mod pg_conn;
mod replicas;
pub mod sqlite;
mod tls;
mod unnamed;
mod url;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};

pub use any::{AnyConn, AnyPooledConn, Backend};
pub(crate) use any::{any_run, selectable_on_both};
pub use config::{Config, Pooler, Recycle};
pub use connection::{connect, connect_for_migrations};
pub use pg_conn::{PgConn, PgConnField, PgConnRow};
pub use replicas::{ReadSource, WalPosition};
pub use tls::SslMode;
pub(crate) use unnamed::STATEMENT_MAY_HAVE_RUN;
pub use unnamed::{UnnamedField, UnnamedRow};
pub use url::{ConnString, redact_url, split_password, with_dbname};

use crate::error::{Error, Result};
use crate::migrate::{self, MigrationSet};
use connection::{ConnectionSettings, connection_error};

/// The connection type every repository function takes (`&mut Conn`).
/// A pooled connection dereferences to it. Direct or pooler mode is decided
/// when it opens (`DB_POOLER`); see `PgConn`.
pub type Conn = PgConn;

/// A connection checked out of the pool; returns to it when dropped.
pub type PooledConn = Object<PgConn>;

/// The data layer's handle: a pool of connections and its configuration.
/// Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Db {
    pool: Pool<PgConn>,
    /// Read replicas and what is known of their lag (`None` without any).
    replicas: Option<Arc<replicas::Replicas>>,
    config: Arc<Config>,
    /// `Some` when `DATABASE_URL` is a SQLite URL (issue #16): then `pool` is
    /// never checked out (`conn` refuses first) and `any_conn` serves SQLite.
    sqlite: Option<Arc<sqlite::SqliteDb>>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("config", &self.config)
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// Numbers of the pool at one instant.
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

/// What `Db::health` measured.
#[derive(Debug, Clone)]
pub struct Health {
    /// Round trip of `SELECT 1` including the checkout.
    pub latency: Duration,
    /// The pool after the check.
    pub pool: PoolStatus,
}

impl Db {
    /// Builds the pool. No connection is opened until one is needed, so this
    /// succeeds while the server is down; `migrate` or `health` will tell.
    pub fn new(config: Config) -> Result<Self> {
        if let Some(target) = sqlite::sqlite_target(&config.database_url) {
            return Self::new_sqlite(config, target);
        }
        config.validate()?;
        let pool = build_pool(&config, &config.database_url)?;
        spawn_idle_reaper(&pool, config.idle_timeout);
        let mut replica_pools = Vec::with_capacity(config.replica_urls.len());
        for url in &config.replica_urls {
            let replica = build_pool(&config, url)?;
            spawn_idle_reaper(&replica, config.idle_timeout);
            replica_pools.push((url.clone(), replica));
        }
        let replicas = replicas::Replicas::start(&pool, replica_pools, config.replica_max_lag);
        Ok(Self {
            pool,
            replicas,
            config: Arc::new(config),
            sqlite: None,
        })
    }

    /// `Config::from_env` then `Db::new`.
    pub fn from_env() -> Result<Self> {
        Self::new(Config::from_env()?)
    }

    /// The configuration this `Db` was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Checks a connection out of the pool. Waits at most the pool wait
    /// timeout; a full pool, a refused connection or a server that is down
    /// give `Error::Unavailable`.
    pub async fn conn(&self) -> Result<PooledConn> {
        if self.sqlite.is_some() {
            return Err(sqlite_refuses("a PostgreSQL connection (Db::conn)"));
        }
        self.pool
            .get()
            .await
            .map_err(|e| pool_error(e, &self.config, self.pool.status()))
    }

    /// A connection for reads: from a healthy replica within
    /// `DB_REPLICA_MAX_LAG_MS` when there is one, else from the primary.
    /// Reads on it may be up to that lag behind; use `read_after` to see a
    /// write of your own. Replicas are read-only: a repository function that
    /// writes fails there (`Error::Database` with `ReadOnlyTransaction`).
    pub async fn read(&self) -> Result<PooledConn> {
        Ok(self.read_from().await?.0)
    }

    /// `read`, also saying where the connection came from.
    pub async fn read_from(&self) -> Result<(PooledConn, ReadSource)> {
        if let Some(replicas) = &self.replicas
            && let Some(found) = replicas.read().await
        {
            return Ok(found);
        }
        Ok((self.conn().await?, ReadSource::Primary))
    }

    /// The primary's WAL position now. Taken after a write has committed, it
    /// is a read-your-writes token: `read_after(position)` sees that write.
    pub async fn wal_position(&self) -> Result<WalPosition> {
        let mut conn = self.conn().await?;
        replicas::insert_position(&mut conn).await
    }

    /// A connection guaranteed to see everything committed before
    /// `position` (from `wal_position`): a replica that has replayed it, else
    /// the primary.
    pub async fn read_after(&self, position: WalPosition) -> Result<(PooledConn, ReadSource)> {
        if let Some(replicas) = &self.replicas
            && let Some(found) = replicas.read_after(position).await
        {
            return Ok(found);
        }
        Ok((self.conn().await?, ReadSource::Primary))
    }

    /// Runs `f` on a pooled connection under the client-side deadline
    /// (`DB_QUERY_TIMEOUT_MS`; without one, simply runs it). When the deadline
    /// fires, `f` is dropped, its connection is discarded (never returned to
    /// the pool), and the call fails with `Error::Timeout { kind: Client }`,
    /// or with `Error::CommitOutcomeUnknown` when a `COMMIT` was in flight:
    /// then the transaction may have committed.
    ///
    /// ```no_run
    /// # async fn f(db: &database::Db) -> Result<(), database::Error> {
    /// let user = db
    ///     .run(async |conn| database::auth::users::find_by_email(conn, "ann@example.com").await)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn run<T>(&self, f: impl AsyncFnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut conn = self.conn().await?;
        let limit = self.config.query_timeout;
        let (output, call) = deadline::within(limit, f(&mut conn)).await;
        match output {
            // The connection broke while a COMMIT was on its way: it may
            // have committed. Saying "unavailable, retry" would invite a
            // second write.
            Some(Err(Error::Unavailable(why))) if call.commit_failed() => {
                Err(Error::CommitOutcomeUnknown(format!(
                    "the connection failed during COMMIT ({why}); the transaction may have \
                     committed: check before retrying"
                )))
            }
            Some(result) => result,
            None => {
                // Its protocol state is unknown: never hand it out again.
                drop(Object::take(conn));
                let limit_ms = limit.map_or(0, |l| l.as_millis());
                Err(if call.in_commit() {
                    Error::CommitOutcomeUnknown(format!(
                        "COMMIT was sent but not answered within DB_QUERY_TIMEOUT_MS ({limit_ms} ms); \
                         the transaction may have committed: check before retrying"
                    ))
                } else {
                    let committed = if call.committed() {
                        "a transaction of this call had committed before the deadline; "
                    } else {
                        ""
                    };
                    Error::Timeout {
                        kind: crate::TimeoutKind::Client,
                        message: format!(
                            "no answer within DB_QUERY_TIMEOUT_MS ({limit_ms} ms); {committed}the \
                             connection was discarded, so an open transaction is rolled back \
                             (statements run outside a transaction stay)"
                        ),
                    }
                })
            }
        }
    }

    /// Opens a connection outside the pool, set up like pooled ones, to `url`.
    pub async fn connect_direct(&self, url: &str) -> Result<Conn> {
        if self.sqlite.is_some() {
            return Err(sqlite_refuses(
                "a PostgreSQL connection (Db::connect_direct)",
            ));
        }
        connect(&self.config, url).await
    }

    /// Applies the embedded migrations. Safe to call from every replica at
    /// start-up: when nothing is pending this is one query on a pooled
    /// connection; otherwise the work runs under the migration lock on a
    /// dedicated connection to the migration URL.
    pub async fn migrate(&self) -> Result<migrate::Report> {
        self.migrate_with(MigrationSet::embedded()).await
    }

    /// Like `migrate`, with another set of migrations.
    pub async fn migrate_with(&self, set: &MigrationSet) -> Result<migrate::Report> {
        if let Some(sqlite) = &self.sqlite {
            // `migrate()` embeds PostgreSQL's set: SQLite has its own folder.
            let set = if std::ptr::eq(set, MigrationSet::embedded()) {
                migrate::sqlite::embedded()
            } else {
                set
            };
            return sqlite.migrate(set).await;
        }
        // In pooler mode the quick check is skipped: the migration session
        // (which `connect_for_migrations` refuses without
        // DATABASE_MIGRATION_URL) does it under the lock.
        if self.config.pooler == Pooler::None {
            let mut conn = self.conn().await?;
            if migrate::is_up_to_date(&mut conn, set).await? {
                return Ok(migrate::Report::default());
            }
        }
        // Connection errors keep their kind: an outage at start-up stays
        // retryable, a wrong URL stays a configuration error.
        let mut conn = connect_for_migrations(&self.config, self.config.migration_url()).await?;
        Ok(migrate::run_with(
            &mut conn,
            set,
            &migrate::RunOptions::from_config(&self.config),
        )
        .await?)
    }

    /// Checks that the database answers, and measures how fast.
    pub async fn health(&self) -> Result<Health> {
        use diesel_async::RunQueryDsl;
        let start = Instant::now();
        if self.is_sqlite() {
            let mut conn = self.any_conn().await?;
            sqlite_health(&mut conn).await?;
            return Ok(Health {
                latency: start.elapsed(),
                pool: self.pool_status(),
            });
        }
        let mut conn = self.conn().await?;
        diesel::select(1.into_sql::<diesel::sql_types::Integer>())
            .execute(&mut conn)
            .await?;
        let latency = start.elapsed();
        drop(conn);
        Ok(Health {
            latency,
            pool: self.pool_status(),
        })
    }

    /// The pool's numbers now.
    pub fn pool_status(&self) -> PoolStatus {
        let s = match &self.sqlite {
            Some(sqlite) => sqlite.pool.status(),
            None => self.pool.status(),
        };
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        }
    }

    /// Closes every idle connection and refuses new checkouts.
    pub fn close(&self) {
        self.pool.close();
        if let Some(sqlite) = &self.sqlite {
            sqlite.pool.close();
        }
    }
}

use diesel::IntoSql as _;

/// Closes connections idle for longer than `idle_timeout`. deadpool has no
/// idle timeout of its own; this task holds only a weak reference, so it
/// ends when the last `Db` clone is dropped.
/// A pool of connections to `url`, each set up by the one connection
/// set-up (`connection.rs`) with `config`'s settings.
fn build_pool(config: &Config, url: &str) -> Result<Pool<PgConn>> {
    let settings = ConnectionSettings::from_config(config);
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
    Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(config.wait_timeout))
        // establish() enforces the connect timeout itself; this is a backstop.
        .create_timeout(Some(config.connect_timeout + Duration::from_secs(1)))
        // Only a verified recycle does I/O. A fast one is a flag check,
        // and a timeout around it would build a timer on every checkout.
        .recycle_timeout((config.recycle == Recycle::Verified).then_some(config.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Config(format!("cannot build the pool: {e}")))
}

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

fn pool_error(e: PoolError, config: &Config, status: deadpool::Status) -> Error {
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
                redact_url(&config.database_url),
                config.connect_timeout.as_secs()
            ))
        }
        P::Timeout(TimeoutType::Wait) => Error::Unavailable(format!(
            "no free connection within {} s: all {} connections of the pool are in use (DB_POOL_SIZE)",
            config.wait_timeout.as_secs(),
            config.pool_size
        )),
        P::Timeout(TimeoutType::Create) => Error::Unavailable(format!(
            "connecting to {} timed out after {} s",
            redact_url(&config.database_url),
            config.connect_timeout.as_secs()
        )),
        P::Timeout(TimeoutType::Recycle) => {
            Error::Unavailable("checking a pooled connection timed out".into())
        }
        P::Backend(diesel_async::pooled_connection::PoolError::ConnectionError(e)) => {
            connection_error(e, &config.database_url)
        }
        P::Backend(diesel_async::pooled_connection::PoolError::QueryError(e)) => Error::from(e),
        P::Closed => Error::Unavailable("the pool is closed".into()),
        P::NoRuntimeSpecified => Error::Config("the pool has no async runtime".into()),
        P::PostCreateHook(e) => {
            Error::Unavailable(format!("setting up a new connection failed: {e}"))
        }
    }
}

// ---- SQLite (issue #16): the rest lives in any.rs and sqlite.rs ----

impl Db {
    fn new_sqlite(config: Config, target: sqlite::SqliteTarget) -> Result<Self> {
        let sqlite = sqlite::SqliteDb::new(&config, target)?;
        // The PostgreSQL pool of a SQLite `Db` is never used: `conn` refuses
        // before checking out. Building it opens nothing.
        let pool = build_pool(&config, &config.database_url)?;
        pool.close();
        Ok(Self {
            pool,
            replicas: None,
            config: Arc::new(config),
            sqlite: Some(Arc::new(sqlite)),
        })
    }

    /// Whether `DATABASE_URL` named a SQLite database.
    pub fn is_sqlite(&self) -> bool {
        self.sqlite.is_some()
    }

    /// A pooled connection of whichever backend `DATABASE_URL` names: what
    /// the portable domains (auth, settings) take. Fails like `conn`.
    pub async fn any_conn(&self) -> Result<AnyPooledConn> {
        match &self.sqlite {
            Some(sqlite) => Ok(AnyPooledConn::Sqlite(sqlite.conn().await?)),
            None => Ok(AnyPooledConn::Pg(self.conn().await?)),
        }
    }
}

fn sqlite_refuses(what: &str) -> Error {
    Error::Unsupported(format!(
        "{what}: DATABASE_URL names a SQLite database, which serves only the auth and \
         settings domains (use Db::any_conn); this needs PostgreSQL"
    ))
}

async fn sqlite_health(conn: &mut AnyPooledConn) -> Result<()> {
    use diesel_async::RunQueryDsl;
    if let Backend::Sqlite(conn) = AnyConn::backend(conn) {
        diesel::select(1.into_sql::<diesel::sql_types::Integer>())
            .execute(conn)
            .await?;
    }
    Ok(())
}
