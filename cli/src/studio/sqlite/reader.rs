//! A SQLite connection opened read-only for one request, through SQLite's
//! C API: what Diesel's connection cannot do (read-only open, a progress
//! handler that stops a statement, ask a statement whether it writes).

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::path::PathBuf;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use database::db::sqlite::BUSY_TIMEOUT;
use database::error::TimeoutKind;
use libsqlite3_sys as ffi;

use super::super::stmt::{Row, Value, blob_text};
use super::blank;

/// Why a statement on the read-only connection did not give rows.
pub(super) enum Failure {
    Refused(String),
    Sqlite { code: c_int, message: String },
}

/// The longest text or BLOB a read returns: a bigger value (`zeroblob(1e9)`
/// in the console) is an error, not gigabytes in memory.
const MAX_VALUE_BYTES: c_int = 16 << 20;

/// When a read must stop: at its deadline, or as soon as its request is
/// gone. SQLite asks (`progress`) every `PROGRESS_STEPS` virtual-machine
/// steps of every statement, on the reading thread itself: no other task
/// or thread keeps time, so nothing outlives the read.
struct Stop {
    deadline: Option<Instant>,
    cancelled: Arc<AtomicBool>,
}

impl Stop {
    fn now(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Virtual-machine steps between two looks at the clock (microseconds).
const PROGRESS_STEPS: c_int = 1000;

/// SQLite's progress handler: non-zero interrupts the statement (SQLITE_INTERRUPT).
extern "C" fn progress(stop: *mut c_void) -> c_int {
    // SAFETY: the `Stop` registered with the handler, which the connection
    // owns and frees only after closing (see `ReadOnly`'s fields).
    c_int::from(unsafe { &*(stop as *const Stop) }.now())
}

/// A connection opened read-only for one request.
pub(super) struct ReadOnly {
    db: *mut ffi::sqlite3,
    timeout_ms: u64,
    /// Boxed: SQLite holds its address until the connection closes, and
    /// fields are dropped after `Drop::drop` has closed it.
    stop: Box<Stop>,
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
        // SAFETY: the handle from sqlite3_open_v2 (also after a failed open);
        // its statements are finalized already. Closing ends the transaction.
        unsafe { ffi::sqlite3_close(self.db) };
    }
}

impl ReadOnly {
    fn open(
        path: &Path,
        timeout_ms: u64,
        cancelled: Arc<AtomicBool>,
    ) -> Result<ReadOnly, database::Error> {
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
            timeout_ms,
            stop: Box::new(Stop {
                deadline: (timeout_ms > 0)
                    .then(|| Instant::now() + Duration::from_millis(timeout_ms)),
                cancelled,
            }),
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
        // SAFETY: a valid, open handle; `stop` lives as long as it (see the field).
        unsafe {
            ffi::sqlite3_busy_timeout(conn.db, busy);
            ffi::sqlite3_limit(conn.db, ffi::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES);
            ffi::sqlite3_progress_handler(
                conn.db,
                PROGRESS_STEPS,
                Some(progress),
                &*conn.stop as *const Stop as *mut c_void,
            );
        }
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
/// stopped by its progress handler once `timeout_ms` has passed (0: no
/// limit) or once this future is dropped (a client that disconnects drops
/// its handler): a read nobody waits for does not run on.
pub(super) async fn on_read_only<T: Send + 'static>(
    path: PathBuf,
    timeout_ms: u64,
    work: impl FnOnce(&ReadOnly) -> Result<T, database::Error> + Send + 'static,
) -> Result<T, database::Error> {
    struct CancelOnDrop(Arc<AtomicBool>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let cancelled = Arc::new(AtomicBool::new(false));
    let _cancel = CancelOnDrop(cancelled.clone());
    tokio::task::spawn_blocking(move || {
        if cancelled.load(Ordering::Relaxed) {
            return Err(database::Error::Unavailable(
                "the request was gone before its read started".into(),
            ));
        }
        let conn = ReadOnly::open(&path, timeout_ms, cancelled)?;
        work(&conn)
    })
    .await
    .map_err(|e| database::Error::Unavailable(format!("the studio's SQLite reader: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOREVER: &str =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

    fn empty_file() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.db");
        // An empty file is an empty SQLite database.
        std::fs::write(&path, b"").unwrap();
        (dir, path)
    }

    #[tokio::test]
    async fn a_dropped_request_stops_its_read_and_leaves_no_task_behind() {
        let (_dir, path) = empty_file();
        let tasks = tokio::runtime::Handle::current().metrics();
        let before = tasks.num_alive_tasks();
        let (ended, end) = std::sync::mpsc::channel();
        let read = on_read_only(path, 60_000, move |conn| {
            let stopped = conn.run(FOREVER, &[], 1, false).is_err();
            ended.send(stopped).unwrap();
            Ok(())
        });
        // The client goes away: axum drops the handler's future.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), read)
                .await
                .is_err()
        );
        let ended = tokio::task::spawn_blocking(move || end.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(
            ended,
            Ok(true),
            "the read ran on after its request was dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            tasks.num_alive_tasks(),
            before,
            "a task outlived the dropped request"
        );
    }

    #[tokio::test]
    async fn a_read_stops_at_its_deadline_with_the_studios_setting_named() {
        let (_dir, path) = empty_file();
        let started = Instant::now();
        let err = on_read_only(path, 200, |conn| {
            conn.run(FOREVER, &[], 1, false)
                .map(|_| ())
                .map_err(|f| conn.error(f))
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            err.to_string()
                .contains("cancelled after 200 ms (DB_STUDIO_STATEMENT_TIMEOUT_MS)"),
            "{err}"
        );
    }
}
