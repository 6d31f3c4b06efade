//! A SQLite connection opened read-only for one request, through SQLite's
//! C API: what Diesel's connection cannot do (read-only open, interrupt from
//! another thread, ask a statement whether it writes).

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::path::PathBuf;
use std::ptr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use database::db::sqlite::BUSY_TIMEOUT;
use database::error::TimeoutKind;
use libsqlite3_sys as ffi;

use super::super::query::{Row, Value};
use super::{blank, blob_text};

/// Why a statement on the read-only connection did not give rows.
pub(super) enum Failure {
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
pub(super) struct ReadOnly {
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
    pub(super) fn error(&self, failure: Failure) -> database::Error {
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
    pub(super) fn run(
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

/// Runs `work` on a read-only connection to `path`, on a blocking thread,
/// while a watchdog interrupts it once `timeout_ms` has passed (and again
/// every 20 ms, so a statement started after the first interrupt stops too).
pub(super) async fn on_read_only<T: Send + 'static>(
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
