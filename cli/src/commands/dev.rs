//! The development commands: `up` and `down` (the project's own
//! PostgreSQL, through `ops::cluster`), `drop`, `push` and `test-db clean`.
//! (The URL every command uses when `DATABASE_URL` is unset is `crate::local`.)

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::guard::Verdict;
use crate::project;
use anyhow::{Context, Result};
use database::Config;
use database::db::local::{DEFAULT_DATABASE, RECORD_FILE, STATE_DIR};
use database::db::redact_url;
use database::migrate::{self, MigrationSet, PushStep};
use database::ops::cluster::{Cluster, Options, Start};
use diesel_async::SimpleAsyncConnection;

use crate::EXIT_REFUSED;
use crate::support::{connect, database_of};
use crate::support::{database_exists, quote_ident};

/// The state folder: `--dir`, else `.db/` at the project root.
fn state_dir(dir: Option<&Path>) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.to_path_buf()),
        None => Ok(project::current()?.root.join(STATE_DIR)),
    }
}

/// `db up`.
pub fn up(
    print_url: bool,
    dir: Option<&Path>,
    no_fsync: bool,
    database: Option<String>,
) -> Result<ExitCode> {
    let state = state_dir(dir)?;
    let existed = Cluster::open(&state)?.is_some();
    let options = Options {
        fsync: !no_fsync,
        database: database.unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
        ..Options::default()
    };
    let mut cluster = Cluster::create(&state, &options)?;
    let start = cluster.start()?;
    let record = cluster.record();
    if print_url {
        println!("{}", cluster.url());
        return Ok(ExitCode::SUCCESS);
    }
    if !existed {
        println!(
            "Created a PostgreSQL cluster ({}) for {}.",
            record.bin_dir.display(),
            state.display()
        );
    }
    if cluster.data_is_elsewhere() {
        println!(
            "The server runs as the OS user {} (PostgreSQL refuses root), which cannot reach {}: \
             its data lives in {} (recorded in {}).",
            record.os_user.as_deref().unwrap_or("postgres"),
            state.display(),
            record.data_dir.display(),
            state.join(RECORD_FILE).display()
        );
    }
    match start {
        Start::Started => println!(
            "Started PostgreSQL on 127.0.0.1:{} and a socket in {} (log: {}).",
            record.port,
            record.socket_dir.display(),
            cluster.log_path().display()
        ),
        Start::AlreadyRunning => println!(
            "PostgreSQL is already running on 127.0.0.1:{}.",
            record.port
        ),
    }
    // Two roles: the service's own (row-level security applies to it) and
    // the superuser, which owns the tables and runs migrations. `db`
    // commands and a service's `Db::from_env()` find both when DATABASE_URL
    // is unset; for a .env, both lines.
    println!("DATABASE_URL={}", record.service_url());
    println!("DATABASE_MIGRATION_URL={}", cluster.url());
    println!(
        "(passwords in {}, readable by you only; the socket admits you without one)",
        state.join(database::db::local::SECRETS_FILE).display()
    );
    if let Ok(set) = std::env::var("DATABASE_URL")
        && !set.trim().is_empty()
        && set != record.service_url()
        && set != cluster.url()
    {
        eprintln!(
            "note: DATABASE_URL is set ({}): `db` commands and services use it, not this cluster.",
            redact_url(&set)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `db down`: stop the cluster; with `destroy`, delete it after asking.
pub fn down(destroy: bool, yes: bool, dir: Option<&Path>) -> Result<ExitCode> {
    let state = state_dir(dir)?;
    let Some(cluster) = Cluster::open(&state)? else {
        println!(
            "No local PostgreSQL in {}: nothing to stop.",
            state.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    if !destroy {
        if cluster.stop()? {
            println!("Stopped the PostgreSQL of {}.", state.display());
        } else {
            println!("The PostgreSQL of {} is already stopped.", state.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let what = if cluster.data_is_elsewhere() {
        format!(
            "{} and {}",
            state.display(),
            cluster
                .data_dir()
                .parent()
                .unwrap_or(cluster.data_dir())
                .display()
        )
    } else {
        state.display().to_string()
    };
    if !yes {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "refused: `db down --destroy` deletes {what} and every database in it; pass --yes. Nothing was changed."
            );
            return Ok(ExitCode::FAILURE);
        }
        eprint!("Delete {what} with every database in it? Type yes: ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            eprintln!("Nothing was changed.");
            return Ok(ExitCode::FAILURE);
        }
    }
    cluster.destroy()?;
    println!("Stopped the server and deleted {what}.");
    Ok(ExitCode::SUCCESS)
}

/// `db drop`: the URL's database, its connections closed first (the guard has passed).
pub async fn drop_database(config: &Config) -> Result<ExitCode> {
    let (name, maintenance) = database_of(config)?;
    let mut admin = database::db::connect(config, &maintenance).await?;
    if !database_exists(&mut admin, &name).await? {
        println!("Database {name} does not exist.");
        return Ok(ExitCode::SUCCESS);
    }
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&name)
        ))
        .await
        .with_context(|| format!("dropping database {name}"))?;
    println!("Dropped database {name}. `db setup` creates it again.");
    Ok(ExitCode::SUCCESS)
}

/// `db push`: development only. Refused where the production guard refuses
/// and on any server that is not local, without asking.
pub async fn push(config: &Config, set: &MigrationSet) -> Result<ExitCode> {
    if let Some(refused) = refuse_push(config.migration_url()) {
        return Ok(refused);
    }
    let mut conn = connect(config).await?;
    let steps = migrate::push(&mut conn, set, &mut print_push_step)
        .await
        .context(
            "push stopped: the steps printed above are done; the failing one was rolled back \
             where it ran in a transaction",
        )?;
    if steps.is_empty() {
        println!("Nothing to push: the database matches the migrations folder.");
    }
    Ok(ExitCode::SUCCESS)
}

/// `db push`'s guard, on either backend: the exit code of a refusal (said
/// why) when `url` is production or not local.
pub(crate) fn refuse_push(url: &str) -> Option<ExitCode> {
    match crate::guard::judge(url, |k| std::env::var(k).ok()) {
        Verdict::Allowed => None,
        Verdict::Refused(why) => {
            eprintln!(
                "refused: `db push` never runs against production: {why}. Nothing was changed."
            );
            Some(ExitCode::from(EXIT_REFUSED))
        }
        Verdict::NeedsConfirmation { host } => {
            eprintln!(
                "refused: `db push` is for a local development database, and {host} is not local. Nothing was changed."
            );
            Some(ExitCode::from(EXIT_REFUSED))
        }
    }
}

/// One line per step of `db push`, on either backend.
pub(crate) fn print_push_step(step: &PushStep) {
    match step {
        PushStep::Reverted { name, reason } => {
            println!("Reverted {name} with its stored down.sql ({reason})")
        }
        PushStep::Applied { name } => println!("Applied {name}"),
    }
}

/// `db test-db clean`: on the tests' server (`database::testing::existing_server`:
/// TEST_DATABASE_URL, else the project's own cluster when it runs; nothing
/// is created or started to be cleaned), drops the test
/// databases of processes that no longer run and the templates of other
/// migration sets than the current one (the embedded set, and
/// `--migrations-dir`'s when given); a running test's database and its
/// template stay.
pub async fn clean_test_databases(cli: &crate::Cli) -> Result<ExitCode> {
    use diesel_async::AsyncConnection;
    let Some(server) = database::testing::existing_server().map_err(anyhow::Error::msg)? else {
        // Nothing is created or started just to be cleaned.
        println!(
            "Nothing to clean on PostgreSQL: TEST_DATABASE_URL is not set and this project's own \
             cluster is not running."
        );
        let removed = database::testing::clean_sqlite();
        println!("Removed {} SQLite test file(s).", removed.len());
        return Ok(ExitCode::SUCCESS);
    };
    let admin_url = server.url_of("postgres");
    let mut conn = database::Conn::establish(&admin_url)
        .await
        .with_context(|| format!("connecting to the tests' server {}", redact_url(&admin_url)))?;
    let owned;
    let mut current = vec![MigrationSet::embedded()];
    if let Some(dir) = &cli.migrations_dir {
        owned = crate::support::read_migrations(dir)?;
        current.push(&owned);
    }
    let report = database::testing::clean(&mut conn, &current).await?;
    let list = |names: &[String]| {
        if names.is_empty() {
            String::new()
        } else {
            format!(": {}", names.join(", "))
        }
    };
    println!(
        "Dropped {} test database(s){}.",
        report.dropped.len(),
        list(&report.dropped)
    );
    if !report.in_use.is_empty() {
        println!(
            "Left {} in use by tests still running (or open elsewhere){}.",
            report.in_use.len(),
            list(&report.in_use)
        );
    }
    println!(
        "Dropped {} template(s) of old migration sets{}; kept {}{}.",
        report.templates_dropped.len(),
        list(&report.templates_dropped),
        report.templates_kept.len(),
        list(&report.templates_kept)
    );
    println!(
        "Removed {} SQLite test file(s).",
        report.sqlite_files_removed.len()
    );
    if !report.failed.is_empty() {
        for failure in &report.failed {
            eprintln!("could not drop {failure}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
