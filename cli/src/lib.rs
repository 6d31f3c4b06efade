//! `db`: the operator's command for the data layer. Thin by design: it
//! parses arguments, calls the library and prints. One function per command
//! in `commands/` (grouped: migrations, data, files, schema, dev, sqlite),
//! the shared plumbing (configuration, the production guard's prompt) in
//! `support.rs`.
//!
//! Exit codes: 0 success; 1 failure (connection, SQL, refused migration,
//! lint findings); 2 usage error; 3 `check`/`diff` found work to do or drift;
//! 4 refused by the production guard.

mod commands;
pub mod drift;
pub mod guard;
pub mod lint;
mod local;
pub mod project;
pub mod scaffold;
mod studio;
mod support;
pub mod trace;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use database::ops;

use commands::{data, dev, files, migrations, schema, sqlite};
use files::LintArgs;

/// Exit code of `check` when the database is not up to date, and of `diff` on drift.
pub(crate) const EXIT_NOT_UP_TO_DATE: u8 = 3;
/// Exit code of a usage error (clap uses it too for bad arguments).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code when the production guard refuses a destructive command.
pub(crate) const EXIT_REFUSED: u8 = 4;

#[derive(Parser)]
#[command(
    name = "db",
    version,
    about = "Set up, migrate and inspect the platform's PostgreSQL database",
    after_help = "Configuration comes from the environment and .env (see the README).\n\
                  Exit codes: 0 ok, 1 failure, 2 usage error, 3 `check`/`diff` found work to do,\n\
                  4 refused by the production guard."
)]
pub(crate) struct Cli {
    /// Database URL; overrides DATABASE_URL.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,

    /// Read migrations from this folder instead of those built into the binary.
    #[arg(long, global = true, env = "DB_MIGRATIONS_DIR", value_name = "DIR")]
    pub(crate) migrations_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create the database if it does not exist, apply all migrations, show the status.
    Setup,
    /// Apply pending migrations (under a lock: safe to run from many processes).
    Migrate {
        /// Stop after this version (e.g. 20261121100000).
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
    },
    /// Revert the latest applied migrations (production guard applies).
    Rollback {
        /// How many migrations to revert.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// Confirm a non-local database without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Revert the latest migrations and apply them again (production guard applies).
    Redo {
        /// How many migrations to redo.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// Confirm a non-local database without asking.
        #[arg(long)]
        yes: bool,
    },
    /// List every migration: applied, pending, modified or missing.
    Status,
    /// Exit 3 when anything is pending, modified or missing (for CI and deploy gates).
    Check,
    /// Delete all data; keep the schema and the migration history (production guard applies).
    Reset {
        /// Confirm a non-local database without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Drop everything in the public schema, migration history included (production guard applies).
    Nuke {
        /// Confirm a non-local database without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Create migrations/YYYY-MM-DD-HHMMSS_<NAME>/{up.sql,down.sql}.
    New {
        /// Lowercase words joined by underscores, e.g. add_user_locale.
        name: String,
    },
    /// Check the migrations for operations that lock or break a live database
    /// (exit 0 clean, 1 findings, 2 usage or configuration error).
    Lint(LintArgs),
    /// Compare the live schema with what the migrations produce; exit 3 on drift.
    Diff,
    /// Print src/schema.rs for the live database (through `diesel print-schema`).
    Pull,
    /// Fill the database with connected demo data; deterministic per seed, idempotent (refused in production).
    Seed {
        /// Same seed, same rows: a second run with it writes nothing.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// small: a few thousand rows; medium: ~100k; large: over a million.
        #[arg(long, default_value = "small", value_parser = data::parse_scale)]
        scale: ops::seed::Scale,
    },
    /// Mark migrations up to VERSION as applied without running them (adopt an existing database).
    Baseline {
        /// The last version the database already has, e.g. 20261121100000.
        version: String,
    },
    /// Start the project's own PostgreSQL (in .db/, created on first use) and print its DATABASE_URL.
    Up {
        /// Print only the URL.
        #[arg(long)]
        print_url: bool,
        /// Keep the cluster in DIR instead of the project's .db/ (scripts/test's throwaway server).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Turn fsync off (faster; a crash may lose the cluster): for throwaway clusters.
        #[arg(long)]
        no_fsync: bool,
        /// The database the printed URL names, when the cluster is created (default database_dev).
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
    },
    /// Stop the project's own PostgreSQL (fast shutdown); --destroy deletes it.
    Down {
        /// Also delete the cluster and every database in it (asks first).
        #[arg(long)]
        destroy: bool,
        /// Delete without asking.
        #[arg(long, requires = "destroy")]
        yes: bool,
        /// The cluster's folder, when it is not the project's .db/.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Drop the URL's database after closing its connections (production guard applies).
    Drop {
        /// Confirm a non-local database without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Development only: revert edited migrations with their stored down.sql, apply the current files.
    Push,
    /// The test databases of `database::testing` (`#[database::test]`), on the tests' server
    /// (TEST_DATABASE_URL, else the project's own cluster; never DATABASE_URL).
    #[command(name = "test-db", subcommand)]
    TestDb(TestDbCommand),
    /// Browse (and with --write, edit) the database in a web browser, served on 127.0.0.1.
    Studio {
        /// The port on 127.0.0.1 (0: any free one).
        #[arg(long, default_value_t = studio::DEFAULT_PORT)]
        port: u16,
        /// Allow edits, inserts and deletes (production guard applies).
        #[arg(long)]
        write: bool,
        /// Open the URL in the default browser.
        #[arg(long)]
        open: bool,
    },
}

/// `db test-db ...`.
#[derive(Subcommand)]
pub(crate) enum TestDbCommand {
    /// Drop what failed or crashed tests left and the templates of old migration sets;
    /// leave the databases of tests still running alone.
    Clean,
}

/// Runs `db` with the process's arguments; the exit code to end with.
pub fn main() -> ExitCode {
    // Before parsing, so that DATABASE_URL from .env reaches --database-url.
    // A malformed .env is reported by Config::from_env below.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // Warnings, and every use of the escape hatch with its
                // reason (`db seed`, `db reset`, the studio).
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,database::system=info")
                }),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a pipe or a log file
        // gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if support::is_usage_error(&e) {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    // These work on files alone: no database, no DATABASE_URL needed.
    let on_sqlite = cli
        .database_url
        .as_deref()
        .is_some_and(database::db::sqlite::is_sqlite_url);
    match &cli.command {
        Command::New { name } => return files::new_migration(&cli, name, on_sqlite),
        // Lint reads files (PostgreSQL migrations) whatever DATABASE_URL names.
        Command::Lint(args) => return Ok(files::lint(&cli, args).await),
        // The local cluster: no DATABASE_URL needed or used.
        Command::Up {
            print_url,
            dir,
            no_fsync,
            database,
        } => return dev::up(*print_url, dir.as_deref(), *no_fsync, database.clone()),
        Command::Down { destroy, yes, dir } => return dev::down(*destroy, *yes, dir.as_deref()),
        // The tests' server, not DATABASE_URL's.
        Command::TestDb(TestDbCommand::Clean) => return dev::clean_test_databases(&cli).await,
        _ => {}
    }
    let config = support::load_config(&cli)?;
    if database::db::sqlite::is_sqlite_url(&config.database_url) {
        return sqlite::run(&cli, &config).await;
    }
    support::warn_if_binary_is_stale(&cli);
    let owned_set;
    let set = match &cli.migrations_dir {
        Some(dir) => {
            owned_set = support::read_migrations(dir)?;
            &owned_set
        }
        None => database::migrate::MigrationSet::embedded(),
    };

    match cli.command {
        Command::Setup => migrations::setup(&config, set).await,
        Command::Migrate { ref to } => migrations::migrate(&config, set, to.as_deref()).await,
        Command::Rollback { steps, yes } => {
            migrations::rollback(&cli, &config, set, steps, yes).await
        }
        Command::Redo { steps, yes } => migrations::redo(&cli, &config, set, steps, yes).await,
        Command::Status => migrations::status(&config, set).await,
        Command::Check => migrations::check(&config, set).await,
        Command::Baseline { ref version } => migrations::baseline(&config, set, version).await,
        Command::Reset { yes } => data::reset(&config, yes).await,
        Command::Nuke { yes } => data::nuke(&config, yes).await,
        Command::Seed { seed, scale } => data::seed(&config, set, seed, scale).await,
        Command::Diff => schema::diff(&config, set).await,
        Command::Pull => schema::pull(&config),
        Command::Drop { yes } => {
            if let Some(code) = support::guard(&config, "drop", yes)? {
                return Ok(code);
            }
            dev::drop_database(&config).await
        }
        Command::Push => dev::push(&config, set).await,
        Command::Studio { port, write, open } => {
            if write && let Some(code) = support::guard(&config, "studio --write", false)? {
                return Ok(code);
            }
            studio::run(&config, set, port, write, open).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::New { .. }
        | Command::Lint(_)
        | Command::Up { .. }
        | Command::Down { .. }
        | Command::TestDb(_) => {
            unreachable!("handled before connecting")
        }
    }
}
