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

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use database::db::sqlite::BUSY_TIMEOUT;
use database::error::TimeoutKind;
use database::{AnyPooledConn, Db};
use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Binary, Double, Nullable, Text};
use diesel::sqlite::Sqlite;
use libsqlite3_sys as ffi;

use super::catalog::{
    Catalog, Column, Dialect, EXACT_COUNT_LIMIT, ForeignKey, Kind, RowCount, Table, quote_ident,
};
use super::query::{ConsoleError, Row, Stmt, Value, Written};

/// The text form of bytes: a 16-byte value as a UUID (how the crate stores
/// ids on SQLite), anything else as `\x` and hex (PostgreSQL's `bytea` form).
pub fn blob_text(bytes: &[u8]) -> String {
    match uuid::Uuid::from_slice(bytes) {
        Ok(id) => id.hyphenated().to_string(),
        Err(_) => format!("\\x{}", hex::encode(bytes)),
    }
}

/// The bytes a text form names (`blob_text`'s inverse).
pub fn blob_of(text: &str) -> Option<Vec<u8>> {
    if let Some(h) = text.strip_prefix("\\x") {
        return hex::decode(h).ok();
    }
    uuid::Uuid::parse_str(text)
        .ok()
        .map(|id| id.as_bytes().to_vec())
}

/// Why a statement on the read-only connection did not give rows.
enum Failure {
    Refused(String),
    Sqlite { code: c_int, message: String },
}

/// The longest text or BLOB a read returns: a bigger value (`zeroblob(1e9)`
/// in the console) is an error, not gigabytes in memory.
const MAX_VALUE_BYTES: c_int = 16 << 20;

/// The handle of an open read-only connection, for the watchdog.
struct Handle(*mut ffi::sqlite3);

// SAFETY: only `sqlite3_interrupt` is called through it from another thread,
// which SQLite allows while the connection is open; `Watch` guarantees that
// (the connection takes its handle out before it closes).
unsafe impl Send for Handle {}

/// Where the watchdog finds the connection to interrupt: `None` before it
/// opens and after it closes.
type Watch = Arc<Mutex<Option<Handle>>>;

/// A connection opened read-only for one request.
struct ReadOnly {
    db: *mut ffi::sqlite3,
    watch: Watch,
    timeout_ms: u64,
}

/// A prepared statement, finalized when dropped.
struct Prepared(*mut ffi::sqlite3_stmt);

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: a statement from sqlite3_prepare_v2 (or null, which is a no-op).
        unsafe { ffi::sqlite3_finalize(self.0) };
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        // The watchdog may no longer reach the handle once it is closed.
        self.watch.lock().unwrap_or_else(|p| p.into_inner()).take();
        // SAFETY: the handle from sqlite3_open_v2 (also after a failed open);
        // its statements are finalized already. Closing ends the transaction.
        unsafe { ffi::sqlite3_close(self.db) };
    }
}

impl ReadOnly {
    fn open(path: &Path, timeout_ms: u64, watch: Watch) -> Result<ReadOnly, database::Error> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| database::Error::Config("the SQLite path contains a NUL byte".into()))?;
        let mut db = ptr::null_mut();
        // SAFETY: a NUL-terminated path and an out-pointer; the handle is
        // closed by `Drop` whatever the result.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                c_path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READONLY | ffi::SQLITE_OPEN_FULLMUTEX,
                ptr::null(),
            )
        };
        let conn = ReadOnly {
            db,
            watch,
            timeout_ms,
        };
        if rc != ffi::SQLITE_OK {
            return Err(database::Error::Config(format!(
                "cannot open SQLite database {} read-only: {}",
                path.display(),
                conn.message()
            )));
        }
        let busy = match timeout_ms {
            0 => BUSY_TIMEOUT.as_millis(),
            ms => BUSY_TIMEOUT.as_millis().min(u128::from(ms)),
        } as c_int;
        // SAFETY: a valid, open handle.
        unsafe {
            ffi::sqlite3_busy_timeout(conn.db, busy);
            ffi::sqlite3_limit(conn.db, ffi::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES);
        }
        *conn.watch.lock().unwrap_or_else(|p| p.into_inner()) = Some(Handle(conn.db));
        conn.exec("BEGIN")?;
        Ok(conn)
    }

    fn message(&self) -> String {
        if self.db.is_null() {
            return "out of memory".into();
        }
        // SAFETY: a valid handle; errmsg returns a NUL-terminated string.
        unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db)) }
            .to_string_lossy()
            .into_owned()
    }

    fn failure(&self, code: c_int) -> Failure {
        Failure::Sqlite {
            code,
            message: self.message(),
        }
    }

    /// The crate's error for a failure.
    fn error(&self, failure: Failure) -> database::Error {
        match failure {
            Failure::Refused(why) => database::Error::Unsupported(why),
            Failure::Sqlite { code, message } => match code & 0xff {
                ffi::SQLITE_INTERRUPT => database::Error::Timeout {
                    kind: TimeoutKind::Statement,
                    message: format!(
                        "cancelled after {} ms (DB_STUDIO_STATEMENT_TIMEOUT_MS)",
                        self.timeout_ms
                    ),
                },
                ffi::SQLITE_TOOBIG => database::Error::Unsupported(format!(
                    "a value is larger than the studio shows ({} MiB): {message}",
                    MAX_VALUE_BYTES >> 20
                )),
                ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => database::Error::Unavailable(message),
                _ => database::db::sqlite::error(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::Unknown,
                    Box::new(message),
                )),
            },
        }
    }

    fn exec(&self, sql: &str) -> Result<(), database::Error> {
        self.run(sql, &[], 0, false)
            .map(|_| ())
            .map_err(|f| self.error(f))
    }

    /// Runs one statement with `binds` and returns its column names and at
    /// most `max_rows` rows. `console`: refuse anything after the first
    /// statement, and any statement that could write.
    fn run(
        &self,
        sql: &str,
        binds: &[Option<Value>],
        max_rows: usize,
        console: bool,
    ) -> Result<(Vec<String>, Vec<Row>), Failure> {
        let mut raw = ptr::null_mut();
        let mut tail: *const c_char = ptr::null();
        let len = c_int::try_from(sql.len()).map_err(|_| Failure::Refused("too long".into()))?;
        // SAFETY: `sql` is valid for `len` bytes; the statement is finalized by `Prepared`.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                self.db,
                sql.as_ptr() as *const c_char,
                len,
                &mut raw,
                &mut tail,
            )
        };
        let stmt = Prepared(raw);
        if rc != ffi::SQLITE_OK {
            return Err(self.failure(rc));
        }
        if stmt.0.is_null() {
            return Err(Failure::Refused("empty statement".into()));
        }
        if console {
            let used = (tail as usize).saturating_sub(sql.as_ptr() as usize);
            // The tail is where SQLite stopped reading: after the first
            // statement (no tail at all is read as "more follows").
            if tail.is_null() || !sql.get(used..).is_some_and(blank) {
                return Err(Failure::Refused("one statement at a time".into()));
            }
            // SAFETY: a prepared statement.
            if unsafe { ffi::sqlite3_stmt_readonly(stmt.0) } == 0 {
                return Err(Failure::Refused(
                    "this statement writes: the console runs queries only".into(),
                ));
            }
        }
        let too_long = |n: usize| {
            c_int::try_from(n).map_err(|_| Failure::Refused("a bind value is too long".into()))
        };
        for (i, b) in binds.iter().enumerate() {
            let at = (i + 1) as c_int;
            let len = match b {
                Some(Value::Text(t)) => too_long(t.len())?,
                Some(Value::Blob(bytes)) => too_long(bytes.len())?,
                _ => 0,
            };
            // SAFETY: a prepared statement; SQLITE_TRANSIENT makes SQLite copy the bytes.
            let rc = unsafe {
                match b {
                    None => ffi::sqlite3_bind_null(stmt.0, at),
                    Some(Value::Text(t)) => ffi::sqlite3_bind_text(
                        stmt.0,
                        at,
                        t.as_ptr() as *const c_char,
                        len,
                        ffi::SQLITE_TRANSIENT(),
                    ),
                    Some(Value::Int(n)) => ffi::sqlite3_bind_int64(stmt.0, at, *n),
                    Some(Value::Real(x)) => ffi::sqlite3_bind_double(stmt.0, at, *x),
                    Some(Value::Blob(bytes)) => ffi::sqlite3_bind_blob(
                        stmt.0,
                        at,
                        bytes.as_ptr() as *const c_void,
                        len,
                        ffi::SQLITE_TRANSIENT(),
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(self.failure(rc));
            }
        }
        // SAFETY: a prepared statement; column names live until it is finalized
        // and are copied here.
        let count = unsafe { ffi::sqlite3_column_count(stmt.0) };
        let names = (0..count)
            .map(|i| unsafe {
                let p = ffi::sqlite3_column_name(stmt.0, i);
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            })
            .collect();
        let mut rows = Vec::new();
        loop {
            // SAFETY: a prepared statement with every parameter bound.
            match unsafe { ffi::sqlite3_step(stmt.0) } {
                ffi::SQLITE_ROW => {
                    if rows.len() == max_rows {
                        break;
                    }
                    rows.push((0..count).map(|i| column_text(&stmt, i)).collect());
                }
                ffi::SQLITE_DONE => break,
                rc => return Err(self.failure(rc)),
            }
        }
        Ok((names, rows))
    }
}

/// Column `i` of the current row as text (`None` for NULL).
fn column_text(stmt: &Prepared, i: c_int) -> Option<String> {
    // SAFETY: `stmt` is on a row and `i` is below the column count; text and
    // blob pointers are valid for `sqlite3_column_bytes` bytes until the next
    // step, and are copied here.
    unsafe {
        match ffi::sqlite3_column_type(stmt.0, i) {
            ffi::SQLITE_NULL => None,
            ffi::SQLITE_INTEGER => Some(ffi::sqlite3_column_int64(stmt.0, i).to_string()),
            ffi::SQLITE_FLOAT => Some(ffi::sqlite3_column_double(stmt.0, i).to_string()),
            ffi::SQLITE_BLOB => {
                let p = ffi::sqlite3_column_blob(stmt.0, i) as *const u8;
                let n = ffi::sqlite3_column_bytes(stmt.0, i) as usize;
                let bytes = if p.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(p, n)
                };
                Some(blob_text(bytes))
            }
            _ => {
                let p = ffi::sqlite3_column_text(stmt.0, i);
                let n = ffi::sqlite3_column_bytes(stmt.0, i) as usize;
                if p.is_null() {
                    return Some(String::new());
                }
                Some(String::from_utf8_lossy(std::slice::from_raw_parts(p, n)).into_owned())
            }
        }
    }
}

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
fn blank(sql: &str) -> bool {
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

/// Runs `work` on a read-only connection to `path`, on a blocking thread,
/// while a watchdog interrupts it once `timeout_ms` has passed (and again
/// every 20 ms, so a statement started after the first interrupt stops too).
async fn on_read_only<T: Send + 'static>(
    path: PathBuf,
    timeout_ms: u64,
    work: impl FnOnce(&ReadOnly) -> Result<T, database::Error> + Send + 'static,
) -> Result<T, database::Error> {
    let watch: Watch = Arc::default();
    let watchdog = (timeout_ms > 0).then(|| {
        let watch = watch.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(timeout_ms)).await;
            loop {
                if let Some(handle) = &*watch.lock().unwrap_or_else(|p| p.into_inner()) {
                    // SAFETY: the handle is open while it is in `watch` (see `Handle`).
                    unsafe { ffi::sqlite3_interrupt(handle.0) };
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    });
    let outcome = tokio::task::spawn_blocking(move || {
        let conn = ReadOnly::open(&path, timeout_ms, watch)?;
        work(&conn)
    })
    .await;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    outcome.map_err(|e| database::Error::Unavailable(format!("the studio's SQLite reader: {e}")))?
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
pub async fn write(db: &Db, stmt: Stmt) -> Result<Written, database::Error> {
    let AnyPooledConn::Sqlite(mut conn) = db.any_conn().await? else {
        return Err(database::Error::Unsupported(
            "not a SQLite database".to_owned(),
        ));
    };
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

/// How a declared SQLite type is shown and edited (SQLite's affinity rules,
/// plus the names the crate's SQLite migrations use).
fn kind_of(declared: &str) -> Kind {
    let t = declared.to_ascii_uppercase();
    if t.contains("BOOL") {
        Kind::Bool
    } else if t.contains("JSON") {
        Kind::Json
    } else if t.contains("TIMESTAMP") || t.contains("DATE") || t.contains("TIME") {
        Kind::Timestamp
    } else if t.contains("INT")
        || t.contains("REAL")
        || t.contains("FLOA")
        || t.contains("DOUB")
        || t.contains("NUM")
        || t.contains("DEC")
    {
        Kind::Number
    } else if t.contains("BLOB") || t.is_empty() {
        Kind::Bytes
    } else {
        Kind::Text
    }
}

/// The labels of `CHECK (<column> IN ('a', 'b', ...))` constraints in a
/// table's SQL: SQLite's form of an enum (as in `migrations_sqlite/`).
fn check_in_labels(sql: &str) -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    let upper = sql.to_ascii_uppercase();
    let mut from = 0;
    while let Some(at) = upper[from..].find("CHECK") {
        let start = from + at + "CHECK".len();
        from = start;
        let rest = sql[start..].trim_start();
        let Some(rest) = rest.strip_prefix('(') else {
            continue;
        };
        let rest = rest.trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '"' | '`'))
            .collect();
        let rest = rest[name.len()..].trim_start();
        let Some(rest) = rest
            .get(..2)
            .filter(|k| k.eq_ignore_ascii_case("IN"))
            .map(|_| rest[2..].trim_start())
        else {
            continue;
        };
        let Some(mut rest) = rest.strip_prefix('(') else {
            continue;
        };
        let mut labels = Vec::new();
        loop {
            rest = rest.trim_start();
            let Some(r) = rest.strip_prefix('\'') else {
                break;
            };
            let mut label = String::new();
            let mut chars = r.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if r[i + 1..].starts_with('\'') {
                        label.push('\'');
                        chars.next();
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                } else {
                    label.push(c);
                }
            }
            let Some(end) = end else { break };
            labels.push(label);
            rest = r[end..].trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r,
                None => break,
            }
        }
        if rest.starts_with(')') && !labels.is_empty() {
            found.insert(name.trim_matches(['"', '`']).to_owned(), labels);
        }
    }
    found
}

/// `ON DELETE` as SQLite spells it, in PostgreSQL's one-letter code.
fn on_delete_code(action: &str) -> &'static str {
    match action.to_ascii_uppercase().as_str() {
        "CASCADE" => "c",
        "SET NULL" => "n",
        "SET DEFAULT" => "d",
        "RESTRICT" => "r",
        _ => "a",
    }
}

/// The whole catalog of the SQLite database at `path`, in one read-only transaction.
pub async fn catalog(path: PathBuf) -> Result<Catalog, database::Error> {
    on_read_only(path, 30_000, |conn| {
        let q = |sql: &str, binds: &[Option<Value>]| {
            conn.run(sql, binds, usize::MAX, false)
                .map(|(_, rows)| rows)
                .map_err(|f| conn.error(f))
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        // Ordinary tables of the main database: not SQLite's own, not virtual
        // tables (whose module may not be loaded here) or their shadow tables.
        let tables = q(
            "SELECT l.name, s.sql FROM pragma_table_list l \
             JOIN sqlite_schema s ON s.name = l.name AND s.type = 'table' \
             WHERE l.schema = 'main' AND l.type = 'table' \
             AND l.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY l.name",
            &[],
        )?;
        let stats: BTreeMap<String, i64> = if q(
            "SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'",
            &[],
        )?
        .is_empty()
        {
            BTreeMap::new()
        } else {
            q(
                "SELECT tbl, max(CAST(stat AS INTEGER)) FROM sqlite_stat1 GROUP BY tbl",
                &[],
            )?
            .into_iter()
            .map(|r| (text(&r[0]), text(&r[1]).parse().unwrap_or(0)))
            .collect()
        };
        let mut catalog = Catalog::default();
        let mut incoming = Vec::new();
        for t in &tables {
            let name = text(&t[0]);
            let arg = [Some(Value::Text(name.clone()))];
            let labels = check_in_labels(&text(&t[1]));
            let sql = text(&t[1]);
            let mut table = Table {
                name: name.clone(),
                dialect: Dialect::Sqlite,
                columns: Vec::new(),
                primary_key: Vec::new(),
                indexed: Vec::new(),
                references: Vec::new(),
                referenced_by: Vec::new(),
                rows: RowCount::Exact(0),
            };
            let mut key: Vec<(i64, String)> = Vec::new();
            for c in q(
                "SELECT name, type, \"notnull\", dflt_value, pk, hidden \
                 FROM pragma_table_xinfo(?1) ORDER BY cid",
                &arg,
            )? {
                let column = text(&c[0]);
                let declared = text(&c[1]);
                let pk: i64 = text(&c[4]).parse().unwrap_or(0);
                if pk > 0 {
                    key.push((pk, column.clone()));
                }
                let json_checked = sql.contains(&format!("json_type({column})"))
                    || sql.contains(&format!("json_valid({column})"));
                let column_labels = labels.get(&column).cloned().unwrap_or_default();
                let kind = if !column_labels.is_empty() {
                    Kind::Enum
                } else if json_checked {
                    Kind::Json
                } else {
                    kind_of(&declared)
                };
                table.columns.push(Column {
                    name: column,
                    type_name: declared,
                    kind,
                    nullable: text(&c[2]) == "0",
                    default: c[3].clone(),
                    labels: column_labels,
                    writable: text(&c[5]) == "0",
                });
            }
            key.sort();
            table.primary_key = key.into_iter().map(|(_, c)| c).collect();
            if let Some(first) = table.primary_key.first() {
                table.indexed.push(first.clone());
            }
            for i in q(
                "SELECT ii.name FROM pragma_index_list(?1) il, pragma_index_info(il.name) ii \
                 WHERE ii.seqno = 0 AND ii.name IS NOT NULL AND il.partial = 0",
                &arg,
            )? {
                let c = text(&i[0]);
                if !table.indexed.contains(&c) {
                    table.indexed.push(c);
                }
            }
            let mut fks: BTreeMap<String, ForeignKey> = BTreeMap::new();
            for f in q(
                "SELECT id, \"table\", \"from\", \"to\", on_delete \
                 FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
                &arg,
            )? {
                let fk = fks.entry(text(&f[0])).or_insert_with(|| ForeignKey {
                    table: name.clone(),
                    columns: Vec::new(),
                    ref_table: text(&f[1]),
                    ref_columns: Vec::new(),
                    on_delete: on_delete_code(&text(&f[4])).to_owned(),
                });
                fk.columns.push(text(&f[2]));
                // No `to`: the parent's primary key, resolved below.
                if let Some(to) = &f[3] {
                    fk.ref_columns.push(to.clone());
                }
            }
            table.references = fks.into_values().collect();
            // Exact up to the limit; above it ANALYZE's figure when there is
            // one, else "more than" (a full count reads the whole table).
            table.rows = match stats.get(&name) {
                Some(&n) if n >= EXACT_COUNT_LIMIT => RowCount::Estimate(n),
                _ => {
                    let n: i64 = q(
                        &format!(
                            "SELECT count(*) FROM (SELECT 1 FROM {} LIMIT {})",
                            quote_ident(&name),
                            EXACT_COUNT_LIMIT + 1
                        ),
                        &[],
                    )?
                    .first()
                    .and_then(|r| text(&r[0]).parse().ok())
                    .unwrap_or(0);
                    if n > EXACT_COUNT_LIMIT {
                        RowCount::MoreThan(EXACT_COUNT_LIMIT)
                    } else {
                        RowCount::Exact(n)
                    }
                }
            };
            catalog.tables.insert(name, table);
        }
        // SQLite's names are not case-sensitive: a foreign key may spell the
        // parent `NOTES (ID)`; it is linked under the parent's own spelling.
        let parents: BTreeMap<String, (String, Vec<String>, Vec<String>)> = catalog
            .tables
            .values()
            .map(|t| {
                let columns = t.columns.iter().map(|c| c.name.clone()).collect();
                (
                    t.name.to_lowercase(),
                    (t.name.clone(), t.primary_key.clone(), columns),
                )
            })
            .collect();
        for t in catalog.tables.values_mut() {
            for fk in &mut t.references {
                if let Some((name, key, columns)) = parents.get(&fk.ref_table.to_lowercase()) {
                    fk.ref_table = name.clone();
                    if fk.ref_columns.is_empty() {
                        fk.ref_columns = key.clone();
                    }
                    for c in &mut fk.ref_columns {
                        if let Some(own) = columns.iter().find(|x| x.eq_ignore_ascii_case(c)) {
                            *c = own.clone();
                        }
                    }
                }
                incoming.push(fk.clone());
            }
        }
        for fk in incoming {
            if let Some(t) = catalog.tables.get_mut(&fk.ref_table) {
                t.referenced_by.push(fk);
            }
        }
        Ok(catalog)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_labels_come_from_check_in_constraints() {
        let sql = "CREATE TABLE v (purpose TEXT NOT NULL CONSTRAINT v_purpose_enum CHECK (purpose IN\n ('a', 'b''c')), n TEXT CHECK (length(n) > 1))";
        let labels = check_in_labels(sql);
        assert_eq!(
            labels.get("purpose"),
            Some(&vec!["a".to_owned(), "b'c".to_owned()])
        );
        assert_eq!(labels.len(), 1);
    }

    #[test]
    fn bytes_round_trip_through_their_text_form() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(blob_text(id.as_bytes()), id.to_string());
        assert_eq!(blob_of(&id.to_string()), Some(id.as_bytes().to_vec()));
        assert_eq!(blob_text(&[1, 2, 255]), "\\x0102ff");
        assert_eq!(blob_of("\\x0102ff"), Some(vec![1, 2, 255]));
        assert_eq!(blob_of("nope"), None);
    }

    #[test]
    fn only_blank_tails_and_query_keywords_pass() {
        assert!(blank(" ; -- done\n /* c */ "));
        assert!(!blank("; DELETE FROM users"));
        assert_eq!(first_keyword("/* x */ (select 1)"), "SELECT");
        assert_eq!(first_keyword("-- c\nPRAGMA query_only = 0"), "PRAGMA");
    }
}
