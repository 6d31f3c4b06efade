//! The engine on SQLite (`migrations_sqlite/`): the same `MigrationSet`,
//! checksums, status and refusals as on PostgreSQL, and the same history
//! tables (`__diesel_schema_migrations`, left as Diesel makes it, and
//! `__database_migration_checksums`), so `diesel migration run --config-file
//! diesel-sqlite.toml` and `db migrate` can be used on one file in any order.
//!
//! What differs: the lock is the file's own. Every run, rollback and redo is
//! one `BEGIN EXCLUSIVE` transaction: a second process waits for the first
//! (busy timeout), then reads the history the first one left, and a failure
//! leaves the file as it was, earlier migrations of the same run included.
//! SQLite cannot run some statements in a transaction (`VACUUM`); migrations
//! here never need them, and `run_in_transaction = false` is refused.

use std::sync::Arc;

use diesel::SqliteConnection;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::error::{Failure, Script};
use super::history::AppliedRow;
use super::source::{EmbeddedFiles, Migration};
use super::{MigrationError, MigrationSet, Report, Status, compute_status, plan_run, problems_of};
use crate::db::sqlite::SqliteConn;

static EMBEDDED_SQLITE_FILES: &[EmbeddedFiles] =
    include!(concat!(env!("OUT_DIR"), "/embedded_migrations_sqlite.rs"));

/// The migrations compiled into this binary from `migrations_sqlite/`.
pub fn embedded() -> &'static MigrationSet {
    static SET: std::sync::OnceLock<MigrationSet> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        MigrationSet::from_embedded(EMBEDDED_SQLITE_FILES)
            .expect("embedded SQLite migrations are valid: build.rs embedded them")
    })
}

const SETUP_SQL: &str = "\
CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
       version VARCHAR(50) PRIMARY KEY NOT NULL,
       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS __database_migration_checksums (
    version             VARCHAR(50) PRIMARY KEY
        REFERENCES __diesel_schema_migrations (version) ON DELETE CASCADE,
    checksum            TEXT NOT NULL,
    checksum_normalized TEXT,
    name                TEXT,
    recorded_at         TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS __database_migration_scripts (
    version  VARCHAR(50) PRIMARY KEY
        REFERENCES __diesel_schema_migrations (version) ON DELETE CASCADE,
    up_sql   TEXT NOT NULL,
    down_sql TEXT
);
-- What a revert by another tool left behind: `diesel migration revert`
-- deletes the version row with foreign keys off, so nothing cascades.
DELETE FROM __database_migration_checksums
    WHERE version NOT IN (SELECT version FROM __diesel_schema_migrations);
DELETE FROM __database_migration_scripts
    WHERE version NOT IN (SELECT version FROM __diesel_schema_migrations);";

const APPLIED_WITH_CHECKSUMS: &str = "\
SELECT m.version, m.run_on, c.checksum, c.checksum_normalized, c.name
FROM __diesel_schema_migrations m
LEFT JOIN __database_migration_checksums c ON c.version = m.version
ORDER BY m.version";

const APPLIED_ONLY: &str = "\
SELECT version, run_on, NULL AS checksum, NULL AS checksum_normalized, NULL AS name
FROM __diesel_schema_migrations ORDER BY version";

fn has_table(conn: &mut SqliteConnection, name: &str) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let found: N = diesel::sql_query(
        "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?",
    )
    .bind::<diesel::sql_types::Text, _>(name)
    .get_result(conn)?;
    Ok(found.n > 0)
}

fn read(conn: &mut SqliteConnection) -> QueryResult<Vec<AppliedRow>> {
    match (
        has_table(conn, "__diesel_schema_migrations")?,
        has_table(conn, "__database_migration_checksums")?,
    ) {
        (false, _) => Ok(Vec::new()),
        (true, true) => diesel::sql_query(APPLIED_WITH_CHECKSUMS).load(conn),
        (true, false) => diesel::sql_query(APPLIED_ONLY).load(conn),
    }
}

fn record(conn: &mut SqliteConnection, m: &Migration) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO __database_migration_checksums (version, checksum, checksum_normalized, name) \
         VALUES (?, ?, ?, ?) ON CONFLICT (version) DO UPDATE SET \
         checksum_normalized = excluded.checksum_normalized, name = excluded.name",
    )
    .bind::<diesel::sql_types::Text, _>(&m.version)
    .bind::<diesel::sql_types::Text, _>(&m.checksum)
    .bind::<diesel::sql_types::Text, _>(&m.checksum_normalized)
    .bind::<diesel::sql_types::Text, _>(&m.name)
    .execute(conn)?;
    Ok(())
}

fn failed(m: &Migration, script: Script, e: diesel::result::Error) -> MigrationError {
    MigrationError::Failed(Box::new(Failure {
        version: m.version.clone(),
        name: m.name.clone(),
        script,
        location: format!("migrations_sqlite/{}/{script}", m.name),
        statement: None,
        message: e.to_string(),
        advice: Some("the whole run was rolled back: the file is as it was".into()),
    }))
}

fn apply(
    conn: &mut SqliteConnection,
    m: &Migration,
    known: &Orphans,
) -> Result<(), MigrationError> {
    if !m.run_in_transaction {
        return Err(MigrationError::Source {
            path: format!("migrations_sqlite/{}/metadata.toml", m.name),
            message: "run_in_transaction = false is not supported on SQLite (a SQLite run is one \
                      exclusive transaction)"
                .into(),
        });
    }
    conn.batch_execute(&m.up_sql)
        .map_err(|e| failed(m, Script::Up, e))?;
    broken_references(conn, m, Script::Up, known)?;
    diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES (?)")
        .bind::<diesel::sql_types::Text, _>(&m.version)
        .execute(conn)?;
    record(conn, m)?;
    diesel::sql_query(
        "INSERT INTO __database_migration_scripts (version, up_sql, down_sql) VALUES (?, ?, ?) \
         ON CONFLICT (version) DO UPDATE SET up_sql = excluded.up_sql, down_sql = excluded.down_sql",
    )
    .bind::<diesel::sql_types::Text, _>(&m.version)
    .bind::<diesel::sql_types::Text, _>(&*m.up_sql)
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(m.down_sql.as_deref())
    .execute(conn)?;
    Ok(())
}

fn revert(
    conn: &mut SqliteConnection,
    m: &Migration,
    known: &Orphans,
) -> Result<(), MigrationError> {
    let down = m
        .down_sql
        .as_deref()
        .ok_or_else(|| MigrationError::Irreversible {
            version: m.version.clone(),
            name: m.name.clone(),
        })?;
    conn.batch_execute(down)
        .map_err(|e| failed(m, Script::Down, e))?;
    broken_references(conn, m, Script::Down, known)?;
    // Explicitly: foreign keys are off while migrations run (`exclusive`),
    // so nothing cascades.
    for table in [
        "__database_migration_scripts",
        "__database_migration_checksums",
        "__diesel_schema_migrations",
    ] {
        diesel::sql_query(format!("DELETE FROM {table} WHERE version = ?"))
            .bind::<diesel::sql_types::Text, _>(&m.version)
            .execute(conn)?;
    }
    Ok(())
}

/// In one `BEGIN EXCLUSIVE` transaction (the cross-process lock), on a
/// blocking thread, with foreign keys off.
///
/// Why off: SQLite changes a table's shape by rebuilding it (create the new
/// table, copy, drop the old one, rename), and with foreign keys on, dropping
/// a parent deletes its rows first, which cascades into child tables the
/// migration never touched. `PRAGMA foreign_keys` is ignored inside a
/// transaction, so it is turned off before `BEGIN` and on again after the
/// end, whatever the outcome; after each migration's script,
/// `PRAGMA foreign_key_check` must find no row pointing at a missing parent,
/// or the whole run is rolled back (SQLite's own recipe for altering a
/// table).
async fn exclusive<T: Send + 'static>(
    conn: &mut SqliteConn,
    f: impl FnOnce(&mut SqliteConnection, &Orphans) -> Result<T, MigrationError> + Send + 'static,
) -> Result<T, MigrationError> {
    // Diesel's `spawn_blocking` wants a diesel error: carry ours through it.
    let outcome: Arc<std::sync::Mutex<Option<MigrationError>>> = Arc::default();
    let slot = outcome.clone();
    let result = conn
        .spawn_blocking(move |c| {
            c.batch_execute("PRAGMA foreign_keys = OFF")?;
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                c.exclusive_transaction(|c| {
                    // Rows already orphaned (by a tool that never turns
                    // foreign keys on) are not this run's doing.
                    orphans(c).and_then(|known| f(c, &known)).map_err(|e| {
                        *slot.lock().unwrap() = Some(e);
                        diesel::result::Error::RollbackTransaction
                    })
                })
            }));
            let run = match run {
                Ok(result) => result,
                Err(panic) => {
                    // Release the file's lock and the setting before the
                    // panic goes on; Diesel's own bookkeeping still says
                    // "in a transaction", so the pool discards the connection.
                    let _ = c.batch_execute("ROLLBACK");
                    let _ = c.batch_execute("PRAGMA foreign_keys = ON");
                    std::panic::resume_unwind(panic);
                }
            };
            let restored = c.batch_execute("PRAGMA foreign_keys = ON");
            let value = run?;
            restored?;
            Ok(value)
        })
        .await;
    match result {
        Ok(value) => Ok(value),
        Err(e) => Err(outcome.lock().unwrap().take().unwrap_or(e.into())),
    }
}

/// Rows pointing at a missing parent (`PRAGMA foreign_key_check`): child
/// table, rowid, parent table.
type Orphans = std::collections::HashSet<(String, Option<i64>, String)>;

fn orphans(conn: &mut SqliteConnection) -> Result<Orphans, MigrationError> {
    #[derive(QueryableByName)]
    struct Orphan {
        #[diesel(sql_type = diesel::sql_types::Text)]
        child: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        child_rowid: Option<i64>,
        #[diesel(sql_type = diesel::sql_types::Text)]
        parent: String,
    }
    let found: Vec<Orphan> = diesel::sql_query(
        "SELECT \"table\" AS child, rowid AS child_rowid, parent FROM pragma_foreign_key_check",
    )
    .load(conn)?;
    Ok(found
        .into_iter()
        .map(|o| (o.child, o.child_rowid, o.parent))
        .collect())
}

/// `Err` naming the first rows that point at a missing parent after
/// `script` of `m` ran with foreign keys off, and did not before the run
/// (`known`).
fn broken_references(
    conn: &mut SqliteConnection,
    m: &Migration,
    script: Script,
    known: &Orphans,
) -> Result<(), MigrationError> {
    let mut broken: Vec<_> = orphans(conn)?.difference(known).cloned().collect();
    if broken.is_empty() {
        return Ok(());
    }
    broken.sort();
    broken.truncate(5);
    let pairs: Vec<String> = broken
        .iter()
        .map(|(child, _, parent)| format!("{child} -> {parent}"))
        .collect();
    Err(MigrationError::Failed(Box::new(Failure {
        version: m.version.clone(),
        name: m.name.clone(),
        script,
        location: format!("migrations_sqlite/{}/{script}", m.name),
        statement: None,
        message: format!(
            "it left rows pointing at missing parents (child -> parent: {})",
            pairs.join(", ")
        ),
        advice: Some(
            "the whole run was rolled back: the file is as it was; a migration that rebuilds \
             a table must keep its rows' keys (or delete the children it orphans)"
                .into(),
        ),
    })))
}

/// Applies the pending migrations (up to `target` when given).
pub async fn run_to(
    conn: &mut SqliteConn,
    set: &MigrationSet,
    target: Option<&str>,
) -> Result<Report, MigrationError> {
    let target = match target {
        Some(t) => Some(set.find(t)?.version.clone()),
        None => None,
    };
    let set = set.clone();
    exclusive(conn, move |c, known| {
        c.batch_execute(SETUP_SQL)?;
        let rows = read(c)?;
        let pending = plan_run(&set, &rows, &[], target.as_ref())?;
        let mut report = Report::default();
        for r in rows.iter().filter(|r| r.checksum_normalized.is_none()) {
            let m = set
                .get(&r.version)
                .expect("problems_of found no missing version");
            record(c, m)?;
            if r.checksum.is_none() {
                report.checksums_recorded.push(m.version.clone());
            }
        }
        for m in pending {
            apply(c, m, known)?;
            tracing::info!(migration = %m.name, "applied SQLite migration");
            report.applied.push(m.name.clone());
        }
        Ok(report)
    })
    .await
}

/// The newest `steps` applied migrations, newest first, each known locally.
fn plan_revert<'s>(
    set: &'s MigrationSet,
    rows: &[AppliedRow],
    steps: usize,
) -> Result<Vec<&'s Migration>, MigrationError> {
    let problems = problems_of(set, rows, &[]);
    if !problems.is_empty() {
        return Err(MigrationError::Inconsistent { problems });
    }
    if steps > rows.len() {
        return Err(MigrationError::TooManySteps {
            requested: steps,
            applied: rows.len(),
        });
    }
    let plan: Vec<&Migration> = rows
        .iter()
        .rev()
        .take(steps)
        .map(|r| {
            set.get(&r.version)
                .expect("problems_of found no missing version")
        })
        .collect();
    if let Some(m) = plan.iter().find(|m| m.down_sql.is_none()) {
        return Err(MigrationError::Irreversible {
            version: m.version.clone(),
            name: m.name.clone(),
        });
    }
    Ok(plan)
}

/// Reverts the `steps` newest migrations, all or nothing; their names.
pub async fn rollback(
    conn: &mut SqliteConn,
    set: &MigrationSet,
    steps: usize,
) -> Result<Vec<String>, MigrationError> {
    revert_steps(conn, set, steps, false).await
}

/// Reverts the `steps` newest migrations and applies them again, all or nothing.
pub async fn redo(
    conn: &mut SqliteConn,
    set: &MigrationSet,
    steps: usize,
) -> Result<Vec<String>, MigrationError> {
    revert_steps(conn, set, steps, true).await
}

/// `rollback` (the names reverted, newest first) or, with `reapply`, `redo`
/// (each applied again; the names oldest first), in one exclusive transaction.
async fn revert_steps(
    conn: &mut SqliteConn,
    set: &MigrationSet,
    steps: usize,
    reapply: bool,
) -> Result<Vec<String>, MigrationError> {
    let set = set.clone();
    exclusive(conn, move |c, known| {
        c.batch_execute(SETUP_SQL)?;
        let rows = read(c)?;
        let plan = plan_revert(&set, &rows, steps)?;
        for m in &plan {
            revert(c, m, known)?;
        }
        if !reapply {
            return Ok(plan.iter().map(|m| m.name.clone()).collect());
        }
        for m in plan.iter().rev() {
            apply(c, m, known)?;
        }
        Ok(plan.iter().rev().map(|m| m.name.clone()).collect())
    })
    .await
}

/// The status of every version. Read-only.
pub async fn status(conn: &mut SqliteConn, set: &MigrationSet) -> Result<Status, MigrationError> {
    let rows = conn.spawn_blocking(read).await?;
    Ok(compute_status(set, &rows, &[]))
}

/// Whether `run_to` would have nothing to do (one read, no lock);
/// `Err(Inconsistent)` when an applied migration was modified or is missing.
pub async fn is_up_to_date(
    conn: &mut SqliteConn,
    set: &MigrationSet,
) -> Result<bool, MigrationError> {
    let rows = conn.spawn_blocking(read).await?;
    let problems = problems_of(set, &rows, &[]);
    if !problems.is_empty() {
        return Err(MigrationError::Inconsistent { problems });
    }
    Ok(rows.iter().all(|r| r.checksum_normalized.is_some()) && rows.len() == set.len())
}

/// `push` on SQLite (`super::push` is the PostgreSQL one, with the same
/// plan): reverts, newest first, every applied migration from the oldest
/// edited or deleted one up, each with the `down.sql` stored when it was
/// applied, then applies the current files. Unlike PostgreSQL's, all of it
/// is one exclusive transaction: a failing step leaves the file as it was.
/// Returns the steps in order.
pub async fn push(
    conn: &mut SqliteConn,
    set: &MigrationSet,
) -> Result<Vec<super::PushStep>, MigrationError> {
    let set = set.clone();
    exclusive(conn, move |c, known| {
        c.batch_execute(SETUP_SQL)?;
        let rows = read(c)?;
        let stored = load_scripts(c)?;
        let plan = super::push::plan_reverts(&set, &rows, &stored)?;
        let mut steps = Vec::new();
        for (m, reason) in &plan {
            revert(c, m, known)?;
            steps.push(super::PushStep::Reverted {
                name: m.name.clone(),
                reason,
            });
        }
        for m in set.iter().filter(|m| {
            !rows.iter().any(|r| {
                r.version == m.version && !plan.iter().any(|(p, _)| p.version == r.version)
            })
        }) {
            apply(c, m, known)?;
            steps.push(super::PushStep::Applied {
                name: m.name.clone(),
            });
        }
        Ok(steps)
    })
    .await
}

/// The stored scripts of every applied version that has them.
fn load_scripts(
    conn: &mut SqliteConnection,
) -> Result<Vec<super::scripts::AppliedScripts>, MigrationError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        up_sql: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        down_sql: Option<String>,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT version, up_sql, down_sql FROM __database_migration_scripts ORDER BY version",
    )
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| super::scripts::AppliedScripts {
            version: r.version,
            up_sql: r.up_sql,
            down_sql: r.down_sql,
        })
        .collect())
}

/// The schema of the file behind `conn` as text to compare (`db diff`):
/// each table, index, view and trigger's `CREATE` statement as SQLite keeps
/// it, ordered by kind and name, without SQLite's own objects and the
/// migration bookkeeping.
pub async fn schema(conn: &mut SqliteConn) -> Result<String, MigrationError> {
    #[derive(QueryableByName)]
    struct Object {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sql: String,
    }
    let objects: Vec<Object> = conn
        .spawn_blocking(|c| {
            diesel::sql_query(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 AND tbl_name NOT LIKE '\\_\\_%' ESCAPE '\\' \
                 ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 \
                 WHEN 'view' THEN 2 ELSE 3 END, name",
            )
            .load(c)
        })
        .await?;
    Ok(objects
        .iter()
        .map(|o| format!("{};\n", o.sql.trim()))
        .collect())
}
