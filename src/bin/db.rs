//! `db`: the operator's command for the data layer. Thin by design: it
//! parses arguments, calls the library and prints.
//!
//! Exit codes: 0 success; 1 failure (connection, SQL, refused migration,
//! lint findings); 2 usage error; 3 `check`/`diff` found work to do or drift;
//! 4 refused by the production guard.

// The crate root is this file, so the submodule is found through its path.
#[path = "db/dev.rs"]
mod dev;
#[path = "db/sqlite.rs"]
mod sqlite;
#[path = "db/studio/mod.rs"]
mod studio;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use database::Config;
use database::db::{ConnString, redact_url, with_dbname};
use database::migrate::{self, MigrationSet, State, Status};
use database::ops::{self, guard::Verdict};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

/// Exit code of `check` when the database is not up to date, and of `diff` on drift.
const EXIT_NOT_UP_TO_DATE: u8 = 3;
/// Exit code of a usage error (clap uses it too for bad arguments).
const EXIT_USAGE: u8 = 2;
/// Exit code when the production guard refuses a destructive command.
const EXIT_REFUSED: u8 = 4;

#[derive(Parser)]
#[command(
    name = "db",
    version,
    about = "Set up, migrate and inspect the platform's PostgreSQL database",
    after_help = "Configuration comes from the environment and .env (see the README).\n\
                  Exit codes: 0 ok, 1 failure, 2 usage error, 3 `check`/`diff` found work to do,\n\
                  4 refused by the production guard."
)]
struct Cli {
    /// Database URL; overrides DATABASE_URL.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// Read migrations from this folder instead of those built into the binary.
    #[arg(long, global = true, env = "DB_MIGRATIONS_DIR", value_name = "DIR")]
    migrations_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        #[arg(long, default_value = "small", value_parser = parse_scale)]
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

/// `db lint`'s options.
#[derive(clap::Args)]
struct LintArgs {
    /// Output format: text (one finding a line), json, or github (workflow annotations).
    #[arg(long, default_value = "text", value_parser = parse_lint_format)]
    format: ops::lint::output::Format,
    /// The PostgreSQL major version the migrations target (some hazards depend on it).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(9..=99))]
    pg_version: u32,
    /// `--deny warnings`: warnings fail the lint too (exit 1).
    #[arg(long, value_name = "LEVEL", value_parser = ["warnings"])]
    deny: Option<String>,
    /// The allow-list file (default: lint-allow.toml beside the migrations folder).
    #[arg(long, value_name = "FILE")]
    allow_file: Option<PathBuf>,
}

fn parse_lint_format(s: &str) -> Result<ops::lint::output::Format, String> {
    s.parse()
}

fn main() -> ExitCode {
    // Before parsing, so that DATABASE_URL from .env reaches --database-url.
    // A malformed .env is reported by Config::from_env below.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
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
            if is_usage_error(&e) {
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
        Command::New { name } => return new_migration(&cli, name, on_sqlite),
        Command::Lint(args) if !on_sqlite => return Ok(lint(&cli, args)),
        // The local cluster: no DATABASE_URL needed or used.
        Command::Up {
            print_url,
            dir,
            no_fsync,
            database,
        } => return dev::up(*print_url, dir.as_deref(), *no_fsync, database.clone()),
        Command::Down { destroy, yes, dir } => return dev::down(*destroy, *yes, dir.as_deref()),
        _ => {}
    }
    let config = load_config(&cli)?;
    if database::db::sqlite::is_sqlite_url(&config.database_url) {
        return sqlite::run(&cli, &config).await;
    }
    warn_if_binary_is_stale(&cli);
    let run_options = migrate::RunOptions::from_config(&config);

    let owned_set;
    let set: &MigrationSet = match &cli.migrations_dir {
        Some(dir) => {
            owned_set = MigrationSet::from_dir(dir)
                .with_context(|| format!("reading {}", dir.display()))?;
            &owned_set
        }
        None => MigrationSet::embedded(),
    };

    match cli.command {
        Command::Setup => setup(&config, set).await,
        Command::Migrate { to } => {
            let mut conn = connect(&config).await?;
            let report = migrate::run_to_with(&mut conn, set, to.as_deref(), &run_options).await?;
            print_report(&report);
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback { steps, yes } => {
            if let Some(code) = guard(&config, "rollback", yes)? {
                return Ok(code);
            }
            let mut conn = connect(&config).await?;
            let reverted =
                migrate::rollback_with(&mut conn, set, steps as usize, &run_options).await?;
            if reverted.is_empty() {
                println!("Nothing to roll back.");
            }
            for name in &reverted {
                println!("Reverted {name}");
            }
            if !reverted.is_empty() {
                sync_schema_file(&cli, &config);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Redo { steps, yes } => {
            if let Some(code) = guard(&config, "redo", yes)? {
                return Ok(code);
            }
            let mut conn = connect(&config).await?;
            let redone = migrate::redo_with(&mut conn, set, steps as usize, &run_options).await?;
            if redone.is_empty() {
                println!("Nothing to redo.");
            }
            for name in &redone {
                println!("Redid {name}");
            }
            if !redone.is_empty() {
                sync_schema_file(&cli, &config);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let mut conn = connect(&config).await?;
            let status = migrate::status(&mut conn, set).await?;
            print_status(&status);
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let mut conn = connect(&config).await?;
            let status = migrate::status(&mut conn, set).await?;
            print_status(&status);
            if status.is_up_to_date() {
                Ok(ExitCode::SUCCESS)
            } else {
                for v in status.versions.iter().filter(|v| v.state != State::Applied) {
                    eprintln!("check: migration {} is {}", v.version, v.state);
                }
                Ok(ExitCode::from(EXIT_NOT_UP_TO_DATE))
            }
        }
        Command::Reset { yes } => {
            if let Some(code) = guard(&config, "reset", yes)? {
                return Ok(code);
            }
            let mut conn = connect(&config).await?;
            let tables = ops::data::reset(&mut conn).await?;
            println!(
                "Emptied {} tables; schema and migration history kept.",
                tables.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Nuke { yes } => {
            if let Some(code) = guard(&config, "nuke", yes)? {
                return Ok(code);
            }
            let mut conn = connect(&config).await?;
            ops::data::nuke(&mut conn).await?;
            println!(
                "Dropped everything in schema public, migration history included. `db migrate` rebuilds it."
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::New { .. } | Command::Lint(_) | Command::Up { .. } | Command::Down { .. } => {
            unreachable!("handled before connecting")
        }
        Command::Drop { yes } => {
            if let Some(code) = guard(&config, "drop", yes)? {
                return Ok(code);
            }
            dev::drop_database(&config).await
        }
        Command::Push => dev::push(&config, set).await,
        Command::Studio { port, write, open } => {
            if write && let Some(code) = guard(&config, "studio --write", false)? {
                return Ok(code);
            }
            studio::run(&config, set, port, write, open).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff => {
            let mut conn = connect(&config).await?;
            let pending = migrate::status(&mut conn, set).await?;
            let pending = pending.pending();
            if !pending.is_empty() {
                eprintln!(
                    "note: {} migration(s) are not applied to this database yet ({}): the \
                     difference below includes them; `db migrate` applies them",
                    pending.len(),
                    pending.join(", ")
                );
            }
            drop(conn);
            let drift = ops::drift::diff(&config.database_url, set).await?;
            if drift.has_drift() {
                print!("{}", drift.diff);
                eprintln!("diff: the live schema differs from what the migrations produce");
                Ok(ExitCode::from(EXIT_NOT_UP_TO_DATE))
            } else {
                println!("No drift: the live schema is what the migrations produce.");
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Pull => {
            print!("{}", ops::drift::pull(&config.database_url)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed { seed, scale } => seed_demo(&config, set, seed, scale).await,
        Command::Baseline { version } => {
            let mut conn = connect(&config).await?;
            let marked = migrate::baseline_with(&mut conn, set, &version, &run_options).await?;
            if marked.is_empty() {
                println!("Nothing to mark: every migration up to {version} is already recorded.");
            }
            for name in marked {
                println!("Marked {name} as applied (not run)");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The configuration from the environment, `.env` and `--database-url`.
fn load_config(cli: &Cli) -> Result<Config> {
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        bail!("configuration error: .env: {e}");
    }
    // --database-url (or DATABASE_URL, which clap already read) wins; without
    // one, the project's own cluster (started when down; `setup` creates it).
    let url = match cli.database_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => url.to_owned(),
        _ => dev::default_url(matches!(cli.command, Command::Setup))?,
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
fn migrations_dir(cli: &Cli) -> Result<PathBuf> {
    match &cli.migrations_dir {
        Some(dir) => Ok(dir.clone()),
        None => Ok(ops::project::current()?.migrations_dir),
    }
}

/// `db new NAME`.
/// On a SQLite URL (without `--migrations-dir`) into `migrations_sqlite/`.
fn new_migration(cli: &Cli, name: &str, on_sqlite: bool) -> Result<ExitCode> {
    let dir = match &cli.migrations_dir {
        None if on_sqlite => ops::project::current()?.root.join("migrations_sqlite"),
        _ => migrations_dir(cli)?,
    };
    let folder = ops::scaffold::new_migration(&dir, name, chrono::Utc::now())?;
    println!("Created {}/up.sql", folder.display());
    println!("Created {}/down.sql", folder.display());
    Ok(ExitCode::SUCCESS)
}

/// Exit code of `lint` for usage and configuration errors (findings are 1).
const EXIT_LINT_USAGE: u8 = 2;

/// `db lint`: the project's migrations folder, which must exist and hold
/// migrations (an empty lint is not a clean one). Exits 0 when clean (or
/// warnings only), 1 on findings, 2 on a usage or configuration error.
fn lint(cli: &Cli, args: &LintArgs) -> ExitCode {
    match lint_report(cli, args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_LINT_USAGE)
        }
    }
}

/// Prints the report; `Ok(clean)`, or `Err` for a usage or configuration error.
fn lint_report(cli: &Cli, args: &LintArgs) -> Result<bool> {
    use ops::lint::{Options, Severity, allow::AllowList, output};
    let dir = migrations_dir(cli)?;
    if !dir.is_dir() {
        bail!("no migrations folder at {}", dir.display());
    }
    let set = MigrationSet::from_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
    if set.is_empty() {
        bail!("no migrations found in {}: nothing to lint", dir.display());
    }
    // Paths in the report and the allow-list are relative to the folder's parent.
    let root = dir.parent().unwrap_or(&dir);
    let allow_file = args
        .allow_file
        .clone()
        .unwrap_or_else(|| root.join(ops::lint::allow::FILE_NAME));
    if args.allow_file.is_some() && !allow_file.is_file() {
        bail!("no allow-list file at {}", allow_file.display());
    }
    let allow = AllowList::load(&allow_file, &set)?;
    // `--migrations-dir .` has no name of its own: use the real folder's.
    let label = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.clone())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let options = Options {
        pg_version: args.pg_version,
    };
    let all = ops::lint::lint_set(&set, &label, &options);
    for entry in allow.unused(&all) {
        eprintln!(
            "note: {}: the entry for {} / {} matches no finding; remove it",
            allow_file.display(),
            entry.version,
            entry.rule
        );
    }
    let (allowed, findings): (Vec<_>, Vec<_>) = all.into_iter().partition(|f| allow.allows(f));
    match args.format {
        output::Format::Text => print!("{}", output::text(&findings, allowed.len())),
        output::Format::Json => print!("{}", output::json(&findings, allowed.len())),
        output::Format::Github => print!("{}", output::github(&findings)),
    }
    let deny_warnings = args.deny.is_some();
    Ok(!findings
        .iter()
        .any(|f| f.severity() == Severity::Error || deny_warnings))
}

/// After a rollback or redo, regenerates the schema file that `diesel.toml`
/// names, as `diesel migration revert` does, so `src/schema.rs` keeps
/// matching the database. Without the diesel CLI it prints the command.
fn sync_schema_file(cli: &Cli, config: &Config) {
    let Ok(project) = ops::project::current() else {
        return;
    };
    if cli.migrations_dir.is_some()
        && cli.migrations_dir.as_deref() != Some(&project.migrations_dir)
    {
        // Another folder's migrations: the project's schema file is not theirs.
        return;
    }
    let Some(file) = ops::project::schema_file(&project) else {
        return;
    };
    match ops::drift::pull_in(&config.database_url, &project.root) {
        Ok(text) => match std::fs::write(&file, text) {
            Ok(()) => println!("Regenerated {} (diesel print-schema).", file.display()),
            Err(e) => eprintln!("warning: could not write {}: {e}", file.display()),
        },
        Err(e) => eprintln!(
            "warning: {} was not regenerated ({e}); run: diesel print-schema > {}",
            file.display(),
            file.display()
        ),
    }
}

/// Whether `e` is the caller's mistake in the arguments (exit 2), not a failure.
fn is_usage_error(e: &anyhow::Error) -> bool {
    use migrate::MigrationError as M;
    let migration = e
        .downcast_ref::<M>()
        .or_else(|| match e.downcast_ref::<database::Error>() {
            Some(database::Error::Migration(m)) => Some(m),
            _ => None,
        })
        .or_else(|| match e.downcast_ref::<ops::OpsError>() {
            Some(ops::OpsError::Db(database::Error::Migration(m))) => Some(m),
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
fn warn_if_binary_is_stale(cli: &Cli) {
    if cli.migrations_dir.is_some() {
        return;
    }
    let Ok(project) = ops::project::current() else {
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
fn guard(config: &Config, command: &str, yes: bool) -> Result<Option<ExitCode>> {
    use std::io::{BufRead, IsTerminal, Write};
    // Both URLs are judged: the migration URL is where reset/nuke/migrate
    // write, the application URL where `db studio --write` does; the
    // stricter verdict wins (a refusal, then a confirmation).
    let judged: Vec<(&str, Verdict)> = [config.migration_url(), config.database_url.as_str()]
        .into_iter()
        .map(|url| (url, ops::guard::judge(url, |k| std::env::var(k).ok())))
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

fn parse_scale(s: &str) -> Result<ops::seed::Scale, String> {
    s.parse().map_err(|e: database::Error| e.to_string())
}

/// `db seed`: refused where the guard refuses (demo data has no place in
/// production); anywhere else it only adds rows, so it asks nothing.
async fn seed_demo(
    config: &Config,
    set: &MigrationSet,
    seed: u64,
    scale: ops::seed::Scale,
) -> Result<ExitCode> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;
    if let Verdict::Refused(why) =
        ops::guard::judge(config.migration_url(), |k| std::env::var(k).ok())
    {
        eprintln!("refused: `db seed` never runs against production: {why}. Nothing was changed.");
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    let mut conn = connect(config).await?;
    let status = migrate::status(&mut conn, set).await?;
    let pending = status.pending();
    if !pending.is_empty() {
        bail!(
            "{} migration(s) are not applied to this database yet ({}): run `db migrate` first",
            pending.len(),
            pending.join(", ")
        );
    }
    let bar = ProgressBar::with_draw_target(
        None,
        if std::io::stderr().is_terminal() && std::io::stdout().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} ({elapsed})")
            .expect("static template"),
    );
    let mut written = 0u64;
    let report = ops::seed::seed(&mut conn, seed, scale, &mut |event| match event {
        ops::seed::Progress::Planned { units } => bar.set_length(units),
        ops::seed::Progress::Table { name } => {
            bar.set_message(format!("{name} ({written} rows written)"))
        }
        ops::seed::Progress::Advanced { units, written: w } => {
            written += w;
            bar.inc(units);
        }
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "Seeded {} rows in {:.1} s ({} rows/s); {} rows already present (seed {seed}, scale {scale})",
        thousands(report.written()),
        report.elapsed.as_secs_f64(),
        thousands(report.rows_per_second().round() as u64),
        thousands(report.already_present()),
    );
    Ok(ExitCode::SUCCESS)
}

/// 1234567 -> "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A direct connection (not pooled) to the migration URL: the migration lock
/// lives on it and dies with it.
async fn connect(config: &Config) -> Result<database::Conn> {
    Ok(database::db::connect_for_migrations(config, config.migration_url()).await?)
}

/// The database name of the migration URL, and the URL of the server's
/// `postgres` database (where `CREATE`/`DROP DATABASE` are sent from).
fn database_of(config: &Config) -> Result<(String, String)> {
    let url = config.migration_url();
    // Config refuses a URL without a database name, so there is one.
    let name = ConnString::parse(url).dbname.unwrap_or_default();
    Ok((name, with_dbname(url, "postgres")))
}

async fn setup(config: &Config, set: &MigrationSet) -> Result<ExitCode> {
    // CREATE DATABASE must be sent from another database on the same server.
    let (name, maintenance) = database_of(config)?;
    let mut admin = database::db::connect(config, &maintenance).await?;
    if database_exists(&mut admin, &name).await? {
        println!("Database {name} exists.");
    } else {
        let created = admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await;
        // Another `setup` may have created it between our check and now.
        if let Err(e) = created
            && !database_exists(&mut admin, &name).await?
        {
            return Err(e).context(format!("creating database {name}"));
        }
        println!("Created database {name}.");
    }
    drop(admin);

    let mut conn = connect(config).await?;
    let report =
        migrate::run_with(&mut conn, set, &migrate::RunOptions::from_config(config)).await?;
    print_report(&report);
    let status = migrate::status(&mut conn, set).await?;
    print_status(&status);
    Ok(ExitCode::SUCCESS)
}

async fn database_exists(conn: &mut database::Conn, name: &str) -> Result<bool> {
    use diesel::sql_types::{Bool, Text};
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

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn print_report(report: &migrate::Report) {
    for version in &report.checksums_recorded {
        println!("Recorded checksum of {version} (applied outside `db`).");
    }
    if report.applied.is_empty() {
        println!("No pending migrations.");
    }
    for name in &report.applied {
        println!("Applied {name}");
    }
}

fn print_status(status: &Status) {
    println!(
        "{:<18} {:<9} {:<20} MIGRATION",
        "VERSION", "STATE", "APPLIED AT (UTC)"
    );
    for v in &status.versions {
        println!(
            "{:<18} {:<9} {:<20} {}",
            v.version,
            v.state.to_string(),
            v.applied_at_text(),
            v.described_name()
        );
    }
    println!("{}", status.summary());
    for index in &status.invalid_indexes {
        println!(
            "INVALID index {index}: an interrupted or failed CREATE INDEX CONCURRENTLY (or one \
             still building) left it; `db migrate` rebuilds the one of a partial migration, any \
             other: DROP INDEX CONCURRENTLY {index}, then create it again"
        );
    }
}
