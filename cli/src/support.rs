//! What every command shares: the configuration (environment, `.env`,
//! `--database-url`), the migrations folder, the production guard's prompt,
//! the migration session, and which errors are usage errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use database::Config;
use database::db::{ConnString, redact_url, with_dbname};
use database::migrate::{self, MigrationSet};

use crate::guard::Verdict;
use crate::{Cli, Command, EXIT_REFUSED, local, project};

/// The configuration from the environment, `.env` and `--database-url`.
pub(crate) fn load_config(cli: &Cli) -> Result<Config> {
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        bail!("configuration error: .env: {e}");
    }
    // --database-url (or DATABASE_URL, which clap already read) wins; without
    // one, the project's own cluster (started when down; `setup` creates it).
    let url = match cli.database_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => url.to_owned(),
        _ => local::default_url(matches!(cli.command, Command::Setup))?,
    };
    let mut config = Config::from_lookup(|key| match key {
        "DATABASE_URL" => Some(url.clone()),
        _ => std::env::var(key).ok(),
    })?;
    // One connection is all the CLI ever needs.
    config.pool_size = 2;
    Ok(config)
}

/// The migrations folder a file-only command works on: `--migrations-dir`,
/// else the one `diesel.toml` names in the nearest project directory.
pub(crate) fn migrations_dir(cli: &Cli) -> Result<PathBuf> {
    match &cli.migrations_dir {
        Some(dir) => Ok(dir.clone()),
        None => Ok(project::current()?.migrations_dir),
    }
}

/// The migrations of `--migrations-dir DIR`.
pub(crate) fn read_migrations(dir: &Path) -> Result<MigrationSet> {
    MigrationSet::from_dir(dir).with_context(|| format!("reading {}", dir.display()))
}

/// A mistake in the arguments that only a command itself can see (clap
/// checks the rest): `db` prints it and exits 2.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Whether `e` is the caller's mistake in the arguments (exit 2), not a failure.
pub(crate) fn is_usage_error(e: &anyhow::Error) -> bool {
    use migrate::MigrationError as M;
    if e.downcast_ref::<UsageError>().is_some() {
        return true;
    }
    let migration = e
        .downcast_ref::<M>()
        .or_else(|| match e.downcast_ref::<database::Error>() {
            Some(database::Error::Migration(m)) => Some(m),
            _ => None,
        })
        .or_else(|| match e.downcast_ref::<database::ops::OpsError>() {
            Some(database::ops::OpsError::Db(database::Error::Migration(m))) => Some(m),
            _ => None,
        });
    matches!(
        migration,
        Some(M::UnknownVersion(_) | M::AlreadyApplied(..) | M::TooManySteps { .. })
    )
}

/// Says so when the project's migrations folder differs from the set built
/// into this binary (after `db new`, an edit, or `diesel migration
/// generate`), and how to proceed. Silent with `--migrations-dir` or
/// outside a project.
pub(crate) fn warn_if_binary_is_stale(cli: &Cli) {
    if cli.migrations_dir.is_some() {
        return;
    }
    let Ok(project) = project::current() else {
        return;
    };
    let Ok(on_disk) = MigrationSet::from_dir(&project.migrations_dir) else {
        return;
    };
    let embedded = MigrationSet::embedded();
    if on_disk.fingerprint() == embedded.fingerprint() {
        return;
    }
    let new: Vec<&str> = on_disk
        .iter()
        .filter(|m| embedded.get(&m.version).is_none())
        .map(|m| m.name.as_str())
        .collect();
    let gone: Vec<&str> = embedded
        .iter()
        .filter(|m| on_disk.get(&m.version).is_none())
        .map(|m| m.name.as_str())
        .collect();
    let changed: Vec<&str> = on_disk
        .iter()
        .filter(|m| {
            embedded
                .get(&m.version)
                .is_some_and(|e| e.checksum_normalized != m.checksum_normalized || e.name != m.name)
        })
        .map(|m| m.name.as_str())
        .collect();
    let mut what = Vec::new();
    if !new.is_empty() {
        what.push(format!("new on disk: {}", new.join(", ")));
    }
    if !changed.is_empty() {
        what.push(format!("changed on disk: {}", changed.join(", ")));
    }
    if !gone.is_empty() {
        what.push(format!("only in the binary: {}", gone.join(", ")));
    }
    eprintln!(
        "note: {} differs from the migrations built into this `db` ({}); this command uses the \
         built-in ones. Rebuild (`cargo build --bin db`, or `cargo run --bin db -- ...` does it) \
         or pass `--migrations-dir {}`.",
        project.migrations_dir.display(),
        what.join("; "),
        project.migrations_dir.display()
    );
}

/// Applies the production guard to a destructive command. `Some(code)`
/// means stop with that exit code; nothing has been touched.
pub(crate) fn guard(config: &Config, command: &str, yes: bool) -> Result<Option<ExitCode>> {
    use std::io::{BufRead, IsTerminal, Write};
    // Both URLs are judged: the migration URL is where reset/nuke/migrate
    // write, the application URL where `db studio --write` does; the
    // stricter verdict wins (a refusal, then a confirmation).
    let judged: Vec<(&str, Verdict)> = [config.migration_url(), config.database_url.as_str()]
        .into_iter()
        .map(|url| (url, crate::guard::judge(url, |k| std::env::var(k).ok())))
        .collect();
    let (url, verdict) = judged
        .iter()
        .find(|(_, v)| matches!(v, Verdict::Refused(_)))
        .or_else(|| {
            judged
                .iter()
                .find(|(_, v)| matches!(v, Verdict::NeedsConfirmation { .. }))
        })
        .unwrap_or(&judged[0])
        .clone();
    match verdict {
        Verdict::Allowed => Ok(None),
        Verdict::Refused(why) => {
            eprintln!(
                "refused: `db {command}` never runs against production: {why}. Nothing was changed."
            );
            Ok(Some(ExitCode::from(EXIT_REFUSED)))
        }
        Verdict::NeedsConfirmation { .. } if yes => Ok(None),
        Verdict::NeedsConfirmation { host } => {
            let name = ConnString::parse(url).dbname.unwrap_or_default();
            if !std::io::stdin().is_terminal() {
                eprintln!(
                    "refused: {} is not a local server; pass --yes to run `db {command}` against it. Nothing was changed.",
                    redact_url(url)
                );
                return Ok(Some(ExitCode::from(EXIT_REFUSED)));
            }
            eprint!(
                "`db {command}` on {host} ({}). Type the database name to confirm: ",
                redact_url(url)
            );
            std::io::stderr().flush()?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if answer.trim() == name {
                Ok(None)
            } else {
                eprintln!("refused: the name did not match. Nothing was changed.");
                Ok(Some(ExitCode::from(EXIT_REFUSED)))
            }
        }
    }
}

/// A direct connection (not pooled) to the migration URL: the migration lock
/// lives on it and dies with it.
pub(crate) async fn connect(config: &Config) -> Result<database::Conn> {
    Ok(database::db::connect_for_migrations(config, config.migration_url()).await?)
}

/// `connect`, for a command whose work crosses tenants (`db seed`, `db
/// reset`): the migration URL's login owns the tables and bypasses
/// row-level security, so this is the `db` command's escape hatch. Each use
/// is logged as `Ctx::system`'s checkouts are (target `database::system`,
/// INFO, with the reason), which the `db` command shows by default.
pub(crate) async fn connect_across_tenants(
    config: &Config,
    reason: &'static str,
) -> Result<database::Conn> {
    tracing::info!(
        target: "database::system",
        reason,
        "cross-tenant access on the migration URL's login"
    );
    connect(config).await
}

/// The database name of the migration URL, and the URL of the server's
/// `postgres` database (where `CREATE`/`DROP DATABASE` are sent from).
pub(crate) fn database_of(config: &Config) -> Result<(String, String)> {
    let url = config.migration_url();
    // Config refuses a URL without a database name, so there is one.
    let name = ConnString::parse(url).dbname.unwrap_or_default();
    Ok((name, with_dbname(url, "postgres")))
}

/// Whether the server behind `conn` has a database named `name`.
pub(crate) async fn database_exists(conn: &mut database::Conn, name: &str) -> Result<bool> {
    use diesel::sql_types::{Bool, Text};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = Bool)]
        exists: bool,
    }
    let row: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<Text, _>(name)
            .get_result(conn)
            .await?;
    Ok(row.exists)
}

/// `name` as a quoted SQL identifier (inner quotes doubled).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
