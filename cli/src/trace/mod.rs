//! `db lint --trace`: the locks a migration really takes, observed on a
//! real server. Static rules guess; the server knows.
//!
//! The pending migrations are applied, one statement at a time, to a
//! throwaway database: a fresh database on the same server (named
//! `<database>_trace_<pid>`), migrated by the engine to just before the
//! first traced migration, and dropped at the end, also on error. A clone
//! of the live database (`CREATE DATABASE ... TEMPLATE`) would bring its
//! rows, but PostgreSQL refuses to clone a database anyone is connected to,
//! which a development database usually is; so the tables are empty, and
//! a rewrite or a scan shows in the catalog (a new `relfilenode`, a
//! `seq_scan` that grew), not in the time it took.
//!
//! Each statement that can run in a transaction block runs in one (the
//! migration's, or its own for a `run_in_transaction = false` migration),
//! and before that transaction ends the trace reads, in the same session,
//! the locks it holds (`pg_locks` of its own backend: sampling from outside
//! misses short locks), which existing tables got a new file (rewritten)
//! or were scanned, and how long the statement ran; then a second session
//! tries a trivial `SELECT` and `UPDATE ... WHERE false` on each locked
//! table with a short `lock_timeout`: whether a concurrent reader and
//! writer would have been blocked. A statement that cannot run in a
//! transaction block (`CONCURRENTLY`, `VACUUM`) runs on its own while a
//! second session samples its locks; a third session plays a long-running
//! reader (an old snapshot and ACCESS SHARE on every table), which such
//! statements wait for, so that the locks they hold while waiting are seen
//! and probed; its figures are marked as sampled.

pub mod report;
mod session;

use std::str::FromStr;

use anyhow::{Context, Result, bail};
use diesel_async::SimpleAsyncConnection;

use database::Config;
use database::db::{ConnString, connect_for_migrations, with_dbname};
use database::migrate::{self, MigrationSet, State};

use crate::support::{database_exists, quote_ident};

/// Which migrations `--trace` applies under observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// Those not applied to the database the URL names (all when it does not exist).
    Pending,
    /// Every migration.
    All,
    /// This version (or folder name) and the ones after it.
    From(String),
}

impl FromStr for Which {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => Which::Pending,
            "all" => Which::All,
            "" => return Err("empty --trace value (pending, all or a version)".into()),
            version => Which::From(version.to_owned()),
        })
    }
}

/// A lock a traced statement held (or, sampled, waited for) on a relation
/// that existed before its migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// The relation, as SQL names it (`"users"`, `"archive"."orders"`).
    pub relation: String,
    /// `table`, `partitioned table`, `index`, `view` or `materialized view`.
    pub kind: &'static str,
    /// The lock mode as the documentation writes it (`SHARE ROW EXCLUSIVE`).
    pub mode: &'static str,
    /// Granted (false: the statement was waiting for it).
    pub granted: bool,
    /// Taken by this statement (not held since an earlier one of the same transaction).
    pub new: bool,
}

/// What a second session met on one relation while the locks were held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The relation tried.
    pub relation: String,
    /// A `SELECT` waited past the lock timeout.
    pub reader_blocked: bool,
    /// An `UPDATE` waited past the lock timeout (`None`: not tried, a view).
    pub writer_blocked: Option<bool>,
}

/// One statement, as the server ran it.
#[derive(Debug, Clone, PartialEq)]
pub struct Traced {
    /// `migrations/<folder>/up.sql`.
    pub file: String,
    /// The statement's first line.
    pub line: usize,
    /// The migration's version.
    pub version: String,
    /// The statement's text.
    pub sql: String,
    /// It ran in its migration's transaction: its locks last until the
    /// migration commits (else until the statement ends).
    pub in_transaction: bool,
    /// Observed from a second session while it ran: short locks can be missed.
    pub sampled: bool,
    /// How long it ran, in milliseconds.
    pub duration_ms: f64,
    /// The locks held on relations that existed before the migration.
    pub locks: Vec<Lock>,
    /// Tables (and materialized views) whose file it replaced.
    pub rewritten: Vec<String>,
    /// Tables it read sequentially (`None` when sampled: not observable).
    pub scanned: Option<Vec<String>>,
    /// What a concurrent reader and writer met.
    pub probes: Vec<Probe>,
    /// The server's error: the migration stops there.
    pub error: Option<String>,
}

/// A whole trace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// `SHOW server_version`.
    pub server_version: String,
    /// The server's major version (`15`).
    pub server_major: u32,
    /// The throwaway database's name.
    pub database: String,
    /// The migrations traced, by folder name.
    pub migrations: Vec<String>,
    /// Every statement of them, in order, up to the first that failed.
    pub statements: Vec<Traced>,
    /// Why nothing was traced, when nothing was.
    pub note: Option<String>,
}

impl Trace {
    /// Whether a traced statement failed.
    pub fn failed(&self) -> bool {
        self.statements.iter().any(|s| s.error.is_some())
    }
}

/// Traces the migrations `which` selects from `set` on the server of
/// `config`'s migration URL; `dir_label` prefixes file names.
pub async fn run(
    config: &Config,
    set: &MigrationSet,
    dir_label: &str,
    which: &Which,
) -> Result<Trace> {
    let url = config.migration_url();
    let live = ConnString::parse(url).dbname.unwrap_or_default();
    let mut admin = connect_for_migrations(config, &with_dbname(url, "postgres"))
        .await
        .context("--trace needs a PostgreSQL server where it may create a throwaway database")?;
    let first = match which {
        Which::All => 0,
        Which::From(version) => {
            let wanted = set.find(version)?.version.clone();
            set.iter()
                .position(|m| m.version == wanted)
                .expect("find returned a member")
        }
        Which::Pending => {
            let mut first = Some(0);
            if database_exists(&mut admin, &live).await? {
                let mut conn = connect_for_migrations(config, url).await?;
                let status = migrate::status(&mut conn, set).await?;
                first = status
                    .versions
                    .iter()
                    .find(|v| matches!(v.state, State::Pending | State::PartiallyApplied))
                    .and_then(|v| set.iter().position(|m| m.version == v.version));
            }
            match first {
                Some(first) => first,
                None => {
                    return Ok(Trace {
                        note: Some(format!(
                            "nothing to trace: every migration is applied to {live} (`--trace=all` or `--trace=VERSION` traces applied ones)"
                        )),
                        ..Trace::default()
                    });
                }
            }
        }
    };
    let scratch: String = format!(
        "{}_trace_{}",
        live.chars().take(40).collect::<String>(),
        std::process::id()
    );
    let quoted = quote_ident(&scratch);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await
        .with_context(|| format!("creating the throwaway database {scratch}"))?;
    // Whether timestamp <-> timestamptz rewrites, and what a timestamptz
    // literal in a CHECK or a partition bound means, depend on the session's
    // zone: the server's default, or PGTZ's, as for libpq's clients (psql,
    // the diesel CLI). Made the database's default, so that the engine's
    // `RESET ALL` between migrations keeps it.
    if let Ok(zone) = std::env::var("PGTZ")
        && !zone.trim().is_empty()
    {
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {quoted} SET TimeZone = '{}'",
                zone.replace('\'', "''")
            ))
            .await?;
    }
    let traced = trace_on(config, &with_dbname(url, &scratch), set, dir_label, first).await;
    let dropped = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .await;
    let mut trace = traced?;
    dropped.with_context(|| format!("dropping the throwaway database {scratch}"))?;
    trace.database = scratch;
    Ok(trace)
}

/// Migrates the throwaway database at `url` to just before migration
/// `first` of `set`, then traces the rest.
async fn trace_on(
    config: &Config,
    url: &str,
    set: &MigrationSet,
    dir_label: &str,
    first: usize,
) -> Result<Trace> {
    let mut main = connect_for_migrations(config, url).await?;
    // diesel-async sets UTC on connect; every migration, earlier or traced,
    // runs in the database's default zone instead (see `run`).
    main.batch_execute("RESET TimeZone").await?;
    if let Some(before) = first.checked_sub(1).and_then(|i| set.iter().nth(i)) {
        migrate::run_to(&mut main, set, Some(&before.version))
            .await
            .with_context(|| {
                format!(
                    "applying the migrations before the traced ones (up to {})",
                    before.name
                )
            })?;
    }
    let mut sessions = session::Sessions::open(config, url, main).await?;
    let mut trace = Trace {
        server_version: sessions.server_version().await?,
        ..Trace::default()
    };
    trace.server_major = trace
        .server_version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    for m in set.iter().skip(first) {
        let file = format!("{dir_label}/{}/up.sql", m.name);
        trace.migrations.push(m.name.clone());
        let statements = match crate::lint::statements(&m.up_sql, trace.server_major) {
            Ok(s) => s,
            Err(e) => bail!("{file}: {e}: fix the syntax error first (`db lint` shows it)"),
        };
        let traced = sessions.trace_migration(m, &file, &statements).await?;
        let failed = traced.iter().any(|t| t.error.is_some());
        trace.statements.extend(traced);
        if failed {
            break;
        }
    }
    Ok(trace)
}
