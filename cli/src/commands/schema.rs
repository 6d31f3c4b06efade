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
    let drift = crate::drift::diff(&config.database_url, set).await?;
    if drift.has_drift() {
        print!("{}", drift.diff);
        eprintln!("diff: the live schema differs from what the migrations produce");
        Ok(ExitCode::from(EXIT_NOT_UP_TO_DATE))
    } else {
        println!("No drift: the live schema is what the migrations produce.");
        Ok(ExitCode::SUCCESS)
    }
}

/// `db pull`: print `src/schema.rs` for the live database.
pub(crate) fn pull(config: &Config) -> Result<ExitCode> {
    print!("{}", crate::drift::pull(&config.database_url)?);
    Ok(ExitCode::SUCCESS)
}
