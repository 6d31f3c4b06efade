//! Drift: does the live database still have the schema its migrations
//! produce? `diff` migrates a scratch database beside the live one, dumps
//! both with `pg_dump --schema-only` and compares; `pull` prints
//! `src/schema.rs` for the live database through `diesel print-schema`.

use std::process::Command;

use diesel_async::SimpleAsyncConnection;

use database::Config;
use database::db::{ConnString, redact_url, split_password, with_dbname};
use database::migrate::{self, MigrationSet};
use database::ops::{OpsError, OpsResult as Result};

/// The outcome of `diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// A unified diff from "what the migrations produce" to "what the live
    /// database has"; empty when they agree.
    pub diff: String,
}

impl Drift {
    /// Whether the live schema differs.
    pub fn has_drift(&self) -> bool {
        !self.diff.is_empty()
    }
}

/// `pg_dump --schema-only` of `url`, without the migration bookkeeping,
/// comments, settings and per-run keys: only what describes the schema.
pub fn schema_dump(url: &str) -> Result<String> {
    let (without_password, password) = split_password(url);
    let mut command = Command::new("pg_dump");
    command.args([
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--exclude-table=__diesel_schema_migrations",
        "--exclude-table=__database_migration*",
        "--dbname",
        &without_password,
    ]);
    // In the environment, not on the command line, where `ps` shows it.
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let out = command.output().map_err(|e| OpsError::Tool {
        tool: "pg_dump",
        message: format!("{e} (install postgresql-client)"),
    })?;
    if !out.status.success() {
        return Err(OpsError::Tool {
            tool: "pg_dump",
            message: String::from_utf8_lossy(&out.stderr)
                .replace(&without_password, &redact_url(url)),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("--")
                || l.starts_with("SET ")
                || l.starts_with("SELECT pg_catalog.set_config")
                || l.starts_with("\\restrict")
                || l.starts_with("\\unrestrict"))
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Compares the live database at `url` with a scratch database migrated
/// from `set`. Needs the right to create databases on that server; the
/// scratch database is dropped afterwards, also on error.
pub async fn diff(url: &str, set: &MigrationSet) -> Result<Drift> {
    let live_name = ConnString::parse(url).dbname.unwrap_or_default();
    let scratch = format!(
        "{}_drift_{}",
        live_name.chars().take(40).collect::<String>(),
        std::process::id()
    );
    let scratch_url = with_dbname(url, &scratch);
    let maintenance_url = with_dbname(url, "postgres");

    let config = Config::new(url);
    let connect = async |u: &str| database::db::connect_for_migrations(&config, u).await;
    let mut admin = connect(&maintenance_url).await?;
    let quoted = format!("\"{}\"", scratch.replace('"', "\"\""));
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await?;

    let compared = async {
        {
            let mut conn = connect(&scratch_url).await?;
            migrate::run(&mut conn, set).await?;
        }
        let expected = schema_dump(&scratch_url)?;
        let live = schema_dump(url)?;
        Ok::<_, OpsError>(unified_diff(&expected, &live))
    }
    .await;
    let dropped = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .await;
    let diff = compared?;
    dropped?;
    Ok(Drift { diff })
}

/// `diff` on SQLite: the schema of the file behind `conn` against an
/// in-memory database migrated from `set` (`migrate::sqlite::schema`: each
/// object's `CREATE` statement as SQLite keeps it).
pub async fn diff_sqlite(conn: &mut database::db::SqliteConn, set: &MigrationSet) -> Result<Drift> {
    let scratch = database::SqliteDb::new(Config::new("sqlite::memory:"))?;
    let mut fresh = scratch.conn().await?;
    migrate::sqlite::run_to(&mut fresh, set, None).await?;
    let expected = migrate::sqlite::schema(&mut fresh).await?;
    let live = migrate::sqlite::schema(conn).await?;
    Ok(Drift {
        diff: unified_diff(&expected, &live),
    })
}

fn unified_diff(expected: &str, live: &str) -> String {
    if expected == live {
        return String::new();
    }
    similar::TextDiff::from_lines(expected, live)
        .unified_diff()
        .context_radius(3)
        .header("migrations", "live database")
        .to_string()
}

/// `src/schema.rs` for the live database, generated by `diesel print-schema`
/// (the same generator, so the two always agree) with the `diesel.toml` found
/// from the current directory.
pub fn pull(url: &str) -> Result<String> {
    pull_in(
        url,
        &std::env::current_dir().map_err(|e| OpsError::config(e.to_string()))?,
    )
}

/// `pull`, with `diesel` run in `dir` (the project root, for its `diesel.toml`).
pub fn pull_in(url: &str, dir: &std::path::Path) -> Result<String> {
    // DATABASE_URL in the child's environment, not on its command line.
    let out = Command::new(std::env::var("DIESEL_BIN").unwrap_or_else(|_| "diesel".into()))
        .arg("print-schema")
        .env("DATABASE_URL", url)
        .current_dir(dir)
        .output()
        .map_err(|e| OpsError::Tool {
            tool: "diesel",
            message: format!("{e} (install it with scripts/diesel-cli)"),
        })?;
    if !out.status.success() {
        return Err(OpsError::Tool {
            tool: "diesel",
            message: String::from_utf8_lossy(&out.stderr).replace(url, &redact_url(url)),
        });
    }
    String::from_utf8(out.stdout).map_err(|e| OpsError::Tool {
        tool: "diesel",
        message: e.to_string(),
    })
}
