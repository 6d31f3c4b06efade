//! The commands that compare the live schema with the migrations: `diff`, `pull`.

use std::process::ExitCode;

use anyhow::Result;
use database::Config;
use database::migrate::{self, MigrationSet};

use crate::EXIT_NOT_UP_TO_DATE;
use crate::support::connect;

/// `db diff`: exits 3 when the live schema differs from what the migrations produce.
pub(crate) async fn diff(config: &Config, set: &MigrationSet) -> Result<ExitCode> {
    let mut conn = connect(config).await?;
    let status = migrate::status(&mut conn, set).await?;
    drop(conn);
    let drift = crate::drift::diff(&config.database_url, set).await?;
    Ok(report_drift(&status, &drift))
}

/// What `db diff` prints on either backend: a note naming the migrations
/// not applied yet, then the difference (exit 3) or "No drift".
pub(crate) fn report_drift(status: &migrate::Status, drift: &crate::drift::Drift) -> ExitCode {
    let pending = status.pending();
    if !pending.is_empty() {
        eprintln!(
            "note: {} migration(s) are not applied to this database yet ({}): the \
             difference below includes them; `db migrate` applies them",
            pending.len(),
            pending.join(", ")
        );
    }
    if drift.has_drift() {
        print!("{}", drift.diff);
        eprintln!("diff: the live schema differs from what the migrations produce");
        ExitCode::from(EXIT_NOT_UP_TO_DATE)
    } else {
        println!("No drift: the live schema is what the migrations produce.");
        ExitCode::SUCCESS
    }
}

/// `db pull`: print `src/schema.rs` for the live database.
pub(crate) fn pull(config: &Config) -> Result<ExitCode> {
    print!("{}", crate::drift::pull(&config.database_url)?);
    Ok(ExitCode::SUCCESS)
}
