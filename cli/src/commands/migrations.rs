//! The migration commands: `setup`, `migrate`, `rollback`, `redo`,
//! `status`, `check`, `baseline`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use database::Config;
use database::db::roles;
use database::migrate::{self, MigrationSet, State, Status};
use diesel_async::SimpleAsyncConnection;

use crate::support::{connect, database_exists, database_of, guard, quote_ident};
use crate::{Cli, EXIT_NOT_UP_TO_DATE, project};

/// `db migrate [--to VERSION]`.
pub(crate) async fn migrate(
    config: &Config,
    set: &MigrationSet,
    to: Option<&str>,
) -> Result<ExitCode> {
    let mut conn = connect(config).await?;
    let run_options = migrate::RunOptions::from_config(config);
    let report = migrate::run_to_with(&mut conn, set, to, &run_options).await?;
    print_report(&report);
    // What was just created, to the service's role (when it exists).
    let role = roles::service_role(config);
    if !report.applied.is_empty() && roles::grant_if_exists(&mut conn, &role).await? {
        println!("Granted the service role {role} what it needs.");
    }
    Ok(ExitCode::SUCCESS)
}

/// `db rollback [--steps N]` (production guard applies).
pub(crate) async fn rollback(
    cli: &Cli,
    config: &Config,
    set: &MigrationSet,
    steps: u32,
    yes: bool,
) -> Result<ExitCode> {
    if let Some(code) = guard(config, "rollback", yes)? {
        return Ok(code);
    }
    let mut conn = connect(config).await?;
    let run_options = migrate::RunOptions::from_config(config);
    let reverted = migrate::rollback_with(&mut conn, set, steps as usize, &run_options).await?;
    if reverted.is_empty() {
        println!("Nothing to roll back.");
    }
    for name in &reverted {
        println!("Reverted {name}");
    }
    if !reverted.is_empty() {
        sync_schema_file(cli, config);
    }
    Ok(ExitCode::SUCCESS)
}

/// `db redo [--steps N]` (production guard applies).
pub(crate) async fn redo(
    cli: &Cli,
    config: &Config,
    set: &MigrationSet,
    steps: u32,
    yes: bool,
) -> Result<ExitCode> {
    if let Some(code) = guard(config, "redo", yes)? {
        return Ok(code);
    }
    let mut conn = connect(config).await?;
    let run_options = migrate::RunOptions::from_config(config);
    let redone = migrate::redo_with(&mut conn, set, steps as usize, &run_options).await?;
    if redone.is_empty() {
        println!("Nothing to redo.");
    }
    for name in &redone {
        println!("Redid {name}");
    }
    if !redone.is_empty() {
        sync_schema_file(cli, config);
    }
    Ok(ExitCode::SUCCESS)
}

/// `db status`.
pub(crate) async fn status(config: &Config, set: &MigrationSet) -> Result<ExitCode> {
    let mut conn = connect(config).await?;
    let status = migrate::status(&mut conn, set).await?;
    print_status(&status);
    Ok(ExitCode::SUCCESS)
}

/// `db check`: exits 3 when anything is pending, partial, modified or missing.
pub(crate) async fn check(config: &Config, set: &MigrationSet) -> Result<ExitCode> {
    let mut conn = connect(config).await?;
    let status = migrate::status(&mut conn, set).await?;
    print_status(&status);
    for v in status.versions.iter().filter(|v| v.state != State::Applied) {
        eprintln!("check: migration {} is {}", v.version, v.state);
    }
    // Row-level security and the service role: what a dump cannot show.
    let role = roles::service_role(config);
    let problems = roles::check(&mut conn, &role).await?;
    for problem in &problems {
        eprintln!("check: {problem}");
    }
    if problems.is_empty() {
        println!(
            "Row-level security guards every tenant table; the service role {role} has its grants and does not bypass it."
        );
    }
    if status.is_up_to_date() && problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(EXIT_NOT_UP_TO_DATE))
    }
}

/// `db baseline VERSION`.
pub(crate) async fn baseline(
    config: &Config,
    set: &MigrationSet,
    version: &str,
) -> Result<ExitCode> {
    let mut conn = connect(config).await?;
    let run_options = migrate::RunOptions::from_config(config);
    let marked = migrate::baseline_with(&mut conn, set, version, &run_options).await?;
    if marked.is_empty() {
        println!("Nothing to mark: every migration up to {version} is already recorded.");
    }
    for name in marked {
        println!("Marked {name} as applied (not run)");
    }
    Ok(ExitCode::SUCCESS)
}

/// After a rollback or redo, regenerates the schema file that `diesel.toml`
/// names, as `diesel migration revert` does, so `src/schema.rs` keeps
/// matching the database. Without the diesel CLI it prints the command.
pub(crate) fn sync_schema_file(cli: &Cli, config: &Config) {
    let Ok(project) = project::current() else {
        return;
    };
    let Some(file) = project::schema_file(&project) else {
        return;
    };
    // `--migrations-dir migrations` and its absolute path are the same
    // folder: compared as written they were not, and nothing was regenerated.
    if let Some(dir) = &cli.migrations_dir
        && !same_folder(dir, &project.migrations_dir)
    {
        // Another folder's migrations: the project's schema file is not theirs.
        eprintln!(
            "note: {} was not regenerated: --migrations-dir {} is not the project's migrations \
             folder ({})",
            file.display(),
            dir.display(),
            project.migrations_dir.display()
        );
        return;
    }
    match crate::drift::pull_in(&config.database_url, &project.root) {
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

/// Whether two paths name one folder (relative ones from the working directory).
fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `db setup`: create the database when missing, migrate, print the status.
pub(crate) async fn setup(config: &Config, set: &MigrationSet) -> Result<ExitCode> {
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
    // The service's own role, which row-level security applies to (created
    // when missing: roles are the cluster's, one serves every database).
    let role = roles::service_role(config);
    let password = crate::local::service_password(config)?;
    roles::grant_service_role(&mut conn, &role, password.as_deref())
        .await
        .with_context(|| {
            format!(
                "granting the service role {role} (creating it needs CREATEROLE; or create it \
                 yourself and run `db setup` again)"
            )
        })?;
    println!("Service role {role}: granted what it needs (row-level security applies to it).");
    // Its statements bounded by the server as each call is by the client:
    // what lets pooler mode send a statement alone (`DB_POOLER`).
    let limit = roles::bound_service_role(&mut conn, &role, &name, config.query_timeout)
        .await
        .with_context(|| format!("setting the service role {role}'s timeouts in {name}"))?;
    println!(
        "Service role {role}: statements bounded on the server at {} ms in {name} \
         (DB_QUERY_TIMEOUT_MS and the server backstop after it).",
        limit.as_millis()
    );
    let status = migrate::status(&mut conn, set).await?;
    print_status(&status);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print_report(report: &migrate::Report) {
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

pub(crate) fn print_status(status: &Status) {
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
