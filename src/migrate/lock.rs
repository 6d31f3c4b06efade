//! The migration lock: a session-level advisory lock, so any number of
//! processes can run migrations at once and exactly one applies them.
//!
//! The wait is a bounded loop rather than a blocking `pg_advisory_lock`: it
//! says every few seconds who holds the lock, and gives up after the
//! configured limit with an error that says so. The lock belongs to one
//! connection: it is released on that connection whatever the work
//! returned, and a release that finds no lock (behind a transaction-mode
//! pooler the session may not be ours) is reported, not ignored.

use std::time::{Duration, Instant};

use crate::db::Conn;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use super::{LOCK_KEY, MigrationError};

/// How long to wait for the lock, and how often to say so.
#[derive(Debug, Clone, Copy)]
pub struct LockWait {
    /// Give up after this long (`DB_MIGRATION_LOCK_TIMEOUT_SECS`).
    pub timeout: Duration,
    /// Log who holds the lock this often while waiting.
    pub report_every: Duration,
    /// Try again this often.
    pub poll: Duration,
}

impl Default for LockWait {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            report_every: Duration::from_secs(5),
            poll: Duration::from_millis(250),
        }
    }
}

#[derive(QueryableByName)]
struct Got {
    #[diesel(sql_type = Bool)]
    ok: bool,
}

#[derive(QueryableByName)]
struct Holder {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
    #[diesel(sql_type = Nullable<Text>)]
    application_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    client: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    state: Option<String>,
}

/// Who holds the migration lock on this database, in words.
async fn describe_holder(conn: &mut Conn) -> String {
    let holders: Result<Vec<Holder>, _> = diesel::sql_query(
        "SELECT a.pid, a.application_name, \
                coalesce(host(a.client_addr), 'local socket') AS client, \
                coalesce(a.xact_start, a.backend_start) AS since, a.state \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
    )
    .bind::<BigInt, _>(LOCK_KEY)
    .load(conn)
    .await;
    match holders.as_deref() {
        Ok([h, ..]) => format!(
            "held by pid {} ({}, from {}, {} since {})",
            h.pid,
            h.application_name
                .as_deref()
                .filter(|a| !a.is_empty())
                .unwrap_or("no application_name"),
            h.client.as_deref().unwrap_or("?"),
            h.state.as_deref().unwrap_or("?"),
            h.since
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "?".into())
        ),
        Ok([]) => "the holder has just released it".to_owned(),
        Err(e) => format!("the holder could not be read: {e}"),
    }
}

async fn try_lock(conn: &mut Conn) -> Result<bool, MigrationError> {
    let got: Got = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS ok")
        .bind::<BigInt, _>(LOCK_KEY)
        .get_result(conn)
        .await?;
    Ok(got.ok)
}

/// Takes the lock, waiting as `wait` says.
async fn acquire(conn: &mut Conn, wait: LockWait) -> Result<(), MigrationError> {
    if try_lock(conn).await? {
        return Ok(());
    }
    let started = Instant::now();
    let mut next_report = Duration::ZERO;
    loop {
        let waited = started.elapsed();
        if waited >= next_report {
            let holder = describe_holder(conn).await;
            tracing::warn!(
                waited_s = waited.as_secs(),
                limit_s = wait.timeout.as_secs(),
                "another process is migrating this database; waiting for the migration lock: {holder}"
            );
            next_report += wait.report_every;
        }
        if waited >= wait.timeout {
            return Err(MigrationError::LockTimeout {
                waited,
                holder: describe_holder(conn).await,
            });
        }
        tokio::time::sleep(
            wait.poll
                .min(wait.timeout.saturating_sub(waited))
                .max(Duration::from_millis(10)),
        )
        .await;
        if try_lock(conn).await? {
            return Ok(());
        }
    }
}

/// Runs `f` while holding the migration lock on this connection, and
/// releases the lock on the same connection whatever `f` returned.
pub(super) async fn with_lock<R>(
    conn: &mut Conn,
    wait: LockWait,
    f: impl AsyncFnOnce(&mut Conn) -> Result<R, MigrationError>,
) -> Result<R, MigrationError> {
    acquire(conn, wait).await?;
    let result = f(conn).await;
    let released: Result<Got, _> = diesel::sql_query("SELECT pg_advisory_unlock($1) AS ok")
        .bind::<BigInt, _>(LOCK_KEY)
        .get_result(conn)
        .await;
    match &released {
        Ok(Got { ok: true }) => {}
        Ok(Got { ok: false }) => tracing::error!(
            "the migration lock was not held by this session when releasing it: is the \
             migration URL going through a transaction-mode pooler? Migrations must reach \
             the server directly (DATABASE_MIGRATION_URL)"
        ),
        Err(e) => {
            tracing::warn!("releasing the migration lock failed ({e}); it goes with the connection")
        }
    }
    let value = result?;
    released?;
    Ok(value)
}
