//! The migration engine.
//!
//! It reads and writes the same `__diesel_schema_migrations` table as
//! `diesel migration run`, so the two can be used on one database in any
//! order, and adds what Diesel lacks:
//!
//! - a PostgreSQL advisory lock around every run, so any number of replicas
//!   can call `migrate()` at start-up: one applies, the others wait and then
//!   find nothing pending;
//! - a SHA-256 of each applied `up.sql` (exact, and of its normalised text so
//!   line endings and trailing blanks are not edits), kept in
//!   `__database_migration_checksums` (its rows cascade away when Diesel
//!   reverts a version); a run refuses, naming the version, when an applied
//!   migration was edited or deleted;
//! - the applied `up.sql`/`down.sql` text in `__database_migration_scripts`,
//!   so `push` can revert an edited migration with the down that matches it;
//! - per-statement execution of `run_in_transaction = false` migrations, so
//!   `CREATE INDEX CONCURRENTLY` works even beside other statements, with
//!   progress recorded so an interrupted one resumes;
//! - a migration session of its own: no statement timeout, a DDL lock
//!   timeout, a dead-client check, and a bounded, reported wait for the lock;
//! - a one-statement fast path when nothing is pending, so an up-to-date
//!   service pays a single query at start-up.
//!
//! The lock is session-level: it belongs to one connection. Every function
//! here that takes it releases it on the same connection, on success and on
//! error; a future dropped half-way leaves it held until that connection
//! closes, which is why `Db::migrate` runs the slow path on a dedicated
//! connection rather than a pooled one.
//!
//! One file, though long: the engine's public entry points and the plan they
//! share (what is pending, partial, modified or missing), which every entry
//! point must compute the same way; the steps themselves live in the
//! submodules.

// The error types live in `crate::error::migration`, so `crate::error` needs nothing of the engine.
use crate::error::migration as error;
mod execute;
mod history;
mod lock;
mod on_db;
mod push;
mod scripts;
mod source;
pub mod sqlite;

use std::fmt;

use crate::db::Conn;
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, SimpleAsyncConnection};

pub use crate::split::split_statements;
pub use error::{Failure, MigrationError, Problem, Script};
pub use lock::LockWait;
pub use push::{PushStep, push};
pub use scripts::AppliedScripts;
pub use source::{EmbeddedFiles, Migration, MigrationSet, normalize_sql};

use history::{AppliedRow, ProgressRow};

/// The same migrations embedded for Diesel's own harness
/// (`diesel_migrations::MigrationHarness`, `diesel_async::AsyncMigrationHarness`),
/// for callers who prefer it. The engine in this module uses `MigrationSet`.
pub const DIESEL_MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations");

/// Advisory lock key of the migration run ("dbmigrat" in ASCII). Advisory
/// locks are per database, so one key serves every database on a server.
pub const LOCK_KEY: i64 = 0x6462_6d69_6772_6174;

/// How a run behaves; `Default` is what `db migrate` uses without settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// The wait for another process's migration lock.
    pub lock_wait: LockWait,
}

impl RunOptions {
    /// The options `config` asks for (`DB_MIGRATION_LOCK_TIMEOUT_SECS`).
    pub fn from_config(config: &crate::Config) -> Self {
        Self {
            lock_wait: LockWait {
                timeout: config.migration_lock_timeout,
                ..LockWait::default()
            },
        }
    }
}

/// The state of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Applied, and the local `up.sql` matches (or was never checksummed yet).
    Applied,
    /// Local, not applied.
    Pending,
    /// Runs outside a transaction, started, and stopped before its last
    /// statement: the next `migrate` resumes it.
    PartiallyApplied,
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
            State::PartiallyApplied => "partial",
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
    /// Applied, pending, partially applied, modified or missing.
    pub state: State,
    /// When it was applied (UTC), if it was.
    pub applied_at: Option<DateTime<Utc>>,
    /// Whether a checksum is recorded (versions applied by `diesel` get one
    /// on the next `migrate`).
    pub checksum_recorded: bool,
    /// The folder name it was applied under, when that differs from the
    /// local folder of the same version (renamed).
    pub applied_as: Option<String>,
    /// For a partially applied migration: (statements completed, statements).
    pub progress: Option<(usize, usize)>,
}

/// The status of every version, local or applied, in version order.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// One entry per version.
    pub versions: Vec<VersionStatus>,
    /// Indexes the database holds as INVALID (left by an interrupted or
    /// failed `CREATE INDEX CONCURRENTLY`), schema-qualified.
    pub invalid_indexes: Vec<String>,
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

    /// Folder names of the migrations not yet applied (pending or partial).
    pub fn pending(&self) -> Vec<&str> {
        self.versions
            .iter()
            .filter(|v| matches!(v.state, State::Pending | State::PartiallyApplied))
            .filter_map(|v| v.name.as_deref())
            .collect()
    }

    /// The totals line of `db status`: `13 applied, 0 pending, ...`.
    pub fn summary(&self) -> String {
        format!(
            "{} applied, {} pending, {} partially applied, {} modified, {} missing",
            self.count(State::Applied),
            self.count(State::Pending),
            self.count(State::PartiallyApplied),
            self.count(State::Modified),
            self.count(State::Missing)
        )
    }
}

impl VersionStatus {
    /// When it was applied, as `db status` shows it (UTC; `-` if not).
    pub fn applied_at_text(&self) -> String {
        self.applied_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into())
    }

    /// The folder name with what `db status` says of it: a checksum still to
    /// record, a rename, a partial run and where `db migrate` resumes it.
    pub fn described_name(&self) -> String {
        let mut name = self
            .name
            .clone()
            .unwrap_or_else(|| "(not in local migrations)".into());
        if self.state == State::Applied && !self.checksum_recorded {
            name.push_str("  [checksum recorded on next `db migrate`]");
        }
        if let Some(old) = &self.applied_as {
            name.push_str(&format!("  [renamed: applied as {old}]"));
        }
        if let Some((done, total)) = self.progress {
            name.push_str(&format!(
                "  [partially applied (statement {done} of {total} done): `db migrate` resumes at statement {}]",
                done + 1
            ));
        }
        name
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

fn compute_status(set: &MigrationSet, rows: &[AppliedRow], progress: &[ProgressRow]) -> Status {
    let mut versions = Vec::with_capacity(set.len().max(rows.len()));
    for m in set.iter() {
        let row = rows.iter().find(|r| r.version == m.version);
        let partial = progress.iter().find(|p| p.version == m.version);
        let state = match (row, partial) {
            (None, Some(_)) => State::PartiallyApplied,
            (None, None) => State::Pending,
            (Some(r), _) if r.matches(m) == Some(false) => State::Modified,
            (Some(_), _) => State::Applied,
        };
        versions.push(VersionStatus {
            version: m.version.clone(),
            name: Some(m.name.clone()),
            state,
            applied_at: row.map(|r| r.run_on.and_utc()),
            checksum_recorded: row.is_some_and(|r| r.checksum.is_some()),
            applied_as: row
                .and_then(|r| r.name.clone())
                .filter(|applied| *applied != m.name),
            progress: partial.map(|p| (p.statements_done as usize, p.statements_total as usize)),
        });
    }
    for r in rows.iter().filter(|r| set.get(&r.version).is_none()) {
        versions.push(VersionStatus {
            version: r.version.clone(),
            name: r.name.clone(),
            state: State::Missing,
            applied_at: Some(r.run_on.and_utc()),
            checksum_recorded: r.checksum.is_some(),
            applied_as: None,
            progress: None,
        });
    }
    versions.sort_by(|a, b| a.version.cmp(&b.version));
    Status {
        versions,
        invalid_indexes: Vec::new(),
    }
}

/// What a run up to `target` (a version; all when `None`) applies, in
/// order: the local migrations not applied yet. Refuses a history that does
/// not match the local files, and a target already applied (a run never goes
/// back). Both backends' engines plan with it.
fn plan_run<'s>(
    set: &'s MigrationSet,
    rows: &[AppliedRow],
    progress: &[ProgressRow],
    target: Option<&String>,
) -> Result<Vec<&'s Migration>, MigrationError> {
    let problems = problems_of(set, rows, progress);
    if !problems.is_empty() {
        return Err(MigrationError::Inconsistent { problems });
    }
    if let Some(t) = target
        && rows.iter().any(|r| r.version == *t)
    {
        let newer = rows.iter().filter(|r| r.version > *t).count();
        return Err(MigrationError::AlreadyApplied(t.clone(), newer));
    }
    Ok(set
        .iter()
        .filter(|m| {
            !rows.iter().any(|r| r.version == m.version) && target.is_none_or(|t| m.version <= *t)
        })
        .collect())
}

fn problems_of(set: &MigrationSet, rows: &[AppliedRow], progress: &[ProgressRow]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for r in rows {
        match set.get(&r.version) {
            None => problems.push(Problem::Missing {
                version: r.version.clone(),
            }),
            Some(m) => {
                if r.matches(m) == Some(false) {
                    problems.push(Problem::Modified {
                        version: m.version.clone(),
                        name: m.name.clone(),
                        recorded: r
                            .checksum_normalized
                            .clone()
                            .or_else(|| r.checksum.clone())
                            .unwrap_or_default(),
                        local: if r.checksum_normalized.is_some() {
                            m.checksum_normalized.clone()
                        } else {
                            m.checksum.clone()
                        },
                    });
                }
            }
        }
    }
    for p in progress
        .iter()
        .filter(|p| !rows.iter().any(|r| r.version == p.version))
    {
        if let Some(m) = set.get(&p.version)
            && m.prefix_checksum(p.statements_done as usize) != p.done_checksum
        {
            problems.push(Problem::EditedWhilePartial {
                version: m.version.clone(),
                name: m.name.clone(),
                done: p.statements_done as usize,
            });
        }
    }
    problems
}

/// The status of every version. Read-only; takes no lock.
pub async fn status(conn: &mut Conn, set: &MigrationSet) -> Result<Status, MigrationError> {
    let (rows, progress) = history::read(conn).await?;
    let mut status = compute_status(set, &rows, &progress);
    status.invalid_indexes = history::invalid_indexes(conn).await?;
    Ok(status)
}

/// Checks without locking or writing whether `run` would have anything to do.
///
/// `Ok(true)`: every local migration is applied with its checksums recorded.
/// `Ok(false)`: something is pending, unrecorded, or the tables don't exist
/// yet. `Err(Inconsistent)`: an applied migration was modified or is missing.
/// This is a single statement, so an up-to-date service pays one query.
pub async fn is_up_to_date(conn: &mut Conn, set: &MigrationSet) -> Result<bool, MigrationError> {
    let rows = match history::read_applied_fast(conn).await {
        Ok(rows) => rows,
        Err(e) => {
            // A fresh database has no tables: expected, and the locked path
            // creates them. Anything else is worth a line before that path
            // meets it again.
            let fresh = e.to_string().contains("does not exist");
            if !fresh {
                tracing::warn!(
                    "checking whether migrations are up to date failed ({e}); taking the locked path"
                );
            }
            return Ok(false);
        }
    };
    let problems = problems_of(set, &rows, &[]);
    if !problems.is_empty() {
        return Err(MigrationError::Inconsistent { problems });
    }
    let all_recorded = rows.iter().all(|r| r.checksum_normalized.is_some());
    Ok(all_recorded && rows.len() == set.len())
}

/// Applies every pending migration, in version order, under the lock.
pub async fn run(conn: &mut Conn, set: &MigrationSet) -> Result<Report, MigrationError> {
    run_to(conn, set, None).await
}

/// Like `run`, with options (the lock wait).
pub async fn run_with(
    conn: &mut Conn,
    set: &MigrationSet,
    options: &RunOptions,
) -> Result<Report, MigrationError> {
    run_to_with(conn, set, None, options).await
}

/// Applies pending migrations up to and including `target` (all when `None`).
/// `target` is a version (`20261121100000`), the same with dashes
/// (`2026-11-21-100000`) or a folder name.
pub async fn run_to(
    conn: &mut Conn,
    set: &MigrationSet,
    target: Option<&str>,
) -> Result<Report, MigrationError> {
    run_to_with(conn, set, target, &RunOptions::default()).await
}

/// `run_to` with options.
pub async fn run_to_with(
    conn: &mut Conn,
    set: &MigrationSet,
    target: Option<&str>,
    options: &RunOptions,
) -> Result<Report, MigrationError> {
    let target_version = match target {
        Some(t) => Some(set.find(t)?.version.clone()),
        None => None,
    };
    // The run's span (kind INTERNAL): the lock, the history and a child
    // span per migration, under which its statements' spans go.
    let run_span = tracing::info_span!(
        target: crate::db::telemetry::TARGET,
        "db.migrate",
        otel.kind = "internal",
        otel.name = "migrate",
        otel.status_code = tracing::field::Empty,
        db.system.name = "postgresql",
        error.type = tracing::field::Empty,
        database.migrations.applied = tracing::field::Empty,
    );
    let result = lock::with_lock(conn, options.lock_wait, async |conn| {
        conn.batch_execute(history::SETUP_SQL).await?;
        let (rows, progress) = history::read(conn).await?;
        let pending = plan_run(set, &rows, &progress, target_version.as_ref())?;

        let mut report = Report::default();
        // Versions applied by `diesel migration run` (no checksum) or by an
        // older binary (no normalised checksum): record the local file's,
        // which is what was run (problems_of found no mismatch).
        for r in rows.iter().filter(|r| r.checksum_normalized.is_none()) {
            let m = set
                .get(&r.version)
                .expect("problems_of found no missing version");
            history::record_checksum(conn, m).await?;
            if r.checksum.is_none() {
                report.checksums_recorded.push(m.version.clone());
            }
        }

        // Progress of versions the diesel CLI applied since: done.
        history::forget_progress_of_applied(conn).await?;

        // A migration's own `SET`s (a lock timeout it chose) must not carry
        // over to the next one: the session is put back after each.
        let session = execute::SessionSettings::capture(conn).await?;
        for m in pending {
            let partial = progress.iter().find(|p| p.version == m.version);
            let span = migration_span(m);
            let applied =
                tracing::Instrument::instrument(execute::apply(conn, m, partial), span.clone())
                    .await;
            if let Err(mut e) = applied {
                crate::db::telemetry::record_failure(&span, "migration_failed");
                execute::name_lock_holders(conn, &mut e).await;
                return Err(e);
            }
            session.restore(conn).await?;
            tracing::info!(migration = %m.name, "applied migration");
            report.applied.push(m.name.clone());
        }
        Ok(report)
    });
    let result = tracing::Instrument::instrument(result, run_span.clone()).await;
    match &result {
        Ok(report) => {
            run_span.record("database.migrations.applied", report.applied.len() as u64);
        }
        Err(_) => crate::db::telemetry::record_failure(&run_span, "migration_failed"),
    }
    result
}

/// The span of one migration (kind INTERNAL), a child of the run's.
fn migration_span(m: &Migration) -> tracing::Span {
    tracing::info_span!(
        target: crate::db::telemetry::TARGET,
        "db.migration",
        otel.kind = "internal",
        otel.name = %format_args!("migration {}", m.name),
        otel.status_code = tracing::field::Empty,
        db.system.name = "postgresql",
        database.migration.version = %m.version,
        database.migration.name = %m.name,
        error.type = tracing::field::Empty,
    )
}

/// Reverts the `steps` most recently applied migrations (newest first), all
/// or nothing. Returns the folder names reverted.
pub async fn rollback(
    conn: &mut Conn,
    set: &MigrationSet,
    steps: usize,
) -> Result<Vec<String>, MigrationError> {
    rollback_with(conn, set, steps, &RunOptions::default()).await
}

/// `rollback` with options (the lock wait).
pub async fn rollback_with(
    conn: &mut Conn,
    set: &MigrationSet,
    steps: usize,
    options: &RunOptions,
) -> Result<Vec<String>, MigrationError> {
    revert_with(conn, set, steps, options, false).await
}

/// Reverts the `steps` latest migrations and applies them again, under one
/// lock; all in one transaction when every one is transactional. Returns
/// the folder names redone, oldest first.
pub async fn redo(
    conn: &mut Conn,
    set: &MigrationSet,
    steps: usize,
) -> Result<Vec<String>, MigrationError> {
    redo_with(conn, set, steps, &RunOptions::default()).await
}

/// `redo` with options (the lock wait).
pub async fn redo_with(
    conn: &mut Conn,
    set: &MigrationSet,
    steps: usize,
    options: &RunOptions,
) -> Result<Vec<String>, MigrationError> {
    revert_with(conn, set, steps, options, true).await
}

/// `rollback` (`reapply` false: the names reverted, newest first) or `redo`
/// (`reapply`: each applied again, the names oldest first), under one lock,
/// in one transaction when every migration is transactional.
async fn revert_with(
    conn: &mut Conn,
    set: &MigrationSet,
    steps: usize,
    options: &RunOptions,
    reapply: bool,
) -> Result<Vec<String>, MigrationError> {
    lock::with_lock(conn, options.lock_wait, async |conn| {
        let plan = plan_revert(conn, set, steps).await?;
        let session = execute::SessionSettings::capture(conn).await?;
        if plan.iter().all(|m| m.run_in_transaction) {
            conn.transaction::<_, MigrationError, _>(async |conn| {
                for m in &plan {
                    execute::revert(conn, m).await?;
                }
                if reapply {
                    for m in plan.iter().rev() {
                        execute::apply(conn, m, None).await?;
                    }
                }
                Ok(())
            })
            .await?;
        } else {
            // plan_revert allows a non-transactional one only alone.
            let m = plan[0];
            execute::revert(conn, m).await?;
            if reapply {
                execute::apply(conn, m, None).await.inspect_err(|_| {
                    tracing::error!(migration = %m.name, "reverted, but applying it again failed: it is now pending");
                })?;
            }
        }
        session.restore(conn).await?;
        for m in &plan {
            tracing::info!(migration = %m.name, redone = reapply, "reverted migration");
        }
        let names = plan.iter().map(|m| m.name.clone());
        Ok(if reapply {
            names.rev().collect()
        } else {
            names.collect()
        })
    })
    .await
}

/// The migrations a rollback of `steps` reverts, newest first, after every
/// check that can refuse it: so nothing is reverted when one can't be.
async fn plan_revert<'s>(
    conn: &mut Conn,
    set: &'s MigrationSet,
    steps: usize,
) -> Result<Vec<&'s Migration>, MigrationError> {
    let (rows, progress) = history::read(conn).await?;
    let unfinished: Vec<Problem> = progress
        .iter()
        .filter(|p| !rows.iter().any(|r| r.version == p.version))
        .map(|p| Problem::Unfinished {
            version: p.version.clone(),
            done: p.statements_done as usize,
        })
        .collect();
    if !unfinished.is_empty() {
        return Err(MigrationError::Inconsistent {
            problems: unfinished,
        });
    }
    if steps > rows.len() {
        return Err(MigrationError::TooManySteps {
            requested: steps,
            applied: rows.len(),
        });
    }
    let mut plan = Vec::new();
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
        plan.push(m);
    }
    if plan.len() > 1
        && let Some((i, m)) = plan.iter().enumerate().find(|(_, m)| !m.run_in_transaction)
    {
        return Err(MigrationError::MixedRollback {
            count: plan.len(),
            name: m.name.clone(),
            position: i + 1,
        });
    }
    Ok(plan)
}

/// Marks migrations up to `target` as applied without running them, recording
/// their checksums (adopting a database whose schema already exists).
pub async fn baseline(
    conn: &mut Conn,
    set: &MigrationSet,
    target: &str,
) -> Result<Vec<String>, MigrationError> {
    baseline_with(conn, set, target, &RunOptions::default()).await
}

/// `baseline` with options (the lock wait).
pub async fn baseline_with(
    conn: &mut Conn,
    set: &MigrationSet,
    target: &str,
    options: &RunOptions,
) -> Result<Vec<String>, MigrationError> {
    let target = set.find(target)?.version.clone();
    lock::with_lock(conn, options.lock_wait, async |conn| {
        conn.batch_execute(history::SETUP_SQL).await?;
        let (rows, _) = history::read(conn).await?;
        let mut marked = Vec::new();
        for m in set.iter().filter(|m| m.version <= target) {
            if rows.iter().any(|r| r.version == m.version) {
                continue;
            }
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                history::insert_version(conn, m).await
            })
            .await?;
            marked.push(m.name.clone());
        }
        Ok(marked)
    })
    .await
}
