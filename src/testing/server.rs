//! Where the tests' PostgreSQL comes from, and the one process-wide
//! connection that creates and drops their databases.
//!
//! In this order: `TEST_DATABASE_URL` (its database name is ignored; from
//! the environment, else from the nearest `.env`, as `db test-db clean` and
//! `Config::from_env` read it); else
//! the project-local cluster of the crate under test (the nearest directory
//! holding `diesel.toml`, from the working directory up: `cargo test` runs a
//! crate's tests in its own directory), created and started when needed
//! under a file lock, so that many test binaries starting at once start it
//! once; else an error that says how to get one.

use std::fs::File;
use std::future::Future;
use std::path::Path;
use std::sync::OnceLock;

use crate::db::local::SERVICE_ROLE;
use crate::ops::cluster::{
    BouncerOptions, Cluster, Options as ClusterOptions, Start, TempPgBouncer,
};

/// The password the tests give the service's role on a server whose record
/// does not know it (`TEST_DATABASE_URL`): a test server is never one whose
/// `app` logs in elsewhere.
pub const SERVICE_PASSWORD: &str = "app-test-password";

/// The test server.
#[derive(Debug)]
pub struct Server {
    /// The owner's URL without a database name (a superuser, or a role
    /// that may create databases).
    pub(crate) url: url::Url,
    /// The service role's password: the local cluster's own (left as it
    /// is), or `SERVICE_PASSWORD`, which the template sets.
    pub(crate) service_password: String,
    /// Whether the service's password is the cluster's own (then the tests
    /// never change it).
    pub(crate) password_is_the_clusters: bool,
}

impl Server {
    /// The URL of database `name` as the owner.
    pub fn url_of(&self, name: &str) -> String {
        let mut url = self.url.clone();
        url.set_path(&format!("/{name}"));
        url.to_string()
    }

    /// The URL of database `name` as the service's role.
    pub fn service_url_of(&self, name: &str) -> String {
        let mut url = self.url.clone();
        url.set_path(&format!("/{name}"));
        // Both are valid for a URL that already has a host.
        let _ = url.set_username(SERVICE_ROLE);
        let _ = url.set_password(Some(&self.service_password));
        url.to_string()
    }

    /// The owner's login name.
    pub(crate) fn owner(&self) -> &str {
        match self.url.username() {
            "" => "postgres",
            user => user,
        }
    }
}

/// The test server of this process, found (and started) on first use.
/// Panics with what to do when there is none.
pub fn server() -> &'static Server {
    try_server().unwrap_or_else(|e| panic!("{e}"))
}

/// `server`, with what to do as an error instead of a panic.
pub fn try_server() -> Result<&'static Server, String> {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    SERVER.get_or_init(find).as_ref().map_err(Clone::clone)
}

/// The server `db test-db clean` cleans: the tests' own, but never created
/// or started for it. `Ok(None)`: there is none to clean (no
/// `TEST_DATABASE_URL`, and the project's cluster does not exist or is down).
pub fn existing_server() -> Result<Option<&'static Server>, String> {
    if test_database_url().is_some() {
        return try_server().map(Some);
    }
    let cwd = std::env::current_dir().map_err(|e| format!("the working directory: {e}"))?;
    let Some(state_dir) = crate::db::local::state_dir(&cwd) else {
        return Ok(None);
    };
    match crate::db::local::Record::load(&state_dir).map_err(|e| e.to_string())? {
        Some(record) if record.is_listening() => try_server().map(Some),
        _ => Ok(None),
    }
}

/// `TEST_DATABASE_URL` from the environment, else from the nearest `.env`
/// from the working directory up (the file `db test-db clean` and
/// `Config::from_env` read), without changing the process's environment.
/// Set but blank: none.
fn test_database_url() -> Option<String> {
    let raw = match std::env::var("TEST_DATABASE_URL") {
        Ok(value) => value,
        Err(_) => {
            let cwd = std::env::current_dir().ok()?;
            from_dotenv(&cwd)?
        }
    };
    (!raw.trim().is_empty()).then_some(raw)
}

/// `TEST_DATABASE_URL` of the nearest `.env` in `dir` or above it.
fn from_dotenv(dir: &Path) -> Option<String> {
    let file = dir
        .ancestors()
        .map(|d| d.join(".env"))
        .find(|f| f.is_file())?;
    dotenvy::from_path_iter(file)
        .ok()?
        .filter_map(Result::ok)
        .find(|(key, _)| key == "TEST_DATABASE_URL")
        .map(|(_, value)| value)
}

fn find() -> Result<Server, String> {
    if let Some(raw) = test_database_url() {
        let mut url = url::Url::parse(&raw)
            .map_err(|e| format!("TEST_DATABASE_URL is not a URL ({e}): {raw}"))?;
        url.set_path("");
        return Ok(Server {
            url,
            service_password: SERVICE_PASSWORD.to_owned(),
            password_is_the_clusters: false,
        });
    }
    let cwd = std::env::current_dir().map_err(|e| format!("the working directory: {e}"))?;
    let Some(state_dir) = crate::db::local::state_dir(&cwd) else {
        return Err(format!(
            "no PostgreSQL for the tests: set TEST_DATABASE_URL (a server where the tests may \
             create databases, e.g. postgres://postgres@127.0.0.1:5432), or run them inside a \
             project (a directory with diesel.toml at or above {}), whose own PostgreSQL they \
             start in .db/ as `db up` does",
            cwd.display()
        ));
    };
    let cluster = start_local(&state_dir).map_err(|e| {
        format!(
            "starting the project's PostgreSQL for the tests ({}): {e}. Set TEST_DATABASE_URL \
             to use another server",
            state_dir.display()
        )
    })?;
    let record = cluster.record();
    let mut url = url::Url::parse(&cluster.url()).map_err(|e| e.to_string())?;
    url.set_path("");
    let (service_password, password_is_the_clusters) = match &record.secrets {
        Some(s) => (s.service.clone(), true),
        None => (SERVICE_PASSWORD.to_owned(), false),
    };
    Ok(Server {
        url,
        service_password,
        password_is_the_clusters,
    })
}

/// Opens (creating it when the project has none) and starts the project's
/// cluster, holding an exclusive lock on a file beside the system's
/// temporary files while doing so: test binaries that start at once start
/// it once.
fn start_local(state_dir: &Path) -> Result<Cluster, String> {
    use sha2::Digest;
    let lock_path = std::env::temp_dir().join(format!(
        "database-test-cluster-{}.lock",
        &hex::encode(sha2::Sha256::digest(
            state_dir.as_os_str().as_encoded_bytes()
        ))[..16]
    ));
    let lock = lock_file(&lock_path)?;
    let mut cluster = match Cluster::open(state_dir).map_err(|e| e.to_string())? {
        Some(cluster) => cluster,
        None => {
            eprintln!(
                "database::testing: creating the project's PostgreSQL in {} (as `db up` does)",
                state_dir.display()
            );
            Cluster::create(state_dir, &ClusterOptions::default()).map_err(|e| e.to_string())?
        }
    };
    if cluster.start().map_err(|e| e.to_string())? == Start::Started {
        eprintln!(
            "database::testing: started the project's PostgreSQL on 127.0.0.1:{} (`db down` stops it)",
            cluster.record().port
        );
    }
    drop(lock);
    Ok(cluster)
}

/// `path`, created when missing, opened and locked exclusively (flock(2),
/// released when the file is closed, by the kernel if the process dies).
pub(crate) fn lock_file(path: &Path) -> Result<File, String> {
    use std::os::fd::AsRawFd;
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: flock(2) on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "locking {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(file)
}

/// The PgBouncer of this process when the tests run in pooler mode
/// (`DB_POOLER=transaction`, or `DB_TEST_POOLER=1`): a throwaway
/// transaction-mode PgBouncer in front of the test server, started on first
/// use and killed when the process exits.
pub fn pooler() -> Option<&'static TempPgBouncer> {
    static BOUNCER: OnceLock<Option<TempPgBouncer>> = OnceLock::new();
    static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    // Statics are never dropped: stop it when the process exits, and remove
    // its folder (its user list holds the passwords).
    extern "C" fn stop() {
        let pid = PID.load(std::sync::atomic::Ordering::Relaxed);
        if pid != 0 {
            // SAFETY: kill(2) on the PgBouncer this process started, which
            // lives until exit (nothing else reaps it).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        if let Some(dir) = DIR.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    BOUNCER
        .get_or_init(|| {
            if !pooler_mode() {
                return None;
            }
            let bouncer = start_bouncer(POOLER_POOL_SIZE)
                .unwrap_or_else(|e| panic!("the tests' PgBouncer (pooler mode): {e}"));
            PID.store(bouncer.pid(), std::sync::atomic::Ordering::Relaxed);
            let _ = DIR.set(bouncer.dir().to_path_buf());
            // SAFETY: registers a plain function without captures.
            unsafe { libc::atexit(stop) };
            Some(bouncer)
        })
        .as_ref()
}

/// Whether the tests' `Db`s go through a transaction-mode PgBouncer.
pub fn pooler_mode() -> bool {
    std::env::var("DB_TEST_POOLER").is_ok_and(|v| v == "1")
        || std::env::var("DB_POOLER").is_ok_and(|v| v.eq_ignore_ascii_case("transaction"))
}

/// Server connections per database of the tests' PgBouncer: fewer than a
/// test's pool (8), so that clients really take turns on them.
pub const POOLER_POOL_SIZE: usize = 7;

/// A transaction-mode PgBouncer in front of the test server that admits
/// the owner and the service's role, with `pool_size` server connections
/// per database; stopped when dropped.
pub fn start_bouncer(pool_size: usize) -> crate::ops::OpsResult<TempPgBouncer> {
    let server = server();
    let mut options = BouncerOptions::transaction_mode(
        server.url.host_str().unwrap_or("127.0.0.1"),
        server.url.port().unwrap_or(5432),
    );
    options.users.push(SERVICE_ROLE.to_owned());
    options
        .server_passwords
        .push((SERVICE_ROLE.to_owned(), server.service_password.clone()));
    if let Some(password) = server.url.password() {
        options
            .server_passwords
            .push((server.owner().to_owned(), password.to_owned()));
    }
    options.pool_size = pool_size as u32;
    TempPgBouncer::start(&options)
}

/// Runs `work` on the process's clerk: a small runtime of its own whose
/// one worker keeps the owner's connection that creates and drops the
/// tests' databases. Each test has a runtime of its own, which a
/// connection cannot outlive; the clerk's outlives them all.
pub(crate) fn clerk<F, T>(work: F) -> tokio::task::JoinHandle<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    static CLERK: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    CLERK
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("database-test-clerk")
                .enable_all()
                .build()
                .expect("the test clerk's runtime")
        })
        .spawn(work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_database_url_comes_from_the_nearest_dotenv_up_the_tree() {
        let root = tempfile::tempdir().unwrap();
        let nested = root.path().join("crates").join("svc");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(from_dotenv(&nested), None);
        std::fs::write(
            root.path().join(".env"),
            "DATABASE_URL=postgres://app@db/app\nTEST_DATABASE_URL=postgres://postgres@127.0.0.1:5433/x\n",
        )
        .unwrap();
        assert_eq!(
            from_dotenv(&nested).as_deref(),
            Some("postgres://postgres@127.0.0.1:5433/x")
        );
    }
}
