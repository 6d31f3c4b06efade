//! A test's SQLite database: a file copied from a migrated template file.
//! The template is built once per SQLite migration set among all processes
//! (a file lock), and copied with `VACUUM INTO`, which writes a consistent
//! copy whatever the source's journal holds (a byte copy of a WAL database
//! can miss what the WAL has not checkpointed).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use diesel_async::SimpleAsyncConnection;

use crate::{Config, SqliteDb};

/// The SQLite database of one test: deleted when dropped, unless kept
/// (`keep`, or the test panicked).
pub struct SqliteTestDb {
    /// The file.
    pub path: PathBuf,
    db: SqliteDb,
    kept: AtomicBool,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl SqliteTestDb {
    /// A fresh file with every SQLite migration applied.
    pub async fn new() -> SqliteTestDb {
        let dir = folder();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let template = template(&dir).await;
        // As a PostgreSQL test database's name: the process id for `db
        // test-db clean`, a random part against an earlier run's kept file.
        let path = dir.join(format!(
            "test_{:04x}_{}_{}.db",
            rand::random::<u16>(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let source = open(&template);
        let quoted = path.to_string_lossy().replace('\'', "''");
        source
            .conn()
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", template.display()))
            .batch_execute(&format!("VACUUM INTO '{quoted}'"))
            .await
            .unwrap_or_else(|e| {
                panic!("copying {} to {}: {e}", template.display(), path.display())
            });
        source.close();
        let db = open(&path);
        SqliteTestDb {
            path,
            db,
            kept: AtomicBool::new(false),
        }
    }

    /// A `SqliteDb` on the test's file (clones share its pool).
    pub fn db(&self) -> SqliteDb {
        self.db.clone()
    }

    /// Keeps the file after this value is dropped, and prints where it is.
    pub fn keep(&self) {
        if !self.kept.swap(true, Ordering::Relaxed) {
            eprintln!(
                "database::testing: kept the failed test's SQLite database {}\n  \
                 look at it: DATABASE_URL='sqlite:{}' db studio",
                self.path.display(),
                self.path.display()
            );
        }
    }
}

impl Drop for SqliteTestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.keep();
        }
        self.db.close();
        if !self.kept.load(Ordering::Relaxed) {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = self.path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// The folder of this OS user's SQLite templates and test files.
fn folder() -> PathBuf {
    // SAFETY: getuid(2) cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("database-test-sqlite-{uid}"))
}

/// Removes the test files of processes that no longer run (kept failures,
/// crashes); what `db test-db clean` does on SQLite. Their names.
pub(crate) fn remove_leftovers() -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(folder()) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name
            .strip_prefix("test_")
            .and_then(|n| n.split(".db").next())
        else {
            continue;
        };
        let pid = stem.rsplit('_').nth(1).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|pid| !super::clean::alive(pid))
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed.push(entry.path().display().to_string());
        }
    }
    removed
}

fn open(path: &Path) -> SqliteDb {
    let mut config = Config::new(format!("sqlite:{}", path.display()));
    config.pool_size = 8;
    SqliteDb::new(config).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// The migrated template file of the embedded SQLite set, built when missing.
async fn template(dir: &Path) -> PathBuf {
    let set = crate::migrate::sqlite::embedded();
    let name = format!("tpl_{}", &set.fingerprint()[..16]);
    let path = dir.join(format!("{name}.db"));
    if path.is_file() {
        return path;
    }
    let _lock = super::server::lock_file(&dir.join(format!("{name}.lock")))
        .unwrap_or_else(|e| panic!("{e}"));
    if path.is_file() {
        return path;
    }
    let building = dir.join(format!("{name}.building.db"));
    for suffix in ["", "-wal", "-shm"] {
        let mut p = building.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let db = open(&building);
    db.migrate()
        .await
        .unwrap_or_else(|e| panic!("migrating the SQLite template {}: {e}", building.display()));
    // Everything into the main file before it becomes the template.
    db.conn()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db.close();
    std::fs::rename(&building, &path)
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", building.display(), path.display()));
    path
}
