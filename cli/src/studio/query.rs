//! Running the studio's SQL, on either backend: every statement has binds
//! (values never enter SQL text) and returns each row as the columns' text
//! forms, so one row type serves every table.
//!
//! PostgreSQL: reads run in a `READ ONLY` transaction with a
//! `statement_timeout` and `TimeZone` UTC, through the crate's pool; each
//! row comes back as one JSON array of text. SQLite (`super::sqlite`):
//! reads run on a connection opened read-only for the request, inside one
//! transaction, with the same time limit (a progress handler); writes go
//! through the crate's pool, so their errors are the crate's typed errors.

use std::path::PathBuf;

use database::{Db, SqliteDb};
use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::sql_types::{Nullable, Text};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

use super::catalog::{Catalog, Table, quote_ident};
use super::stmt::{ConsoleError, Dialect, Row, Stmt, Value, Written};

/// Where the studio's statements run.
pub enum Source {
    Postgres(Db),
    /// Reads open `path` read-only; writes and the migration status use `db`.
    Sqlite {
        db: SqliteDb,
        path: PathBuf,
    },
}

impl Source {
    pub fn dialect(&self) -> Dialect {
        match self {
            Source::Postgres(_) => Dialect::Postgres,
            Source::Sqlite { .. } => Dialect::Sqlite,
        }
    }
}

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = Text)]
    r: String,
}

async fn load(conn: &mut database::Conn, stmt: &Stmt) -> Result<Vec<Row>, diesel::result::Error> {
    let mut q = diesel::sql_query(stmt.sql.clone()).into_boxed::<Pg>();
    for b in &stmt.binds {
        q = q.bind::<Nullable<Text>, _>(b.as_ref().map(Value::to_string));
    }
    let rows: Vec<JsonRow> = q.load(conn).await?;
    rows.into_iter()
        .map(|row| {
            serde_json::from_str::<Row>(&row.r)
                .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e) as Box<_>))
        })
        .collect()
}

/// Runs `stmts` in one read-only transaction bounded by `timeout_ms`; on
/// PostgreSQL see `read_postgres`, on SQLite `super::sqlite::read`.
pub async fn read(
    source: &Source,
    timeout_ms: u64,
    stmts: Vec<Stmt>,
) -> Result<Vec<Vec<Row>>, database::Error> {
    match source {
        Source::Postgres(db) => read_postgres(db, timeout_ms, stmts).await,
        Source::Sqlite { path, .. } => super::sqlite::read(path.clone(), timeout_ms, stmts).await,
    }
}

/// Runs `stmts` in one `READ ONLY` transaction bounded by `timeout_ms`,
/// which is always rolled back: a read has nothing to commit, and a rollback
/// also undoes any `set_config(..., false)` a statement slipped past the
/// console's checks. Session advisory locks survive a rollback: they are
/// released inside the transaction (after the statements' savepoint, so
/// also when one failed), on the session that took them; after it, behind a
/// transaction-mode pooler, the unlock could reach another client's session.
/// Names resolve in schema `public` only (the catalog's).
async fn read_postgres(
    db: &Db,
    timeout_ms: u64,
    stmts: Vec<Stmt>,
) -> Result<Vec<Vec<Row>>, database::Error> {
    /// Carries the rows out of the transaction as its "error", so that
    /// `transaction` rolls back.
    enum Outcome {
        Read(Vec<Vec<Row>>),
        Failed(database::Error),
    }
    impl From<diesel::result::Error> for Outcome {
        fn from(e: diesel::result::Error) -> Self {
            Outcome::Failed(e.into())
        }
    }
    let mut conn = db.conn().await?;
    let setup = format!(
        "SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {timeout_ms}; \
         SET LOCAL TimeZone = 'UTC'; SET LOCAL search_path = public"
    );
    let outcome = conn
        .transaction(async move |c| {
            c.batch_execute(&setup).await?;
            // A nested transaction is a savepoint: a failed statement rolls
            // back to it and the transaction stays usable for the unlock.
            let read = c
                .transaction(async |c| {
                    let mut out = Vec::with_capacity(stmts.len());
                    for s in &stmts {
                        out.push(load(c, s).await?);
                    }
                    Ok::<_, Outcome>(out)
                })
                .await;
            let unlocked = c.batch_execute("SELECT pg_advisory_unlock_all()").await;
            Err::<(), _>(match (read, unlocked) {
                (Err(failed), _) => failed,
                (Ok(_), Err(e)) => e.into(),
                (Ok(rows), Ok(())) => Outcome::Read(rows),
            })
        })
        .await;
    match outcome {
        Err(Outcome::Read(rows)) => Ok(rows),
        Err(Outcome::Failed(e)) => Err(e),
        Ok(()) => unreachable!("the closure never returns Ok"),
    }
}

/// Runs `stmt` in one read-write transaction (bounded by `timeout_ms` on
/// PostgreSQL; SQLite's writes are single rows by key and wait at most the
/// crate's busy timeout for the write lock).
pub async fn write(
    source: &Source,
    timeout_ms: u64,
    stmt: Stmt,
) -> Result<Written, database::Error> {
    let db = match source {
        Source::Postgres(db) => db,
        Source::Sqlite { db, .. } => return super::sqlite::write(db, stmt).await,
    };
    let mut conn = db.conn().await?;
    let setup = format!(
        "SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL TimeZone = 'UTC'; \
         SET LOCAL search_path = public"
    );
    let returned = conn
        .transaction(async move |c| {
            c.batch_execute(&setup).await?;
            Ok::<_, database::Error>(load(c, &stmt).await?)
        })
        .await?;
    Ok(Written {
        rows: returned.len(),
        returned,
    })
}

/// The select list of `table`'s columns as text: on PostgreSQL one JSON
/// array of text named `r`; on SQLite the columns themselves (booleans as
/// `true`/`false`, the text PostgreSQL shows and the forms send back).
pub fn select_list(table: &Table) -> String {
    match table.dialect {
        Dialect::Postgres => {
            let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            row_json(&names)
        }
        Dialect::Sqlite => table
            .columns
            .iter()
            .map(sqlite_shown)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A SQLite column as the studio shows it: a boolean as `true`/`false`, any
/// other column as it is.
pub fn sqlite_shown(column: &super::catalog::Column) -> String {
    let q = quote_ident(&column.name);
    if column.kind == super::catalog::Kind::Bool {
        format!("CASE WHEN {q} IS NULL THEN NULL WHEN {q} THEN 'true' ELSE 'false' END")
    } else {
        q
    }
}

/// `SELECT` of one count as a row (`count_sql(Dialect::Postgres, "t", "a = $1")`).
pub fn count_sql(dialect: Dialect, table: &str, cond: &str) -> String {
    match dialect {
        Dialect::Postgres => format!(
            "SELECT json_build_array(count(*)::text)::text AS r FROM {} WHERE {cond}",
            quote_ident(table)
        ),
        Dialect::Sqlite => format!("SELECT count(*) FROM {} WHERE {cond}", quote_ident(table)),
    }
}

/// Runs one console statement (already checked by `super::sql::refusal` on
/// PostgreSQL): the column names and at most `max_rows` rows.
pub async fn console(
    source: &Source,
    timeout_ms: u64,
    sql: &str,
    max_rows: usize,
) -> Result<(Vec<String>, Vec<Row>), ConsoleError> {
    match source {
        Source::Sqlite { path, .. } => {
            super::sqlite::console(path.clone(), timeout_ms, sql.to_owned(), max_rows).await
        }
        Source::Postgres(db) => {
            // Each row becomes [name, value, name, value, ...] in column order
            // (json_each keeps a json object's order and duplicate names).
            let wrapped = Stmt {
                sql: format!(
                    "SELECT coalesce((SELECT json_agg(v.x ORDER BY e.ord, v.k) \
                       FROM json_each_text(row_to_json(t)) WITH ORDINALITY e(key, value, ord), \
                       LATERAL (VALUES (0, e.key), (1, e.value)) v(k, x)), '[]')::text AS r \
                     FROM ({sql}\n) t LIMIT {max_rows}"
                ),
                ..Stmt::default()
            };
            let rows = read_postgres(db, timeout_ms, vec![wrapped])
                .await
                .map_err(ConsoleError::Failed)?
                .remove(0);
            let names = <[Row]>::first(&rows)
                .map(|r| {
                    r.iter()
                        .step_by(2)
                        .map(|n| n.clone().unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default();
            let rows = rows
                .into_iter()
                .map(|r| r.into_iter().skip(1).step_by(2).collect())
                .collect();
            Ok((names, rows))
        }
    }
}

/// The select list that turns `columns` into one JSON array of text named `r`.
fn row_json(columns: &[&str]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| format!("{}::text", quote_ident(c)))
        .collect();
    // A function takes at most 100 arguments: wider tables concatenate
    // arrays of 100 (jsonb keeps the order).
    match cols.len() {
        0 => "'[]'::text AS r".into(),
        1..=100 => format!("json_build_array({})::text AS r", cols.join(", ")),
        _ => {
            let parts: Vec<String> = cols
                .chunks(100)
                .map(|c| format!("jsonb_build_array({})", c.join(", ")))
                .collect();
            format!("({})::text AS r", parts.join(" || "))
        }
    }
}

/// The whole catalog of the database `studio` browses.
pub async fn read_catalog(studio_db: &Source) -> Result<Catalog, database::Error> {
    match studio_db {
        Source::Postgres(db) => {
            let mut conn = db.conn().await?;
            Ok(super::catalog::read_postgres(&mut conn).await?)
        }
        Source::Sqlite { path, .. } => super::sqlite::catalog(path.clone()).await,
    }
}
