//! `Db`: configuration from the environment, the connection pool, and the
//! entry points a service calls at start-up (`migrate`, `health`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, Instrumentation, InstrumentationEvent};
use diesel::result::ConnectionError;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::error::{Error, Result};
use crate::migrate::{self, MigrationError, MigrationSet};

/// The connection type every repository function takes (`&mut Conn`).
/// A pooled connection dereferences to it.
pub type Conn = AsyncPgConnection;

/// A connection checked out of the pool; returns to it when dropped.
pub type PooledConn = Object<AsyncPgConnection>;

/// How a connection is checked before the pool hands it out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recycle {
    /// Only check that the connection is open and has no open transaction.
    Fast,
    /// Also run a test query (one extra round trip per checkout).
    Verified,
}

/// Settings of the data layer. See the README's configuration table.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`: the database the pool connects to.
    pub database_url: String,
    /// `DATABASE_MIGRATION_URL`: where migrations run, when it differs (the
    /// server itself when the application goes through PgBouncer: the
    /// migration lock is session-level and does not survive transaction pooling).
    pub migration_url: Option<String>,
    /// `DB_POOL_SIZE`: the most connections the pool opens (default 10).
    pub pool_size: usize,
    /// `DB_CONNECT_TIMEOUT_SECS`: limit on opening a connection (default 10 s).
    pub connect_timeout: Duration,
    /// `DB_IDLE_TIMEOUT_SECS`: an idle connection is closed after this (default 20 s).
    pub idle_timeout: Duration,
    /// `DB_POOL_WAIT_TIMEOUT_SECS`: how long a caller waits for a free
    /// connection before getting `Error::Unavailable` (default 5 s).
    pub wait_timeout: Duration,
    /// `DB_STATEMENT_TIMEOUT_MS`: server-side limit per statement (default none).
    pub statement_timeout: Option<Duration>,
    /// `DB_STATEMENT_CACHE`: cache prepared statements per connection
    /// (default true). Turn off behind PgBouncer in transaction mode.
    pub statement_cache: bool,
    /// `DB_LOG_QUERIES`: log every statement and its duration through
    /// `tracing` (target `database::query`, level DEBUG).
    pub log_queries: bool,
    /// `DB_SLOW_QUERY_MS`: log statements slower than this at WARN, even when
    /// `log_queries` is off.
    pub slow_query: Option<Duration>,
    /// `DB_POOL_RECYCLE`: `fast` (default) or `verified`.
    pub recycle: Recycle,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "migration_url",
                &self.migration_url.as_deref().map(redact_url),
            )
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("statement_cache", &self.statement_cache)
            .field("log_queries", &self.log_queries)
            .field("slow_query", &self.slow_query)
            .field("recycle", &self.recycle)
            .finish()
    }
}

impl Config {
    /// Defaults for everything but the URL.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            migration_url: None,
            pool_size: 10,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(20),
            wait_timeout: Duration::from_secs(5),
            statement_timeout: None,
            statement_cache: true,
            log_queries: false,
            slow_query: None,
            recycle: Recycle::Fast,
        }
    }

    /// Reads the configuration from the environment, after loading `.env`
    /// from the working directory (or a parent) when there is one. Variables
    /// already set in the environment win over `.env`.
    pub fn from_env() -> Result<Self> {
        // A missing .env is normal; a malformed one is worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(Error::Config(format!(".env: {e}"))),
        }
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the configuration through `lookup` (the environment, in `from_env`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let url = get("DATABASE_URL").ok_or_else(|| {
            Error::Config(
                "DATABASE_URL is not set; e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/app (in the environment or .env)".into(),
            )
        })?;
        let mut config = Config::new(url);
        config.migration_url = get("DATABASE_MIGRATION_URL");

        let number = |key: &str, min: u64, max: u64| -> Result<Option<u64>> {
            let Some(raw) = get(key) else { return Ok(None) };
            match raw.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(Error::Config(format!(
                    "{key}={raw:?}: expected a whole number from {min} to {max}"
                ))),
            }
        };
        let flag = |key: &str| -> Result<Option<bool>> {
            let Some(raw) = get(key) else { return Ok(None) };
            match raw.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(Some(true)),
                "0" | "false" | "no" | "off" => Ok(Some(false)),
                _ => Err(Error::Config(format!(
                    "{key}={raw:?}: expected true or false"
                ))),
            }
        };

        if let Some(n) = number("DB_POOL_SIZE", 1, 10_000)? {
            config.pool_size = n as usize;
        }
        if let Some(n) = number("DB_CONNECT_TIMEOUT_SECS", 1, 3600)? {
            config.connect_timeout = Duration::from_secs(n);
        }
        if let Some(n) = number("DB_IDLE_TIMEOUT_SECS", 1, 86_400)? {
            config.idle_timeout = Duration::from_secs(n);
        }
        if let Some(n) = number("DB_POOL_WAIT_TIMEOUT_SECS", 0, 3600)? {
            config.wait_timeout = Duration::from_secs(n);
        }
        if let Some(n) = number("DB_STATEMENT_TIMEOUT_MS", 1, 86_400_000)? {
            config.statement_timeout = Some(Duration::from_millis(n));
        }
        if let Some(n) = number("DB_SLOW_QUERY_MS", 1, 86_400_000)? {
            config.slow_query = Some(Duration::from_millis(n));
        }
        if let Some(b) = flag("DB_STATEMENT_CACHE")? {
            config.statement_cache = b;
        }
        if let Some(b) = flag("DB_LOG_QUERIES")? {
            config.log_queries = b;
        }
        if let Some(raw) = get("DB_POOL_RECYCLE") {
            config.recycle = match raw.to_ascii_lowercase().as_str() {
                "fast" => Recycle::Fast,
                "verified" => Recycle::Verified,
                _ => {
                    return Err(Error::Config(format!(
                        "DB_POOL_RECYCLE={raw:?}: expected fast or verified"
                    )));
                }
            };
        }
        Ok(config)
    }

    /// The URL migrations run against.
    pub fn migration_url(&self) -> &str {
        self.migration_url.as_deref().unwrap_or(&self.database_url)
    }
}

/// The URL with its password replaced by `***`, for logs and errors.
pub fn redact_url(raw: &str) -> String {
    if let Ok(mut url) = url::Url::parse(raw) {
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        // Also `?password=...` in the query string.
        if url.query_pairs().any(|(k, _)| k == "password") {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return url.to_string();
    }
    // A libpq key=value string: "host=x password=secret dbname=y".
    raw.split_whitespace()
        .map(|part| match part.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What each new connection is set up with.
#[derive(Clone)]
struct ConnectionSettings {
    connect_timeout: Duration,
    statement_timeout: Option<Duration>,
    statement_cache: bool,
    log_queries: bool,
    slow_query: Option<Duration>,
}

impl ConnectionSettings {
    fn from_config(config: &Config) -> Self {
        Self {
            connect_timeout: config.connect_timeout,
            statement_timeout: config.statement_timeout,
            statement_cache: config.statement_cache,
            log_queries: config.log_queries,
            slow_query: config.slow_query,
        }
    }

    async fn establish(&self, url: &str) -> Result<AsyncPgConnection, ConnectionError> {
        let mut conn =
            tokio::time::timeout(self.connect_timeout, AsyncPgConnection::establish(url))
                .await
                .map_err(|_| {
                    ConnectionError::BadConnection(format!(
                        "no connection within the connect timeout ({} s)",
                        self.connect_timeout.as_secs()
                    ))
                })??;
        if !self.statement_cache {
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        if let Some(timeout) = self.statement_timeout {
            conn.batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis()))
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
        }
        if self.log_queries || self.slow_query.is_some() {
            conn.set_instrumentation(QueryLogger {
                log_all: self.log_queries,
                slow: self.slow_query,
                started: None,
            });
        }
        Ok(conn)
    }
}

/// Logs statements and their duration through `tracing`. Bind values are
/// logged only at TRACE: they may hold secrets or personal data.
struct QueryLogger {
    log_all: bool,
    slow: Option<Duration>,
    started: Option<Instant>,
}

impl Instrumentation for QueryLogger {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.started = Some(Instant::now()),
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                let elapsed = self.started.take().map(|s| s.elapsed()).unwrap_or_default();
                let slow = self.slow.is_some_and(|limit| elapsed >= limit);
                // Rendering the statement costs an allocation per query:
                // only when it will be written somewhere.
                if !(slow
                    || self.log_all
                    || tracing::enabled!(target: "database::query", tracing::Level::TRACE))
                {
                    return;
                }
                let text = query.to_string();
                let sql = text.split(" -- binds: ").next().unwrap_or(&text);
                let elapsed_us = elapsed.as_micros() as u64;
                if slow {
                    tracing::warn!(target: "database::query", elapsed_us, sql, "slow query");
                } else if self.log_all {
                    match error {
                        Some(e) => {
                            tracing::debug!(target: "database::query", elapsed_us, sql, error = %e, "query failed")
                        }
                        None => {
                            tracing::debug!(target: "database::query", elapsed_us, sql, "query")
                        }
                    }
                }
                tracing::trace!(target: "database::query", statement = %text);
            }
            _ => {}
        }
    }
}

/// The data layer's handle: a pool of connections and its configuration.
/// Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Db {
    pool: Pool<AsyncPgConnection>,
    config: Arc<Config>,
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
        let settings = ConnectionSettings::from_config(&config);
        let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
        manager_config.recycling_method = match config.recycle {
            Recycle::Fast => RecyclingMethod::Fast,
            Recycle::Verified => RecyclingMethod::Verified,
        };
        manager_config.custom_setup = Box::new(move |url| {
            let settings = settings.clone();
            let url = url.to_owned();
            Box::pin(async move { settings.establish(&url).await })
        });
        let manager =
            AsyncDieselConnectionManager::new_with_config(&config.database_url, manager_config);
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .wait_timeout(Some(config.wait_timeout))
            // establish() enforces the connect timeout itself; this is a backstop.
            .create_timeout(Some(config.connect_timeout + Duration::from_secs(1)))
            // Only a verified recycle does I/O. A fast one is a flag check,
            // and a timeout around it would build a timer on every checkout.
            .recycle_timeout(
                (config.recycle == Recycle::Verified).then_some(config.connect_timeout),
            )
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the pool: {e}")))?;

        spawn_idle_reaper(&pool, config.idle_timeout);
        Ok(Self {
            pool,
            config: Arc::new(config),
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
        self.pool
            .get()
            .await
            .map_err(|e| pool_error(e, &self.config))
    }

    /// Opens a connection outside the pool, set up like pooled ones, to `url`.
    pub async fn connect_direct(&self, url: &str) -> Result<AsyncPgConnection> {
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
        {
            let mut conn = self.conn().await?;
            if migrate::is_up_to_date(&mut conn, set).await? {
                return Ok(migrate::Report::default());
            }
        }
        let mut conn = self
            .connect_direct(self.config.migration_url())
            .await
            .map_err(|e| MigrationError::Connection(e.to_string()))?;
        Ok(migrate::run(&mut conn, set).await?)
    }

    /// Checks that the database answers, and measures how fast.
    pub async fn health(&self) -> Result<Health> {
        use diesel_async::RunQueryDsl;
        let start = Instant::now();
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
        let s = self.pool.status();
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
    }
}

use diesel::IntoSql as _;

/// Opens one connection to `url`, set up as `config` sets up pooled ones
/// (timeouts, statement cache, logging), without building a pool.
pub async fn connect(config: &Config, url: &str) -> Result<AsyncPgConnection> {
    ConnectionSettings::from_config(config)
        .establish(url)
        .await
        .map_err(|e| connection_error(e, url))
}

/// Closes connections idle for longer than `idle_timeout`. deadpool has no
/// idle timeout of its own; this task holds only a weak reference, so it
/// ends when the last `Db` clone is dropped.
fn spawn_idle_reaper(pool: &Pool<AsyncPgConnection>, idle_timeout: Duration) {
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

fn pool_error(e: PoolError, config: &Config) -> Error {
    use deadpool::managed::{PoolError as P, TimeoutType};
    match e {
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

fn connection_error(e: ConnectionError, url: &str) -> Error {
    match e {
        ConnectionError::InvalidConnectionUrl(msg) => {
            Error::Config(format!("invalid database URL {}: {msg}", redact_url(url)))
        }
        other => Error::Unavailable(format!("cannot connect to {}: {other}", redact_url(url))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/app"),
            "postgres://app:***@db.internal:5432/app"
        );
        assert_eq!(
            redact_url("postgres://app@localhost/app"),
            "postgres://app@localhost/app"
        );
        assert!(!redact_url("postgres://h/app?password=s3cret&sslmode=require").contains("s3cret"));
        assert_eq!(
            redact_url("host=x password=s3cret dbname=y"),
            "host=x password=*** dbname=y"
        );
    }

    #[test]
    fn config_debug_never_shows_the_password() {
        let config = Config::new("postgres://app:s3cret@db/app");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn config_reads_every_variable() {
        let env = |k: &str| {
            Some(
                match k {
                    "DATABASE_URL" => "postgres://x/y",
                    "DB_POOL_SIZE" => "3",
                    "DB_CONNECT_TIMEOUT_SECS" => "2",
                    "DB_IDLE_TIMEOUT_SECS" => "7",
                    "DB_POOL_WAIT_TIMEOUT_SECS" => "1",
                    "DB_STATEMENT_TIMEOUT_MS" => "1500",
                    "DB_STATEMENT_CACHE" => "false",
                    "DB_LOG_QUERIES" => "yes",
                    "DB_POOL_RECYCLE" => "verified",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let c = Config::from_lookup(env).unwrap();
        assert_eq!(c.pool_size, 3);
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.idle_timeout, Duration::from_secs(7));
        assert_eq!(c.wait_timeout, Duration::from_secs(1));
        assert_eq!(c.statement_timeout, Some(Duration::from_millis(1500)));
        assert!(!c.statement_cache);
        assert!(c.log_queries);
        assert_eq!(c.recycle, Recycle::Verified);
    }

    #[test]
    fn config_defaults_and_errors_name_the_variable() {
        let c = Config::from_lookup(|k| (k == "DATABASE_URL").then(|| "postgres://x/y".to_owned()))
            .unwrap();
        assert_eq!(c.pool_size, 10);
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(20));
        assert!(c.statement_cache);

        let missing = Config::from_lookup(|_| None).unwrap_err();
        assert!(missing.to_string().contains("DATABASE_URL"), "{missing}");
        let bad = Config::from_lookup(|k| {
            Some(
                if k == "DB_POOL_SIZE" {
                    "many"
                } else {
                    "postgres://x/y"
                }
                .to_owned(),
            )
        })
        .unwrap_err();
        assert!(bad.to_string().contains("DB_POOL_SIZE"), "{bad}");
    }
}
