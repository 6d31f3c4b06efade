//! SQLite as the backend of the portable domains (auth, settings): URL
//! forms, the pool, each connection's settings, constraint names in errors,
//! and the embedded SQLite migrations.
//!
//! diesel-async drives SQLite through `SyncConnectionWrapper`: every query
//! runs on a blocking thread, the connection itself stays synchronous.

use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;

use std::sync::Arc;

use super::Config;
use super::ctx::Ctx;
use crate::error::{Error, Result};

/// A SQLite connection as the portable repository functions take it.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// A SQLite connection checked out of the pool.
pub type SqlitePooledConn = Object<SqliteConn>;

/// How long a statement waits for another connection's write lock before
/// it fails with `Unavailable` ("database is locked").
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a SQLite URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteTarget {
    /// A database file (created when missing).
    File(PathBuf),
    /// `sqlite::memory:`: a private database that lives as long as its one
    /// connection (the pool then holds exactly one).
    Memory,
}

impl SqliteTarget {
    /// What `SqliteConnection::establish` takes.
    fn establish_arg(&self) -> String {
        match self {
            SqliteTarget::File(path) => path.to_string_lossy().into_owned(),
            SqliteTarget::Memory => ":memory:".to_owned(),
        }
    }
}

/// The target of `sqlite:PATH`, `sqlite://PATH` or `sqlite::memory:`; `None`
/// for any other URL. Diesel itself strips only `sqlite://`: with
/// `sqlite:./local.db` it would open a file of that literal name.
pub fn sqlite_target(url: &str) -> Option<SqliteTarget> {
    let rest = url.strip_prefix("sqlite:")?;
    if rest == ":memory:" || rest == "//:memory:" {
        return Some(SqliteTarget::Memory);
    }
    let path = rest.strip_prefix("//").unwrap_or(rest);
    // Query parameters (`?mode=rwc`) are SQLx's; a path never needs them here.
    let path = path.split('?').next().unwrap_or(path);
    Some(SqliteTarget::File(PathBuf::from(path)))
}

/// Whether `url` names a SQLite database.
pub fn is_sqlite_url(url: &str) -> bool {
    sqlite_target(url).is_some()
}

/// Opens one connection with the settings every SQLite connection of the
/// crate has: WAL (readers never block the writer), foreign keys enforced
/// (SQLite's default is off), a busy timeout (a writer waits for the lock
/// instead of failing at once) and `synchronous = NORMAL` (safe with WAL:
/// a power loss can lose the last commits, never corrupt the file).
pub fn establish_sync(target: &SqliteTarget) -> Result<SqliteConnection> {
    let mut conn = SqliteConnection::establish(&target.establish_arg()).map_err(|e| {
        Error::Config(format!(
            "cannot open SQLite database {}: {e}",
            target.establish_arg()
        ))
    })?;
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
         PRAGMA synchronous = NORMAL;",
        BUSY_TIMEOUT.as_millis()
    ))
    .map_err(|e| {
        Error::Config(format!(
            "cannot set up SQLite database {}: {e}",
            target.establish_arg()
        ))
    })?;
    let path = match target {
        SqliteTarget::File(path) => Some(path.to_string_lossy().into_owned()),
        SqliteTarget::Memory => None,
    };
    conn.set_instrumentation(super::telemetry::SqliteSpans::new(path.as_deref()));
    Ok(conn)
}

/// `establish_sync` on a blocking thread, wrapped for diesel-async.
pub async fn connect_sqlite(target: &SqliteTarget) -> Result<SqliteConn> {
    let target = target.clone();
    let conn = tokio::task::spawn_blocking(move || establish_sync(&target))
        .await
        .map_err(|e| Error::Unavailable(format!("opening SQLite: {e}")))??;
    Ok(SyncConnectionWrapper::new(conn))
}

/// The data layer's handle on a SQLite file: the pool, the configuration
/// and the context its calls run in (`with`; on SQLite the context carries
/// the deadline and the user, and row-level security does not exist). It
/// serves the portable domains (auth, settings). Cheap to clone.
#[derive(Clone)]
pub struct SqliteDb {
    shared: Arc<SqliteShared>,
    ctx: Ctx,
}

struct SqliteShared {
    pool: Pool<SqliteConn>,
    /// The pool's metrics (each connection measures its statements itself).
    meter: Arc<super::metrics::Meter>,
    target: SqliteTarget,
    config: Config,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDb")
            .field("target", &self.shared.target)
            .field("pool", &self.shared.pool.status())
            .field("ctx", &self.ctx)
            .finish()
    }
}

impl SqliteDb {
    /// A pool over the file `config.database_url` names, with `config`'s size
    /// and timeouts (one connection for `sqlite::memory:`: each connection
    /// would otherwise see its own empty database). A PostgreSQL URL is
    /// refused (that is `Db`).
    pub fn new(config: Config) -> Result<Self> {
        let Some(target) = sqlite_target(&config.database_url) else {
            return Err(Error::Unsupported(format!(
                "SqliteDb needs a SQLite URL (sqlite:PATH, sqlite::memory:); {} is a PostgreSQL \
                 URL: use database::Db (or database::AnyDb, chosen by the URL)",
                super::url::redact_url(&config.database_url)
            )));
        };
        let mut manager_config = ManagerConfig::<SqliteConn>::default();
        // diesel-async's default (`Verified`) runs a query on every
        // checkout: one more blocking-thread hop per call. `DB_POOL_RECYCLE`
        // decides, as for PostgreSQL.
        manager_config.recycling_method = match config.recycle {
            super::Recycle::Fast => RecyclingMethod::Fast,
            super::Recycle::Verified => RecyclingMethod::Verified,
        };
        let setup_target = target.clone();
        manager_config.custom_setup = Box::new(move |_url| {
            let target = setup_target.clone();
            Box::pin(async move {
                // The message alone: `conn` turns it back into `Error::Config`,
                // whose own prefix would otherwise appear twice.
                connect_sqlite(&target).await.map_err(|e| {
                    diesel::ConnectionError::BadConnection(match e {
                        Error::Config(message) => message,
                        other => other.to_string(),
                    })
                })
            })
        });
        let manager =
            AsyncDieselConnectionManager::new_with_config(target.establish_arg(), manager_config);
        let size = match target {
            SqliteTarget::Memory => 1,
            SqliteTarget::File(_) => config.pool_size,
        };
        let pool = Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout + Duration::from_secs(1)))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the SQLite pool: {e}")))?;
        Ok(Self {
            shared: Arc::new(SqliteShared {
                pool,
                meter: super::metrics::Meter::new("sqlite", "sqlite"),
                target,
                config,
            }),
            ctx: Ctx::default(),
        })
    }

    /// `Config::from_env` then `SqliteDb::new`.
    pub fn from_env() -> Result<Self> {
        Self::new(Config::from_env()?)
    }

    /// The same pool, with every call made in `ctx` (its deadline).
    pub fn with(&self, ctx: Ctx) -> SqliteDb {
        SqliteDb {
            shared: self.shared.clone(),
            ctx,
        }
    }

    /// The context this handle's calls run in.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The configuration this handle was built with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The file (or `sqlite::memory:`) this handle opens.
    pub fn target(&self) -> &SqliteTarget {
        &self.shared.target
    }

    /// The deadline of a call starting now.
    fn deadline(&self) -> std::time::Instant {
        let own = std::time::Instant::now() + self.shared.config.query_timeout;
        self.ctx.deadline_at().map_or(own, |d| d.min(own))
    }

    /// Checks a connection out of the pool, within the call's deadline.
    pub async fn conn(&self) -> Result<SqlitePooledConn> {
        use deadpool::managed::{PoolError as P, TimeoutType};
        let pool = &self.shared.pool;
        let started = std::time::Instant::now();
        // A timer polls its work first: a call that starts after its
        // deadline would otherwise still run when a connection is free.
        if self.ctx.deadline_at().is_some_and(|d| d <= started) {
            return Err(super::call::deadline_passed("it began").into());
        }
        let got = tokio::time::timeout_at(self.deadline().into(), pool.get()).await;
        let timed_out = matches!(&got, Ok(Err(P::Timeout(_))) | Err(_));
        let meter = &self.shared.meter;
        meter.waited(started.elapsed(), timed_out);
        meter.pool_status(pool.status());
        let Ok(got) = got else {
            return Err(Error::Unavailable(
                "no SQLite connection before the call's deadline; nothing was sent".into(),
            ));
        };
        got.map_err(|e| match e {
            P::Timeout(TimeoutType::Wait) => Error::Unavailable(format!(
                "no free SQLite connection: all {} of the pool are in use (DB_POOL_SIZE)",
                pool.status().max_size
            )),
            P::Closed => Error::Unavailable("the pool is closed".into()),
            // A file that cannot be opened (no such folder, no permission)
            // will not open on a retry either.
            P::Backend(diesel_async::pooled_connection::PoolError::ConnectionError(
                diesel::ConnectionError::BadConnection(message),
            )) => Error::Config(message),
            other => Error::Unavailable(format!("SQLite connection: {other}")),
        })
    }

    /// Runs `f` in one transaction, within the call's deadline: committed
    /// when `f` returns `Ok`, rolled back otherwise. When the deadline passes
    /// the connection is closed (the statement running on its blocking
    /// thread finishes on its own; `busy_timeout` bounds its lock waits).
    pub async fn transaction<T>(
        &self,
        f: impl AsyncFnOnce(&mut SqliteConn) -> Result<T>,
    ) -> Result<T> {
        self.run(async |conn| super::any::in_transaction(conn, f).await)
            .await
    }

    /// Runs `f` on a connection of this handle, within the call's deadline.
    pub async fn run<T>(&self, f: impl AsyncFnOnce(&mut SqliteConn) -> Result<T>) -> Result<T> {
        let deadline = self.deadline();
        let mut conn = self.conn().await?;
        let outcome = tokio::time::timeout_at(deadline.into(), f(&mut *conn)).await;
        match outcome {
            Ok(result) => name_errors(&mut conn, result).await,
            Err(_) => {
                // Its transaction may still be open on the blocking thread:
                // never hand it out again.
                drop(Object::take(conn));
                Err(Error::Timeout {
                    kind: crate::TimeoutKind::Client,
                    message: "no answer within the call's deadline; the SQLite connection was \
                              closed (a transaction it had open is rolled back)"
                        .into(),
                })
            }
        }
    }

    /// Checks that the file answers, and measures how fast.
    pub async fn health(&self) -> Result<super::Health> {
        use diesel::IntoSql as _;
        use diesel_async::RunQueryDsl;
        let start = std::time::Instant::now();
        let mut conn = self.conn().await?;
        diesel::select(1.into_sql::<diesel::sql_types::Integer>())
            .execute(&mut conn)
            .await?;
        let latency = start.elapsed();
        drop(conn);
        Ok(super::Health {
            latency,
            pool: self.pool_status(),
        })
    }

    /// The pool's numbers now.
    pub fn pool_status(&self) -> super::PoolStatus {
        self.shared.pool.status().into()
    }

    /// Closes every idle connection and refuses new checkouts.
    pub fn close(&self) {
        self.shared.pool.close();
    }
}

/// The crate's typed error for a statement that failed on a SQLite
/// connection, for code that runs its own SQL on any table without the
/// connection at hand (`db studio`'s read-only reader): `Error::from`'s
/// reading of SQLite's messages (`crate::error`), and a busy file as
/// `Unavailable`. A UNIQUE rule stays named by its columns (`users.email`);
/// `named` resolves it to the index's name.
pub fn error(err: diesel::result::Error) -> Error {
    busy_as_unavailable(err.into())
}

/// `err` with the name PostgreSQL reports for the same rule, read from the
/// catalog of the file behind `conn` where SQLite's message gives only
/// columns: a UNIQUE rule by columns becomes its unique index's name (what
/// `migrations_sqlite/` names like PostgreSQL's constraint), or
/// `<table>_pkey` for a primary key. An inline `UNIQUE (...)` has no name of
/// its own in SQLite (`sqlite_autoindex_*`): it stays named by its columns.
pub(crate) async fn named(conn: &mut SqliteConn, err: Error) -> Error {
    match err {
        Error::Conflict {
            constraint,
            message,
        } if message.starts_with(crate::error::UNIQUE_FAILED) && constraint.contains('.') => {
            let constraint = unique_rule(conn, &constraint).await.unwrap_or(constraint);
            Error::Conflict {
                constraint,
                message,
            }
        }
        other => busy_as_unavailable(other),
    }
}

/// `result` with its error `named`.
pub(crate) async fn name_errors<T>(conn: &mut SqliteConn, result: Result<T>) -> Result<T> {
    match result {
        Ok(value) => Ok(value),
        Err(err) => Err(named(conn, err).await),
    }
}

/// A busy file (another connection held the write lock past the busy
/// timeout) is an outage to retry, not a bug.
fn busy_as_unavailable(err: Error) -> Error {
    match err {
        Error::Database(diesel::result::Error::DatabaseError(_, ref info))
            if info.message().contains("database is locked") =>
        {
            Error::Unavailable(format!(
                "{} (another connection held the write lock for longer than the busy \
                 timeout, {} ms)",
                info.message(),
                BUSY_TIMEOUT.as_millis()
            ))
        }
        other => other,
    }
}

/// The name of the unique rule on `columns` (`accounts.user_id,
/// accounts.provider`, SQLite's form) from the file's catalog; `None` when
/// the catalog cannot be read or names no such rule.
async fn unique_rule(conn: &mut SqliteConn, columns: &str) -> Option<String> {
    use diesel::sql_types::{Integer, Nullable, Text};
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct IndexColumn {
        #[diesel(sql_type = Text)]
        index: String,
        #[diesel(sql_type = Text)]
        origin: String,
        #[diesel(sql_type = Nullable<Text>)]
        column: Option<String>,
    }
    #[derive(diesel::QueryableByName)]
    struct KeyColumn {
        #[diesel(sql_type = Text)]
        column: String,
        #[diesel(sql_type = Integer)]
        pk: i32,
    }

    let mut table = None;
    let mut wanted = Vec::new();
    for part in columns.split(", ") {
        let (t, c) = part.split_once('.')?;
        if *table.get_or_insert(t) != t {
            return None;
        }
        wanted.push(c);
    }
    let table = table?;
    let rows: Vec<IndexColumn> = diesel::sql_query(
        "SELECT il.name AS \"index\", il.origin AS origin, ii.name AS \"column\" \
         FROM pragma_index_list(?) AS il, pragma_index_info(il.name) AS ii \
         WHERE il.\"unique\" ORDER BY il.name, ii.seqno",
    )
    .bind::<Text, _>(table)
    .load(conn)
    .await
    .ok()?;
    let mut start = 0;
    while start < rows.len() {
        let index = &rows[start].index;
        let end = start
            + rows[start..]
                .iter()
                .take_while(|r| &r.index == index)
                .count();
        let same = rows[start..end]
            .iter()
            .map(|r| r.column.as_deref())
            .eq(wanted.iter().map(|c| Some(*c)));
        if same {
            return match rows[start].origin.as_str() {
                "pk" => Some(format!("{table}_pkey")),
                "c" => Some(index.clone()),
                _ => None,
            };
        }
        start = end;
    }
    // An INTEGER PRIMARY KEY is the rowid: it has no index.
    let mut key: Vec<KeyColumn> =
        diesel::sql_query("SELECT name AS \"column\", pk FROM pragma_table_info(?) WHERE pk > 0")
            .bind::<Text, _>(table)
            .load(conn)
            .await
            .ok()?;
    key.sort_by_key(|k| k.pk);
    key.iter()
        .map(|k| k.column.as_str())
        .eq(wanted.iter().copied())
        .then(|| format!("{table}_pkey"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_url_form() {
        assert_eq!(
            sqlite_target("sqlite:./local.db"),
            Some(SqliteTarget::File("./local.db".into()))
        );
        assert_eq!(
            sqlite_target("sqlite:///tmp/x.db"),
            Some(SqliteTarget::File("/tmp/x.db".into()))
        );
        assert_eq!(
            sqlite_target("sqlite://data/x.db?mode=rwc"),
            Some(SqliteTarget::File("data/x.db".into()))
        );
        assert_eq!(sqlite_target("sqlite::memory:"), Some(SqliteTarget::Memory));
        assert_eq!(sqlite_target("postgres://h/db"), None);
    }
}
