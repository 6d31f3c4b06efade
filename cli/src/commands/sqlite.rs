//! `db` on a SQLite URL (`sqlite:PATH`, `sqlite://PATH`): the auth and
//! settings domains only. Migrations come from `migrations_sqlite/` (or
//! `--migrations-dir`); the commands that only make sense on PostgreSQL say so.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use database::db::sqlite::{SqliteTarget, sqlite_target};
use database::migrate::{self, MigrationSet, State};
use database::ops;
use database::{Config, SqliteDb};

use crate::commands::migrations::{print_report, print_status};
use crate::support::guard;
use crate::{Cli, Command, EXIT_NOT_UP_TO_DATE, EXIT_REFUSED, EXIT_USAGE};

/// Users `db seed` makes per scale on SQLite (each with a login, profile and settings).
fn users_of(scale: ops::seed::Scale) -> u64 {
    match scale {
        ops::seed::Scale::Small => 200,
        ops::seed::Scale::Medium => 5_000,
        _ => 50_000,
    }
}

/// Runs `cli.command` against the SQLite database `config` names.
pub async fn run(cli: &Cli, config: &Config) -> Result<ExitCode> {
    let target = sqlite_target(&config.database_url).expect("checked by the caller");
    let owned_set;
    let set: &MigrationSet = match &cli.migrations_dir {
        Some(dir) => {
            owned_set = MigrationSet::from_dir(dir)?;
            &owned_set
        }
        None => migrate::sqlite::embedded(),
    };
    let postgres_only = |what: &str| -> Result<ExitCode> {
        eprintln!(
            "`db {what}` works on PostgreSQL only; DATABASE_URL names a SQLite database \
             (auth and settings), where it does not apply."
        );
        Ok(ExitCode::from(EXIT_USAGE))
    };
    let db = || SqliteDb::new(config.clone());
    match &cli.command {
        Command::Setup => {
            if let SqliteTarget::File(path) = &target
                && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)?;
            }
            let db = db()?;
            let mut conn = sqlite_conn(&db).await?;
            let report = migrate::sqlite::run_to(&mut conn, set, None).await?;
            print_report(&report);
            print_status(&migrate::sqlite::status(&mut conn, set).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { to } => {
            let db = db()?;
            let mut conn = sqlite_conn(&db).await?;
            let report = migrate::sqlite::run_to(&mut conn, set, to.as_deref()).await?;
            print_report(&report);
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback { steps, yes } | Command::Redo { steps, yes } => {
            let redo = matches!(cli.command, Command::Redo { .. });
            if let Some(code) = guard(config, if redo { "redo" } else { "rollback" }, *yes)? {
                return Ok(code);
            }
            let db = db()?;
            let mut conn = sqlite_conn(&db).await?;
            let steps = *steps as usize;
            let names = if redo {
                migrate::sqlite::redo(&mut conn, set, steps).await?
            } else {
                migrate::sqlite::rollback(&mut conn, set, steps).await?
            };
            for name in &names {
                println!("{} {name}", if redo { "Redid" } else { "Reverted" });
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status | Command::Check => {
            let db = db()?;
            let mut conn = sqlite_conn(&db).await?;
            let status = migrate::sqlite::status(&mut conn, set).await?;
            print_status(&status);
            if matches!(cli.command, Command::Check) && !status.is_up_to_date() {
                for v in status.versions.iter().filter(|v| v.state != State::Applied) {
                    eprintln!("check: migration {} is {}", v.version, v.state);
                }
                return Ok(ExitCode::from(EXIT_NOT_UP_TO_DATE));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reset { yes } => {
            if let Some(code) = guard(config, "reset", *yes)? {
                return Ok(code);
            }
            let db = db()?;
            let tables = ops::sqlite::reset(&mut *sqlite_conn(&db).await?).await?;
            println!(
                "Emptied {} tables; schema and migration history kept.",
                tables.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Nuke { yes } => {
            if let Some(code) = guard(config, "nuke", *yes)? {
                return Ok(code);
            }
            let db = db()?;
            ops::sqlite::nuke(&mut *sqlite_conn(&db).await?).await?;
            println!("Dropped every table, migration history included. `db migrate` rebuilds it.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Drop { yes } => {
            if let Some(code) = guard(config, "drop", *yes)? {
                return Ok(code);
            }
            if ops::sqlite::drop_file(&target)? {
                println!("Deleted the SQLite database {}.", describe(&target));
            } else {
                println!("No SQLite database at {}.", describe(&target));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed { seed, scale } => {
            if let crate::guard::Verdict::Refused(why) =
                crate::guard::judge(&config.database_url, |k| std::env::var(k).ok())
            {
                eprintln!(
                    "refused: `db seed` never runs against production: {why}. Nothing was changed."
                );
                return Ok(ExitCode::from(EXIT_REFUSED));
            }
            let db = db()?;
            let mut conn = sqlite_conn(&db).await?;
            let pending = migrate::sqlite::status(&mut conn, set).await?;
            let pending = pending.pending();
            if !pending.is_empty() {
                bail!(
                    "{} migration(s) are not applied to this database yet ({}): run `db migrate` first",
                    pending.len(),
                    pending.join(", ")
                );
            }
            let report = ops::sqlite::seed(&mut conn, *seed, users_of(*scale)).await?;
            println!(
                "Seeded {} users (each with a password login, a profile and settings); {} were \
                 there already. SQLite holds the auth and settings domains only.",
                report.users, report.existing
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Pull => {
            let project = crate::project::current()?;
            print!("{}", ops::sqlite::pull_in(&target, &project.root)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff => {
            let db = db()?;
            let mut conn = sqlite_conn(&db).await?;
            let status = migrate::sqlite::status(&mut conn, set).await?;
            let drift = crate::drift::diff_sqlite(&mut conn, set).await?;
            Ok(crate::commands::schema::report_drift(&status, &drift))
        }
        Command::Studio { port, write, open } => {
            if *write && let Some(code) = guard(config, "studio --write", false)? {
                return Ok(code);
            }
            crate::studio::run(config, set, *port, *write, *open).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Push => {
            if let Some(refused) = crate::commands::dev::refuse_push(&config.database_url) {
                return Ok(refused);
            }
            let db = db()?;
            let mut conn = sqlite_conn(&db).await?;
            let steps = migrate::sqlite::push(&mut conn, set).await.context(
                "push stopped: nothing was changed (on SQLite the whole push is one transaction)",
            )?;
            steps.iter().for_each(crate::commands::dev::print_push_step);
            if steps.is_empty() {
                println!("Nothing to push: the database matches the migrations folder.");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Baseline { .. } => postgres_only("baseline"),
        Command::New { .. }
        | Command::Lint(_)
        | Command::Up { .. }
        | Command::Down { .. }
        | Command::TestDb(_) => {
            unreachable!("handled before connecting")
        }
    }
}

async fn sqlite_conn(db: &SqliteDb) -> Result<database::db::SqlitePooledConn> {
    Ok(db.conn().await?)
}

fn describe(target: &SqliteTarget) -> String {
    match target {
        SqliteTarget::File(path) => path.display().to_string(),
        SqliteTarget::Memory => "sqlite::memory:".into(),
    }
}
