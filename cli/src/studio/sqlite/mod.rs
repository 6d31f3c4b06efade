//! The studio on SQLite: its catalog, its reads and its console on a
//! connection opened read-only for the request, and its writes through the
//! crate's pool.
//!
//! Reads use SQLite's C API directly (the bundled library Diesel links):
//! Diesel's SQLite connection has no read-only open, no way to interrupt a
//! running statement from another thread (`sqlite3_interrupt`, SQLite's only
//! way to bound one) and no way to ask a prepared statement whether it
//! writes. So a read here is what a PostgreSQL read is: one transaction that
//! cannot write (the file is opened with `SQLITE_OPEN_READONLY`, so no
//! statement, `PRAGMA` or `ATTACH` can change it) and that is cancelled when
//! `DB_STUDIO_STATEMENT_TIMEOUT_MS` has passed (0: no limit, as on
//! PostgreSQL). Writes go through the crate's pool so that their errors are
//! the crate's typed errors.
//!
//! One file per concern: `reader.rs` (the read-only connection through
//! SQLite's C API), `catalog.rs` (tables, columns, keys from SQLite's
//! pragmas), and this file (the studio's reads, console and writes).

mod catalog;
mod reader;

use std::path::PathBuf;

use database::SqliteDb;
use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Binary, Double, Nullable, Text};
use diesel::sqlite::Sqlite;

use super::stmt::{ConsoleError, Row, Stmt, Value, Written};
pub use catalog::catalog;
use reader::{Failure, on_read_only};

/// `sql` from its first character that is not blank, a comment or `also`.
fn skip_noise(sql: &str, also: char) -> &str {
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == also);
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map(|(_, r)| r).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map(|(_, r)| r).unwrap_or("");
        } else {
            return rest;
        }
    }
}

/// Whether `sql` holds nothing but blanks, `;` and comments.
pub(super) fn blank(sql: &str) -> bool {
    skip_noise(sql, ';').is_empty()
}

/// The first keyword of `sql`, upper-cased (comments and `(` skipped).
fn first_keyword(sql: &str) -> String {
    skip_noise(sql, '(')
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// `query::read` on SQLite: `stmts` in one read-only transaction.
pub async fn read(
    path: PathBuf,
    timeout_ms: u64,
    stmts: Vec<Stmt>,
) -> Result<Vec<Vec<Row>>, database::Error> {
    on_read_only(path, timeout_ms, move |conn| {
        stmts
            .iter()
            .map(|s| {
                conn.run(&s.sql, &s.binds, usize::MAX, false)
                    .map(|(_, rows)| rows)
                    .map_err(|f| conn.error(f))
            })
            .collect()
    })
    .await
}

/// `query::console` on SQLite: one query (`SELECT`, `VALUES`, `WITH`), which
/// SQLite itself confirms does not write, on the read-only connection.
pub async fn console(
    path: PathBuf,
    timeout_ms: u64,
    sql: String,
    max_rows: usize,
) -> Result<(Vec<String>, Vec<Row>), ConsoleError> {
    let keyword = first_keyword(&sql);
    if !matches!(keyword.as_str(), "SELECT" | "VALUES" | "WITH") {
        return Err(ConsoleError::Refused(if keyword.is_empty() {
            "empty statement".into()
        } else {
            format!(
                "only queries (SELECT, VALUES, WITH ... SELECT) run in the console; this is {keyword}"
            )
        }));
    }
    let outcome = on_read_only(path, timeout_ms, move |conn| {
        Ok(match conn.run(&sql, &[], max_rows, true) {
            Ok(result) => Ok(result),
            Err(Failure::Refused(why)) => Err(ConsoleError::Refused(why)),
            Err(f) => Err(ConsoleError::Failed(conn.error(f))),
        })
    })
    .await;
    match outcome {
        Ok(result) => result,
        Err(e) => Err(ConsoleError::Failed(e)),
    }
}

/// `query::write` on SQLite: `stmt` in one `BEGIN IMMEDIATE` transaction
/// (the write lock first, so it never fails half-way for a lock).
pub async fn write(db: &SqliteDb, stmt: Stmt) -> Result<Written, database::Error> {
    let mut conn = db.conn().await?;
    let rows = conn
        .spawn_blocking(move |c| {
            c.immediate_transaction(|c| {
                let mut q = diesel::sql_query(stmt.sql).into_boxed::<Sqlite>();
                for b in stmt.binds {
                    q = match b {
                        None => q.bind::<Nullable<Text>, _>(None::<String>),
                        Some(Value::Text(t)) => q.bind::<Text, _>(t),
                        Some(Value::Int(n)) => q.bind::<BigInt, _>(n),
                        Some(Value::Real(x)) => q.bind::<Double, _>(x),
                        Some(Value::Blob(bytes)) => q.bind::<Binary, _>(bytes),
                    };
                }
                q.execute(c)
            })
        })
        .await
        .map_err(database::db::sqlite::error)?;
    Ok(Written {
        rows,
        returned: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blank_tails_and_query_keywords_pass() {
        assert!(blank(" ; -- done\n /* c */ "));
        assert!(!blank("; DELETE FROM users"));
        assert_eq!(first_keyword("/* x */ (select 1)"), "SELECT");
        assert_eq!(first_keyword("-- c\nPRAGMA query_only = 0"), "PRAGMA");
    }
}
