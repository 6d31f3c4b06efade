//! The bookkeeping tables: Diesel's `__diesel_schema_migrations` (left
//! exactly as Diesel makes it), and the engine's own beside it.
//!
//! - `__database_migration_checksums`: per applied version, the SHA-256 of
//!   its `up.sql` as applied (`checksum`, compared by every deployed binary,
//!   never rewritten), the checksum of its normalised text
//!   (`checksum_normalized`, so line endings, trailing blanks and a BOM do
//!   not count as edits) and the folder name it was applied under. Rows
//!   cascade away when Diesel reverts a version.
//! - `__database_migration_scripts` (`scripts.rs`): the `up.sql` and
//!   `down.sql` text of each applied version, for `db push`.
//! - `__database_migration_progress`: per migration that runs outside a
//!   transaction and has started but not finished, how many statements
//!   completed, so an interrupted run resumes instead of failing.
//!
//! Reads use `to_jsonb(row)->>'column'` for the columns added after the
//! first release, so a database whose tables an older binary created still
//! reads (the columns appear on the next `migrate`).

use crate::db::Conn;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Integer, Nullable, Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::source::Migration;

/// Creates what is missing; run under the migration lock.
pub(super) const SETUP_SQL: &str = "\
CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
       version VARCHAR(50) PRIMARY KEY NOT NULL,
       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS __database_migration_checksums (
    version     varchar(50) PRIMARY KEY
        REFERENCES __diesel_schema_migrations (version) ON DELETE CASCADE,
    checksum    text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE __database_migration_checksums
    ADD COLUMN IF NOT EXISTS checksum_normalized text,
    ADD COLUMN IF NOT EXISTS name text;
CREATE TABLE IF NOT EXISTS __database_migration_progress (
    version             varchar(50) PRIMARY KEY,
    name                text        NOT NULL,
    -- normalised checksum of the statements that completed (not the whole file)
    done_checksum       text        NOT NULL,
    statements_done     integer     NOT NULL,
    statements_total    integer     NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS __database_migration_scripts (
    version  varchar(50) PRIMARY KEY
        REFERENCES __diesel_schema_migrations (version) ON DELETE CASCADE,
    up_sql   text NOT NULL,
    down_sql text
);";

/// One applied version as the database records it.
#[derive(Debug, Clone, QueryableByName)]
pub(super) struct AppliedRow {
    #[diesel(sql_type = Text)]
    pub version: String,
    #[diesel(sql_type = Timestamp)]
    pub run_on: NaiveDateTime,
    #[diesel(sql_type = Nullable<Text>)]
    pub checksum: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub checksum_normalized: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub name: Option<String>,
}

impl AppliedRow {
    /// Whether the local migration is what was applied: by the normalised
    /// checksum when one was recorded, else by the exact one (a row written
    /// by an older binary; the next `migrate` adds the normalised checksum
    /// while the file still matches exactly). `None` when no checksum is
    /// recorded yet (applied by the diesel CLI).
    pub fn matches(&self, m: &Migration) -> Option<bool> {
        match (&self.checksum_normalized, &self.checksum) {
            (Some(n), _) => Some(*n == m.checksum_normalized),
            (None, Some(c)) => Some(*c == m.checksum),
            (None, None) => None,
        }
    }
}

/// A migration that started outside a transaction and has not finished.
#[derive(Debug, Clone, QueryableByName)]
pub(super) struct ProgressRow {
    #[diesel(sql_type = Text)]
    pub version: String,
    /// `Migration::prefix_checksum(statements_done)` when it was recorded.
    #[diesel(sql_type = Text)]
    pub done_checksum: String,
    #[diesel(sql_type = Integer)]
    pub statements_done: i32,
    #[diesel(sql_type = Integer)]
    pub statements_total: i32,
}

#[derive(QueryableByName)]
struct Tables {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    migrations: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    checksums: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    progress: bool,
}

const APPLIED_WITH_CHECKSUMS: &str = "\
SELECT m.version, m.run_on, c.checksum,
       to_jsonb(c) ->> 'checksum_normalized' AS checksum_normalized,
       to_jsonb(c) ->> 'name' AS name
FROM __diesel_schema_migrations m
LEFT JOIN __database_migration_checksums c ON c.version = m.version
ORDER BY m.version";

const APPLIED_ONLY: &str = "\
SELECT version, run_on, NULL::text AS checksum, NULL::text AS checksum_normalized,
       NULL::text AS name
FROM __diesel_schema_migrations ORDER BY version";

/// Applied versions and unfinished ones. Works on a fresh database (both
/// empty), on one that only the diesel CLI has migrated, and on one whose
/// tables an older binary created.
pub(super) async fn read(
    conn: &mut Conn,
) -> Result<(Vec<AppliedRow>, Vec<ProgressRow>), DieselError> {
    let tables: Tables = diesel::sql_query(
        "SELECT to_regclass('__diesel_schema_migrations') IS NOT NULL AS migrations, \
                to_regclass('__database_migration_checksums') IS NOT NULL AS checksums, \
                to_regclass('__database_migration_progress') IS NOT NULL AS progress",
    )
    .get_result(conn)
    .await?;
    let applied = match (tables.migrations, tables.checksums) {
        (false, _) => Vec::new(),
        (true, true) => diesel::sql_query(APPLIED_WITH_CHECKSUMS).load(conn).await?,
        (true, false) => diesel::sql_query(APPLIED_ONLY).load(conn).await?,
    };
    let progress = if tables.progress {
        read_progress(conn).await?
    } else {
        Vec::new()
    };
    Ok((applied, progress))
}

/// The fast path's one query: applied versions with their checksums. Fails
/// when the tables do not exist yet (the caller then takes the slow path).
pub(super) async fn read_applied_fast(conn: &mut Conn) -> Result<Vec<AppliedRow>, DieselError> {
    diesel::sql_query(APPLIED_WITH_CHECKSUMS).load(conn).await
}

async fn read_progress(conn: &mut Conn) -> Result<Vec<ProgressRow>, DieselError> {
    diesel::sql_query(
        "SELECT version, done_checksum, statements_done, statements_total \
         FROM __database_migration_progress ORDER BY version",
    )
    .load(conn)
    .await
}

/// Records `m` as applied: Diesel's row and ours, in the caller's transaction.
pub(super) async fn insert_version(conn: &mut Conn, m: &Migration) -> Result<(), DieselError> {
    diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ($1)")
        .bind::<Text, _>(&m.version)
        .execute(conn)
        .await?;
    record_checksum(conn, m).await?;
    diesel::sql_query("DELETE FROM __database_migration_progress WHERE version = $1")
        .bind::<Text, _>(&m.version)
        .execute(conn)
        .await
        .map(drop)
}

/// Writes the checksums of `m` for a version applied without them (by the
/// diesel CLI, or by an older binary that recorded only the exact one). The
/// exact checksum already recorded is never changed: older binaries compare it.
pub(super) async fn record_checksum(conn: &mut Conn, m: &Migration) -> Result<(), DieselError> {
    // Wherever checksums are recorded, the scripts they sum are kept too (for `db push`).
    super::scripts::record(conn, m).await?;
    diesel::sql_query(
        "INSERT INTO __database_migration_checksums \
             (version, checksum, checksum_normalized, name) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (version) DO UPDATE SET \
             checksum_normalized = EXCLUDED.checksum_normalized, name = EXCLUDED.name",
    )
    .bind::<Text, _>(&m.version)
    .bind::<Text, _>(&m.checksum)
    .bind::<Text, _>(&m.checksum_normalized)
    .bind::<Text, _>(&m.name)
    .execute(conn)
    .await
    .map(drop)
}

/// Notes that the first `done` of `total` statements of `m` completed.
pub(super) async fn record_progress(
    conn: &mut Conn,
    m: &Migration,
    done: usize,
    total: usize,
) -> Result<(), DieselError> {
    diesel::sql_query(
        "INSERT INTO __database_migration_progress \
             (version, name, done_checksum, statements_done, statements_total) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (version) DO UPDATE SET statements_done = EXCLUDED.statements_done, \
             done_checksum = EXCLUDED.done_checksum, \
             statements_total = EXCLUDED.statements_total, updated_at = now()",
    )
    .bind::<Text, _>(&m.version)
    .bind::<Text, _>(&m.name)
    .bind::<Text, _>(m.prefix_checksum(done))
    .bind::<Integer, _>(done as i32)
    .bind::<Integer, _>(total as i32)
    .execute(conn)
    .await
    .map(drop)
}

/// Drops progress rows of versions that are applied (by the diesel CLI,
/// which knows nothing of them, after a partial run of ours).
pub(super) async fn forget_progress_of_applied(conn: &mut Conn) -> Result<(), DieselError> {
    diesel::sql_query(
        "DELETE FROM __database_migration_progress p USING __diesel_schema_migrations m \
         WHERE p.version = m.version",
    )
    .execute(conn)
    .await
    .map(drop)
}

/// Removes `version` from Diesel's table (our checksum row cascades).
pub(super) async fn delete_version(conn: &mut Conn, version: &str) -> Result<(), DieselError> {
    diesel::sql_query("DELETE FROM __diesel_schema_migrations WHERE version = $1")
        .bind::<Text, _>(version)
        .execute(conn)
        .await
        .map(drop)
}

#[derive(QueryableByName)]
struct IndexName {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Indexes left INVALID by an interrupted or failed `CREATE INDEX
/// CONCURRENTLY` (they cost writes and serve no reads), schema-qualified.
pub(super) async fn invalid_indexes(conn: &mut Conn) -> Result<Vec<String>, DieselError> {
    let rows: Vec<IndexName> = diesel::sql_query(
        "SELECT i.indexrelid::regclass::text AS name FROM pg_index i \
         WHERE NOT i.indisvalid ORDER BY 1",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

/// Whether index `name` (as written in the migration) exists, and if so
/// whether it is valid.
pub(super) async fn index_validity(
    conn: &mut Conn,
    name: &str,
) -> Result<Option<bool>, DieselError> {
    #[derive(QueryableByName)]
    struct Validity {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        valid: bool,
    }
    let rows: Vec<Validity> = diesel::sql_query(
        "SELECT i.indisvalid AS valid FROM pg_index i \
         WHERE i.indexrelid = to_regclass($1)",
    )
    .bind::<Text, _>(name)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map(|r| r.valid))
}
