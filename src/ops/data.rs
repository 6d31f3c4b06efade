//! Wiping data: `reset` empties every table but keeps the schema and the
//! migration history; `nuke` drops everything in the `public` schema,
//! migration tables included. Both run in one transaction: all or nothing.
//! Callers check `ops::guard` first. `reset` needs a superuser (it bypasses
//! the append-only trigger of the audit log for its own transaction).

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::{Conn, Result};

#[derive(diesel::QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Empties every table except the migration bookkeeping (every table whose
/// name starts with `__`: Diesel's history, the checksums, the applied
/// scripts `db push` reverts with, the progress of non-transactional
/// migrations), in one TRUNCATE. Returns the tables emptied.
pub async fn reset(conn: &mut Conn) -> Result<Vec<String>> {
    conn.transaction(async |conn| {
        let tables: Vec<String> = diesel::sql_query(
            "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') \
               AND tablename NOT LIKE '\\_\\_%' ESCAPE '\\' \
             ORDER BY 1",
        )
        .load::<TableName>(conn)
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
        if !tables.is_empty() {
            // Append-only tables (admin_audit_log) refuse TRUNCATE through a
            // trigger. A reset is the one deliberate exception: replica mode
            // skips ordinary triggers for this transaction only, and needs a
            // superuser, which is what a development database has.
            conn.batch_execute("SET LOCAL session_replication_role = replica")
                .await?;
            // One statement, so foreign keys between the tables are no obstacle.
            conn.batch_execute(&format!(
                "TRUNCATE {} RESTART IDENTITY CASCADE",
                tables.join(", ")
            ))
            .await?;
        }
        Ok(tables)
    })
    .await
}

/// Drops the `public` schema with everything in it (tables, types,
/// functions, the migration history) and recreates it empty, owned and
/// granted as PostgreSQL creates it.
pub async fn nuke(conn: &mut Conn) -> Result<()> {
    conn.transaction(async |conn| {
        conn.batch_execute(
            "DROP SCHEMA IF EXISTS public CASCADE;
             CREATE SCHEMA public;
             COMMENT ON SCHEMA public IS 'standard public schema';
             GRANT USAGE ON SCHEMA public TO PUBLIC;
             DO $$ BEGIN
                 -- PostgreSQL 15+: the database owner owns public.
                 IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_database_owner') THEN
                     ALTER SCHEMA public OWNER TO pg_database_owner;
                 ELSE
                     GRANT CREATE ON SCHEMA public TO PUBLIC;
                 END IF;
             END $$;",
        )
        .await?;
        Ok(())
    })
    .await
}
