//! What can go wrong in the migration engine, worded so that each message
//! says where (file and line) and what to do next.

use std::fmt;
use std::time::Duration;

use diesel::result::Error as DieselError;

/// Which script of a migration ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// `up.sql`.
    Up,
    /// `down.sql`.
    Down,
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Script::Up => "up.sql",
            Script::Down => "down.sql",
        })
    }
}

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
    /// A migration's SQL failed. A transactional migration was rolled back
    /// whole; for one that runs outside a transaction, the statements before
    /// the failed one stay applied and the next run resumes after them.
    #[error("{0}")]
    Failed(Box<Failure>),
    /// A version to revert has no `down.sql`.
    #[error("migration {name} has no down.sql and cannot be reverted; nothing was reverted")]
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
         (it was applied before the engine stored scripts): revert it by hand, or start over with `db drop` and `db setup`; nothing was changed"
    )]
    NoStoredScripts {
        /// The version.
        version: String,
        /// Its folder name (the version when the folder is gone).
        name: String,
    },
    /// A version named by the caller does not exist locally.
    #[error(
        "no local migration has version {0} (give a version such as 20261121100000, 2026-11-21-100000, or a folder name)"
    )]
    UnknownVersion(String),
    /// `--to` named a version that is already applied.
    #[error(
        "migration {0} is already applied; `db migrate` never goes backwards: use `db rollback --steps {1}` to revert to it"
    )]
    AlreadyApplied(String, usize),
    /// More steps were asked for than there are applied migrations.
    #[error(
        "cannot revert {requested} migrations: only {applied} are applied; nothing was reverted"
    )]
    TooManySteps {
        /// What the caller asked for.
        requested: usize,
        /// How many are applied.
        applied: usize,
    },
    /// A rollback of several migrations includes one that runs outside a
    /// transaction, so it cannot be all or nothing.
    #[error(
        "refusing to revert {count} migrations at once: {name} runs outside a transaction, so a failure could not undo the others; revert it on its own (`db rollback --steps {position}` reverts down to and including it one run at a time); nothing was reverted"
    )]
    MixedRollback {
        /// How many were asked for.
        count: usize,
        /// The non-transactional one.
        name: String,
        /// Its position counting from the newest (1 = newest).
        position: usize,
    },
    /// Another process held the migration lock for longer than allowed.
    #[error("gave up waiting for the migration lock after {} s (DB_MIGRATION_LOCK_TIMEOUT_SECS): {holder}", .waited.as_secs())]
    LockTimeout {
        /// How long this process waited.
        waited: Duration,
        /// Who held it, as far as the server knows.
        holder: String,
    },
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

/// Where and how a migration's SQL failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The version that failed.
    pub version: String,
    /// Its folder name.
    pub name: String,
    /// `up.sql` or `down.sql`.
    pub script: Script,
    /// `migrations/<folder>/<script>:<line>` when the position is known,
    /// else `migrations/<folder>/<script>`.
    pub location: String,
    /// For migrations run statement by statement: (the 1-based statement
    /// that failed, how many there are).
    pub statement: Option<(usize, usize)>,
    /// The server's message, with its detail and hint.
    pub message: String,
    /// What to do now, when there is more to say than "fix and re-run".
    pub advice: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "migration {} failed at {}", self.name, self.location)?;
        if let Some((n, total)) = self.statement {
            write!(f, " (statement {n} of {total})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(advice) = &self.advice {
            write!(f, "\n  {advice}")?;
        }
        Ok(())
    }
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
    /// A migration that runs outside a transaction has started and not
    /// finished: a rollback now would revert older ones under it.
    Unfinished {
        /// The version.
        version: String,
        /// Statements that completed.
        done: usize,
    },
    /// A migration that runs outside a transaction was interrupted and one
    /// of the statements that already ran has changed since: resuming could
    /// skip or repeat the wrong statements. (Fixing a later statement is fine.)
    EditedWhilePartial {
        /// The version.
        version: String,
        /// Its folder name.
        name: String,
        /// Statements that had completed.
        done: usize,
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
                 change: restore the file and put the change in a new migration (on a \
                 PostgreSQL development database, `db push` reverts it with the down.sql \
                 stored when it ran and applies the edited file)",
                &recorded[..recorded.len().min(12)],
                &local[..local.len().min(12)],
            ),
            Problem::Missing { version } => write!(
                f,
                "migration {version} is applied in the database but missing from the \
                 local migrations (deleted or renamed? if this binary is older than the \
                 migrations folder, rebuild it or pass --migrations-dir migrations)"
            ),
            Problem::Unfinished { version, done } => write!(
                f,
                "migration {version} is partially applied ({done} statement(s) done); finish it \
                 with `db migrate` before reverting anything; nothing was reverted"
            ),
            Problem::EditedWhilePartial {
                version,
                name,
                done,
            } => write!(
                f,
                "migration {version} ({name}) was interrupted after statement {done}, and \
                 statements 1 to {done} of its up.sql have changed since they ran; restore them \
                 and run `db migrate` to resume at statement {}, or undo what they did by hand \
                 and then run `DELETE FROM __database_migration_progress WHERE version = '{version}'`",
                done + 1
            ),
        }
    }
}

fn describe_problems(problems: &[Problem]) -> String {
    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
    format!(
        "the database's migration history and the local migrations disagree: {}",
        list.join("; ")
    )
}
