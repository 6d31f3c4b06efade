//! Running the studio's SQL: every statement has text binds (values never
//! enter SQL text) and returns each row as one JSON array of the columns'
//! text forms, so one row type serves every table.
//!
//! Reads run in a `READ ONLY` transaction with a `statement_timeout` and
//! `TimeZone` UTC; writes in an ordinary transaction, all or nothing.

use database::Db;
use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::sql_types::{Nullable, Text};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

/// One statement and its bind values (`$1`, `$2`, ... in order; `None` is NULL).
#[derive(Debug, Clone, Default)]
pub struct Stmt {
    pub sql: String,
    pub binds: Vec<Option<String>>,
}

impl Stmt {
    pub fn new(sql: impl Into<String>) -> Stmt {
        Stmt {
            sql: sql.into(),
            binds: Vec::new(),
        }
    }

    /// Adds a bind value and returns its placeholder (`$n`).
    pub fn bind(&mut self, value: Option<String>) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }
}

/// A row: the columns' text forms (NULL is `None`).
pub type Row = Vec<Option<String>>;

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = Text)]
    r: String,
}

async fn load(conn: &mut database::Conn, stmt: &Stmt) -> Result<Vec<Row>, diesel::result::Error> {
    let mut q = diesel::sql_query(stmt.sql.clone()).into_boxed::<Pg>();
    for b in &stmt.binds {
        q = q.bind::<Nullable<Text>, _>(b.clone());
    }
    let rows: Vec<JsonRow> = q.load(conn).await?;
    rows.into_iter()
        .map(|row| {
            serde_json::from_str::<Row>(&row.r)
                .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e) as Box<_>))
        })
        .collect()
}

/// Runs `stmts` in one `READ ONLY` transaction bounded by `timeout_ms`,
/// which is always rolled back: a read has nothing to commit, and a rollback
/// also undoes any `set_config(..., false)` a statement slipped past the
/// console's checks. Session advisory locks survive a rollback: they are
/// released after it. Names resolve in schema `public` only (the catalog's).
pub async fn read(
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
            let mut out = Vec::with_capacity(stmts.len());
            for s in &stmts {
                out.push(load(c, s).await?);
            }
            Err::<(), _>(Outcome::Read(out))
        })
        .await;
    unlock_advisory(&mut conn).await?;
    match outcome {
        Err(Outcome::Read(rows)) => Ok(rows),
        Err(Outcome::Failed(e)) => Err(e),
        Ok(()) => unreachable!("the closure never returns Ok"),
    }
}

/// Releases session-level advisory locks a statement may have taken.
async fn unlock_advisory(conn: &mut database::Conn) -> Result<(), database::Error> {
    conn.batch_execute("SELECT pg_advisory_unlock_all()")
        .await?;
    Ok(())
}

/// Runs `stmts` in one read-write transaction bounded by `timeout_ms`: all
/// of them or none.
pub async fn write(
    db: &Db,
    timeout_ms: u64,
    stmts: Vec<Stmt>,
) -> Result<Vec<Vec<Row>>, database::Error> {
    let mut conn = db.conn().await?;
    let setup = format!(
        "SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL TimeZone = 'UTC'; \
         SET LOCAL search_path = public"
    );
    conn.transaction(async move |c| {
        c.batch_execute(&setup).await?;
        let mut out = Vec::with_capacity(stmts.len());
        for s in &stmts {
            out.push(load(c, s).await?);
        }
        Ok::<_, database::Error>(out)
    })
    .await
}

/// The select list that turns `columns` into one JSON array of text named `r`.
pub fn row_json(columns: &[&str], alias: Option<&str>) -> String {
    let prefix = alias.map(|a| format!("{a}.")).unwrap_or_default();
    let cols: Vec<String> = columns
        .iter()
        .map(|c| format!("{prefix}{}::text", super::catalog::quote_ident(c)))
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
