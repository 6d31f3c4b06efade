//! `push`: make a development database match the migrations folder after
//! the newest applied migrations were edited. It never guesses a diff: it
//! reverts, newest first, every applied migration from the oldest edited
//! (or deleted) one up, each with the `down.sql` stored when it was applied
//! (`__database_migration_scripts`), then applies the current files. Each
//! step runs in its own transaction where the migration allows one, so a
//! down that fails leaves the steps before it done and nothing of itself.

use crate::db::Conn;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};

use super::history::{self, AppliedRow};
use super::{
    LockWait, Migration, MigrationError, MigrationSet, execute, lock, scripts, split_statements,
};

/// One step of `push`, reported as soon as it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushStep {
    /// Reverted with its stored `down.sql`.
    Reverted {
        /// Folder name (or the version, when the folder is gone).
        name: String,
        /// Why: its `up.sql` was edited, it was deleted, or a migration
        /// before it was edited.
        reason: &'static str,
    },
    /// Applied from the current files.
    Applied {
        /// Folder name.
        name: String,
    },
}

/// Reverts what changed and applies the current files, under the migration
/// lock. Checks that every revert can run before doing any; calls
/// `on_step` after each step and returns them all.
pub async fn push(
    conn: &mut Conn,
    set: &MigrationSet,
    on_step: &mut (dyn FnMut(&PushStep) + Send),
) -> Result<Vec<PushStep>, MigrationError> {
    lock::with_lock(conn, LockWait::default(), async |conn| {
        conn.batch_execute(history::SETUP_SQL).await?;
        let (rows, progress) = history::read(conn).await?;
        let stored = scripts::load(conn).await?;
        let plan = plan_reverts(set, &rows, &stored)?;

        let mut steps = Vec::new();
        for (m, reason) in &plan {
            if m.run_in_transaction {
                // execute::revert runs in its caller's transaction: one per step here.
                conn.transaction::<_, MigrationError, _>(async |conn| {
                    execute::revert(conn, m).await
                })
                .await?;
            } else {
                execute::revert(conn, m).await?;
            }
            let step = PushStep::Reverted {
                name: m.name.clone(),
                reason,
            };
            on_step(&step);
            steps.push(step);
        }
        let still_applied: Vec<&str> = rows
            .iter()
            .map(|r| r.version.as_str())
            .filter(|v| !plan.iter().any(|(m, _)| m.version == *v))
            .collect();
        for m in set
            .iter()
            .filter(|m| !still_applied.contains(&m.version.as_str()))
        {
            let partial = progress.iter().find(|p| p.version == m.version);
            execute::apply(conn, m, partial).await?;
            let step = PushStep::Applied {
                name: m.name.clone(),
            };
            on_step(&step);
            steps.push(step);
        }
        Ok(steps)
    })
    .await
}

/// The migrations to revert, newest first, each carrying the `down.sql` to
/// revert it with; an error (before anything ran) when one cannot be.
pub(super) fn plan_reverts(
    set: &MigrationSet,
    rows: &[AppliedRow],
    stored: &[scripts::AppliedScripts],
) -> Result<Vec<(Migration, &'static str)>, MigrationError> {
    let edited = |r: &AppliedRow| match set.get(&r.version) {
        None => Some("deleted from the migrations folder"),
        Some(m) => (r.matches(m) == Some(false)).then_some("up.sql edited after it was applied"),
    };
    let Some(first) = rows.iter().position(|r| edited(r).is_some()) else {
        return Ok(Vec::new());
    };
    let mut plan = Vec::new();
    for r in rows[first..].iter().rev() {
        let local = set.get(&r.version);
        let kept = stored.iter().find(|s| s.version == r.version);
        let reason = edited(r).unwrap_or("applied after an edited migration");
        let name = local.map_or_else(|| r.version.clone(), |m| m.name.clone());
        // The stored down matches what is in the database. Without one, the
        // local down will do only while the local up is what was applied.
        let down = match (kept, local) {
            (Some(s), _) => s.down_sql.clone(),
            (None, Some(m)) if edited(r).is_none() => m.down_sql.as_deref().map(str::to_owned),
            _ => {
                return Err(MigrationError::NoStoredScripts {
                    version: r.version.clone(),
                    name,
                });
            }
        };
        if down
            .as_deref()
            .is_none_or(|d| split_statements(d).is_empty())
        {
            return Err(MigrationError::Irreversible {
                version: r.version.clone(),
                name,
            });
        }
        let m = Migration {
            version: r.version.clone(),
            name,
            up_sql: kept.map_or_else(String::new, |s| s.up_sql.clone()).into(),
            down_sql: down.map(Into::into),
            run_in_transaction: local.is_none_or(|l| l.run_in_transaction),
            checksum: String::new(),
            checksum_normalized: String::new(),
        };
        plan.push((m, reason));
    }
    Ok(plan)
}
