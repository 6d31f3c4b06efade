//! The migration engine.
//!
//! It reads and writes the same `__diesel_schema_migrations` table as
//! `diesel migration run`, so the two can be used on one database in any
//! order, and adds what Diesel lacks:
//!
//! - a PostgreSQL advisory lock around every run, so any number of replicas
//!   can call `migrate()` at start-up: one applies, the others wait and then
//!   find nothing pending;
//! - a SHA-256 of each applied `up.sql`, kept in `__database_migration_checksums`
//!   (its rows cascade away when Diesel reverts a version); a run refuses,
//!   naming the version, when an applied migration was edited or deleted;
//! - the applied `up.sql`/`down.sql` text in `__database_migration_scripts`,
//!   so `push` can revert an edited migration with the down that matches it;
//! - per-statement execution of `run_in_transaction = false` migrations, so
//!   `CREATE INDEX CONCURRENTLY` works even beside other statements;
//! - a one-statement fast path when nothing is pending, so an up-to-date
//!   service pays a single query at start-up.
//!
//! The lock is session-level: it belongs to one connection. Every function
//! here that takes it releases it on the same connection, on success and on
//! error; a future dropped half-way leaves it held until that connection
//! closes, which is why `Db::migrate` runs the slow path on a dedicated
//! connection rather than a pooled one.

mod push;
mod scripts;
mod source;
mod split;

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

pub use push::{PushStep, push};
pub use scripts::AppliedScripts;
pub use source::{EmbeddedFiles, Migration, MigrationSet};
pub use split::split_statements;

/// The same migrations embedded for Diesel's own harness
/// (`diesel_migrations::MigrationHarness`, `diesel_async::AsyncMigrationHarness`),
/// for callers who prefer it. The engine in this module uses `MigrationSet`.
pub const DIESEL_MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations");

/// Advisory lock key of the migration run ("dbmigrat" in ASCII). Advisory
/// locks are per database, so one key serves every database on a server.
pub const LOCK_KEY: i64 = 0x6462_6d69_6772_6174;

mod tables {
    diesel::table! {
        __diesel_schema_migrations (version) {
            version -> VarChar,
            run_on -> Timestamp,
        }
    }

    diesel::table! {
        __database_migration_checksums (version) {
            version -> VarChar,
            checksum -> Text,
            recorded_at -> Timestamptz,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(
        __diesel_schema_migrations,
        __database_migration_checksums
    );
}
use tables::{__database_migration_checksums as checksums, __diesel_schema_migrations as applied};

/// Diesel's table, created exactly as Diesel creates it, and ours beside it.
const SETUP_SQL: &str = "\
CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
       version VARCHAR(50) PRIMARY KEY NOT NULL,
       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS __database_migration_checksums (
    version     varchar(50) PRIMARY KEY
        REFERENCES __diesel_schema_migrations (version) ON DELETE CASCADE,
    checksum    text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS __database_migration_scripts (
    version  varchar(50) PRIMARY KEY
        REFERENCES __diesel_schema_migrations (version) ON DELETE CASCADE,
    up_sql   text NOT NULL,
    down_sql text
);";

/// What can go wrong in the migration engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// The database and the local migrations disagree about history.
    #[error("{}", describe_problems(.problems))]
    Inconsistent {
        /// Every modified or missing version.
        problems: Vec<Problem>,
    },
    /// A migration's SQL failed; its transaction (if any) was rolled back.
    #[error("migration {name} failed{}: {source}{}",
        .statement.map(|n| format!(" at statement {n}")).unwrap_or_default(),
        if *.partially_applied { " (it runs outside a transaction: the statements before this one stay applied; fix the database by hand, then re-run)" } else { "" })]
    Failed {
        /// The version that failed.
        version: String,
        /// Its folder name.
        name: String,
        /// For non-transactional migrations, the 1-based statement that failed.
        statement: Option<usize>,
        /// Whether earlier statements of a non-transactional migration stay applied.
        partially_applied: bool,
        /// The database's error.
        #[source]
        source: DieselError,
    },
    /// A version to revert has no `down.sql`.
    #[error("migration {name} has no down.sql and cannot be reverted")]
    Irreversible {
        /// The version.
        version: String,
        /// Its folder name.
        name: String,
    },
    /// `push` would revert a migration whose applied `down.sql` was not kept
    /// (applied before the engine stored scripts) and whose file changed.
    #[error(
        "migration {name} changed after it was applied, and the down.sql applied with it was not kept \
             (it was applied before the engine stored scripts): revert it by hand, or start over with `db drop` and `db setup`"
    )]
    NoStoredScripts {
        /// The version.
        version: String,
        /// Its folder name (the version when the folder is gone).
        name: String,
    },
    /// A version named by the caller does not exist locally.
    #[error("no local migration has version {0}")]
    UnknownVersion(String),
    /// The migrations folder could not be read or is malformed.
    #[error("cannot read migration {path}: {message}")]
    Source {
        /// The file or folder.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// Could not reach the database.
    #[error("cannot connect to run migrations: {0}")]
    Connection(String),
    /// The bookkeeping queries failed.
    #[error("database error while migrating: {0}")]
    Database(#[from] DieselError),
}

/// A disagreement between the database's history and the local migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// An applied migration's `up.sql` changed after it was applied.
    Modified {
        /// The version.
        version: String,
        /// Its folder name.
        name: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of the local file now.
        local: String,
    },
    /// A version is applied in the database but has no local migration.
    Missing {
        /// The version.
        version: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Modified {
                version,
                name,
                recorded,
                local,
            } => write!(
                f,
                "migration {version} ({name}) was modified after it was applied \
                 (checksum {}… recorded, up.sql now {}…); applied migrations must not \
                 change: restore the file and put the change in a new migration",
                &recorded[..recorded.len().min(12)],
                &local[..local.len().min(12)],
            ),
            Problem::Missing { version } => write!(
                f,
                "migration {version} is applied in the database but missing from the \
                 local migrations (deleted or renamed?)"
            ),
        }
    }
}

fn describe_problems(problems: &[Problem]) -> String {
    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
    format!("refusing to migrate: {}", list.join("; "))
}

/// The state of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Applied, and the local `up.sql` matches (or was never checksummed yet).
    Applied,
    /// Local, not applied.
    Pending,
    /// Applied, but the local `up.sql` differs from what was applied.
    Modified,
    /// Applied, but absent locally.
    Missing,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Applied => "applied",
            State::Pending => "pending",
            State::Modified => "modified",
            State::Missing => "missing",
        })
    }
}

/// One line of `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionStatus {
    /// The version (`20261121100000`).
    pub version: String,
    /// The folder name, when the migration exists locally.
    pub name: Option<String>,
    /// Applied, pending, modified or missing.
    pub state: State,
    /// When it was applied (UTC), if it was.
    pub applied_at: Option<DateTime<Utc>>,
    /// Whether a checksum is recorded (versions applied by `diesel` get one
    /// on the next `migrate`).
    pub checksum_recorded: bool,
}

/// The status of every version, local or applied, in version order.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// One entry per version.
    pub versions: Vec<VersionStatus>,
}

impl Status {
    /// Versions in the given state.
    pub fn count(&self, state: State) -> usize {
        self.versions.iter().filter(|v| v.state == state).count()
    }

    /// True when everything local is applied and nothing is modified or missing.
    pub fn is_up_to_date(&self) -> bool {
        self.versions.iter().all(|v| v.state == State::Applied)
    }
}

/// What a `run` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Folder names of the migrations applied, in order.
    pub applied: Vec<String>,
    /// Versions whose checksum was recorded for the first time (applied by `diesel`).
    pub checksums_recorded: Vec<String>,
}

/// Rows of `__diesel_schema_migrations` with their checksums.
struct AppliedRow {
    version: String,
    run_on: NaiveDateTime,
    checksum: Option<String>,
}

async fn read_applied(conn: &mut AsyncPgConnection) -> Result<Vec<AppliedRow>, DieselError> {
    let rows: Vec<(String, NaiveDateTime, Option<String>)> = applied::table
        .left_join(checksums::table.on(checksums::version.eq(applied::version)))
        .select((
            applied::version,
            applied::run_on,
            checksums::checksum.nullable(),
        ))
        .order(applied::version)
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(version, run_on, checksum)| AppliedRow {
            version,
            run_on,
            checksum,
        })
        .collect())
}

/// Whether the bookkeeping tables exist (a fresh database has none).
async fn tables_exist(conn: &mut AsyncPgConnection) -> Result<bool, DieselError> {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
        "to_regclass('__diesel_schema_migrations') IS NOT NULL \
         AND to_regclass('__database_migration_checksums') IS NOT NULL",
    ))
    .get_result(conn)
    .await
}

fn compute_status(set: &MigrationSet, rows: &[AppliedRow]) -> Status {
    let mut versions = Vec::with_capacity(set.len().max(rows.len()));
    for m in set.iter() {
        let row = rows.iter().find(|r| r.version == m.version);
        let state = match row {
            None => State::Pending,
            Some(AppliedRow {
                checksum: Some(c), ..
            }) if *c != m.checksum => State::Modified,
            Some(_) => State::Applied,
        };
        versions.push(VersionStatus {
            version: m.version.clone(),
            name: Some(m.name.clone()),
            state,
            applied_at: row.map(|r| r.run_on.and_utc()),
            checksum_recorded: row.is_some_and(|r| r.checksum.is_some()),
        });
    }
    for r in rows.iter().filter(|r| set.get(&r.version).is_none()) {
        versions.push(VersionStatus {
            version: r.version.clone(),
            name: None,
            state: State::Missing,
            applied_at: Some(r.run_on.and_utc()),
            checksum_recorded: r.checksum.is_some(),
        });
    }
    versions.sort_by(|a, b| a.version.cmp(&b.version));
    Status { versions }
}

fn problems_of(set: &MigrationSet, rows: &[AppliedRow]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for r in rows {
        match set.get(&r.version) {
            None => problems.push(Problem::Missing {
                version: r.version.clone(),
            }),
            Some(m) => {
                if let Some(recorded) = &r.checksum
                    && *recorded != m.checksum
                {
                    problems.push(Problem::Modified {
                        version: m.version.clone(),
                        name: m.name.clone(),
                        recorded: recorded.clone(),
                        local: m.checksum.clone(),
                    });
                }
            }
        }
    }
    problems
}

/// The status of every version. Read-only; takes no lock.
pub async fn status(
    conn: &mut AsyncPgConnection,
    set: &MigrationSet,
) -> Result<Status, MigrationError> {
    let rows = if tables_exist(conn).await? {
        read_applied(conn).await?
    } else {
        Vec::new()
    };
    Ok(compute_status(set, &rows))
}

/// Checks without locking or writing whether `run` would have anything to do.
///
/// `Ok(true)`: every local migration is applied with its checksum recorded.
/// `Ok(false)`: something is pending, unrecorded, or the tables don't exist
/// yet. `Err(Inconsistent)`: an applied migration was modified or is missing.
/// This is a single statement, so an up-to-date service pays one query.
pub async fn is_up_to_date(
    conn: &mut AsyncPgConnection,
    set: &MigrationSet,
) -> Result<bool, MigrationError> {
    // A fresh database has no tables; the query then fails and the caller
    // takes the locked path, which creates them. Any other failure (a dead
    // connection) will surface again there with its real cause.
    let Ok(rows) = read_applied(conn).await else {
        return Ok(false);
    };
    let problems = problems_of(set, &rows);
    if !problems.is_empty() {
        return Err(MigrationError::Inconsistent { problems });
    }
    let all_recorded = rows.iter().all(|r| r.checksum.is_some());
    Ok(all_recorded && rows.len() == set.len())
}

/// Applies every pending migration, in version order, under the lock.
pub async fn run(
    conn: &mut AsyncPgConnection,
    set: &MigrationSet,
) -> Result<Report, MigrationError> {
    run_to(conn, set, None).await
}

/// Applies pending migrations up to and including `target` (all when `None`).
pub async fn run_to(
    conn: &mut AsyncPgConnection,
    set: &MigrationSet,
    target: Option<&str>,
) -> Result<Report, MigrationError> {
    let target_version = match target {
        Some(t) => Some(
            set.get(t)
                .ok_or_else(|| MigrationError::UnknownVersion(t.to_owned()))?
                .version
                .clone(),
        ),
        None => None,
    };
    with_lock(conn, async |conn| {
        conn.batch_execute(SETUP_SQL).await?;
        let rows = read_applied(conn).await?;
        let problems = problems_of(set, &rows);
        if !problems.is_empty() {
            return Err(MigrationError::Inconsistent { problems });
        }

        let mut report = Report::default();
        // Versions applied by `diesel migration run` have no checksum yet:
        // record the local file's, which is what diesel ran.
        for r in rows.iter().filter(|r| r.checksum.is_none()) {
            let m = set
                .get(&r.version)
                .expect("problems_of found no missing version");
            record_checksum(conn, m).await?;
            report.checksums_recorded.push(m.version.clone());
        }

        let pending = set.iter().filter(|m| {
            !rows.iter().any(|r| r.version == m.version)
                && target_version.as_ref().is_none_or(|t| m.version <= *t)
        });
        for m in pending {
            apply(conn, m).await?;
            tracing::info!(migration = %m.name, "applied migration");
            report.applied.push(m.name.clone());
        }
        Ok(report)
    })
    .await
}

/// Reverts the `steps` most recently applied migrations (newest first).
/// Returns the folder names reverted.
pub async fn rollback(
    conn: &mut AsyncPgConnection,
    set: &MigrationSet,
    steps: usize,
) -> Result<Vec<String>, MigrationError> {
    with_lock(conn, async |conn| {
        let reverted = revert_latest(conn, set, steps).await?;
        Ok(reverted.into_iter().map(|m| m.name.clone()).collect())
    })
    .await
}

/// Reverts the `steps` latest migrations and applies them again, under one lock.
/// Returns the folder names redone, oldest first.
pub async fn redo(
    conn: &mut AsyncPgConnection,
    set: &MigrationSet,
    steps: usize,
) -> Result<Vec<String>, MigrationError> {
    with_lock(conn, async |conn| {
        let reverted = revert_latest(conn, set, steps).await?;
        let mut redone = Vec::new();
        for m in reverted.into_iter().rev() {
            apply(conn, m).await?;
            redone.push(m.name.clone());
        }
        Ok(redone)
    })
    .await
}

async fn revert_latest<'s>(
    conn: &mut AsyncPgConnection,
    set: &'s MigrationSet,
    steps: usize,
) -> Result<Vec<&'s Migration>, MigrationError> {
    if !tables_exist(conn).await? {
        return Ok(Vec::new());
    }
    let rows = read_applied(conn).await?;
    // Check every version first, so that nothing is reverted when one of
    // them can't be.
    let mut to_revert = Vec::new();
    for r in rows.iter().rev().take(steps) {
        let m = set
            .get(&r.version)
            .ok_or_else(|| MigrationError::Inconsistent {
                problems: vec![Problem::Missing {
                    version: r.version.clone(),
                }],
            })?;
        if m.down_sql
            .as_deref()
            .is_none_or(|d| split_statements(d).is_empty())
        {
            return Err(MigrationError::Irreversible {
                version: m.version.clone(),
                name: m.name.clone(),
            });
        }
        to_revert.push(m);
    }
    for m in &to_revert {
        revert(conn, m).await?;
        tracing::info!(migration = %m.name, "reverted migration");
    }
    Ok(to_revert)
}

/// Marks migrations up to `target` as applied without running them, recording
/// their checksums (adopting a database whose schema already exists).
pub async fn baseline(
    conn: &mut AsyncPgConnection,
    set: &MigrationSet,
    target: &str,
) -> Result<Vec<String>, MigrationError> {
    let target = set
        .get(target)
        .ok_or_else(|| MigrationError::UnknownVersion(target.to_owned()))?
        .version
        .clone();
    with_lock(conn, async |conn| {
        conn.batch_execute(SETUP_SQL).await?;
        let rows = read_applied(conn).await?;
        let mut marked = Vec::new();
        for m in set.iter().filter(|m| m.version <= target) {
            if rows.iter().any(|r| r.version == m.version) {
                continue;
            }
            conn.transaction::<_, DieselError, _>(async |conn| {
                insert_version(conn, m).await?;
                record_checksum(conn, m).await
            })
            .await?;
            marked.push(m.name.clone());
        }
        Ok(marked)
    })
    .await
}

async fn insert_version(conn: &mut AsyncPgConnection, m: &Migration) -> Result<(), DieselError> {
    diesel::insert_into(applied::table)
        .values(applied::version.eq(&m.version))
        .execute(conn)
        .await
        .map(drop)
}

async fn record_checksum(conn: &mut AsyncPgConnection, m: &Migration) -> Result<(), DieselError> {
    // Wherever a checksum is recorded, the scripts it sums are kept too (for `db push`).
    scripts::record(conn, m).await?;
    diesel::insert_into(checksums::table)
        .values((
            checksums::version.eq(&m.version),
            checksums::checksum.eq(&m.checksum),
        ))
        .on_conflict(checksums::version)
        .do_update()
        .set((
            checksums::checksum.eq(&m.checksum),
            checksums::recorded_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
        .map(drop)
}

fn failed(m: &Migration, statement: Option<usize>, source: DieselError) -> MigrationError {
    MigrationError::Failed {
        version: m.version.clone(),
        name: m.name.clone(),
        statement,
        partially_applied: statement.is_some_and(|n| n > 1),
        source,
    }
}

async fn apply(conn: &mut AsyncPgConnection, m: &Migration) -> Result<(), MigrationError> {
    if m.run_in_transaction {
        conn.transaction::<_, MigrationError, _>(async |conn| {
            conn.batch_execute(&m.up_sql)
                .await
                .map_err(|e| failed(m, None, e))?;
            insert_version(conn, m).await?;
            record_checksum(conn, m).await?;
            Ok(())
        })
        .await
    } else {
        // One statement at a time: a multi-statement string would be an
        // implicit transaction, where CONCURRENTLY is refused.
        for (i, statement) in split_statements(&m.up_sql).into_iter().enumerate() {
            conn.batch_execute(statement)
                .await
                .map_err(|e| failed(m, Some(i + 1), e))?;
        }
        conn.transaction::<_, DieselError, _>(async |conn| {
            insert_version(conn, m).await?;
            record_checksum(conn, m).await
        })
        .await?;
        Ok(())
    }
}

async fn revert(conn: &mut AsyncPgConnection, m: &Migration) -> Result<(), MigrationError> {
    let down = m.down_sql.as_deref().unwrap_or_default();
    let delete = async |conn: &mut AsyncPgConnection| {
        // The checksum row goes with it (ON DELETE CASCADE).
        diesel::delete(applied::table.find(&m.version))
            .execute(conn)
            .await
            .map(drop)
    };
    if m.run_in_transaction {
        conn.transaction::<_, MigrationError, _>(async |conn| {
            conn.batch_execute(down)
                .await
                .map_err(|e| failed(m, None, e))?;
            delete(conn).await?;
            Ok(())
        })
        .await
    } else {
        for (i, statement) in split_statements(down).into_iter().enumerate() {
            conn.batch_execute(statement)
                .await
                .map_err(|e| failed(m, Some(i + 1), e))?;
        }
        delete(conn).await?;
        Ok(())
    }
}

/// Runs `f` while holding the migration lock on this connection, and
/// releases the lock on the same connection whatever `f` returned.
async fn with_lock<R>(
    conn: &mut AsyncPgConnection,
    f: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<R, MigrationError>,
) -> Result<R, MigrationError> {
    use diesel::sql_types::BigInt;
    diesel::define_sql_function!(fn pg_try_advisory_lock(key: BigInt) -> Bool);
    diesel::define_sql_function!(fn pg_advisory_unlock(key: BigInt) -> Bool);

    let got_it: bool = diesel::select(pg_try_advisory_lock(LOCK_KEY))
        .get_result(conn)
        .await?;
    if !got_it {
        tracing::info!("another process is migrating this database; waiting for its lock");
        // pg_advisory_lock returns void, which Diesel can't select into a type.
        diesel::sql_query("SELECT pg_advisory_lock($1)")
            .bind::<BigInt, _>(LOCK_KEY)
            .execute(conn)
            .await?;
    }
    let result = f(conn).await;
    let unlocked = diesel::select(pg_advisory_unlock(LOCK_KEY))
        .get_result::<bool>(conn)
        .await;
    let value = result?;
    unlocked?;
    Ok(value)
}
