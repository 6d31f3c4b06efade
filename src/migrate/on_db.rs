//! `migrate` on the connection layer's handles: the engine sits on `crate::db`
//! (it opens its connections and reads its settings there), and these thin
//! entry points are defined here so that `crate::db` needs nothing of the
//! engine.

use crate::db::{AnyDb, Db, Pooler, SqliteDb, connect_for_migrations};
use crate::error::Result;

use super::{MigrationSet, Report, RunOptions, is_up_to_date, run_with, sqlite};

impl Db {
    /// Applies the embedded migrations. Safe to call from every replica at
    /// start-up: when nothing is pending this is one query on a pooled
    /// connection; otherwise the work runs under the migration lock on a
    /// dedicated connection to the migration URL.
    pub async fn migrate(&self) -> Result<Report> {
        self.migrate_with(MigrationSet::embedded()).await
    }

    /// Like `migrate`, with another set of PostgreSQL migrations.
    pub async fn migrate_with(&self, set: &MigrationSet) -> Result<Report> {
        let config = self.config();
        // In pooler mode the quick check is skipped: the migration session
        // (which `connect_for_migrations` refuses without
        // DATABASE_MIGRATION_URL) does it under the lock.
        if config.pooler == Pooler::None {
            let mut conn = self.conn().await?;
            if is_up_to_date(&mut conn, set).await? {
                return Ok(Report::default());
            }
        }
        // Connection errors keep their kind: an outage at start-up stays
        // retryable, a wrong URL stays a configuration error.
        let mut conn = connect_for_migrations(config, config.migration_url()).await?;
        let report = run_with(&mut conn, set, &RunOptions::from_config(config)).await?;
        // The service's role reads and writes what was just created (when it
        // is a role of its own and exists; `db setup` creates it).
        if !report.applied.is_empty() {
            crate::db::roles::grant_if_exists(&mut conn, &crate::db::roles::service_role(config))
                .await?;
        }
        Ok(report)
    }
}

impl SqliteDb {
    /// Applies the embedded SQLite migrations (`migrations_sqlite/`).
    pub async fn migrate(&self) -> Result<Report> {
        self.migrate_with(sqlite::embedded()).await
    }

    /// Applies a set of SQLite migrations (`crate::migrate::sqlite`: one
    /// `BEGIN EXCLUSIVE` transaction, the lock that holds across processes).
    /// When nothing is pending this is one read on a pooled connection.
    pub async fn migrate_with(&self, set: &MigrationSet) -> Result<Report> {
        let mut conn = self.conn().await?;
        if sqlite::is_up_to_date(&mut conn, set).await? {
            return Ok(Report::default());
        }
        Ok(sqlite::run_to(&mut conn, set, None).await?)
    }
}

impl AnyDb {
    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<Report> {
        match self {
            AnyDb::Pg(db) => db.migrate().await,
            AnyDb::Sqlite(db) => db.migrate().await,
        }
    }
}
