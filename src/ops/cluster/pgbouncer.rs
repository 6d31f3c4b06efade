//! `TempPgBouncer`: a throwaway PgBouncer in transaction mode, for the
//! tests and the benchmark of pooler mode (`DB_POOLER=transaction`).
//!
//! It runs Debian's `pgbouncer` binary (nothing is downloaded) in the
//! foreground from a temporary folder, listening on 127.0.0.1 only, with
//! `trust` authentication for the users it is given, in front of one
//! PostgreSQL server; every database name is passed through (`* =`).
//! PgBouncer refuses to run as root: started by root it runs as the
//! `postgres` OS user, like the cluster launcher's servers.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::os_user::server_user;
use super::{free_port, io_error, spawn_error};
use crate::Error;
use crate::ops::{OpsError, OpsResult as Result};

/// How to start a `TempPgBouncer`.
#[derive(Debug, Clone)]
pub struct BouncerOptions {
    /// The server it pools for (host, port).
    pub server_host: String,
    pub server_port: u16,
    /// Users allowed in (trust authentication).
    pub users: Vec<String>,
    /// The passwords PgBouncer logs in to the server with, for the users
    /// the server asks one of (SCRAM clusters of the launcher).
    pub server_passwords: Vec<(String, String)>,
    /// `pool_mode` (`transaction` unless a test wants another).
    pub pool_mode: String,
    /// Server connections per (database, user) pair.
    pub pool_size: u32,
    /// TLS towards clients: (certificate file, key file).
    pub client_tls: Option<(PathBuf, PathBuf)>,
    /// `server_round_robin`: hand out server connections in turn (tests
    /// that need consecutive statements on different server connections).
    pub server_round_robin: bool,
}

impl BouncerOptions {
    /// Transaction mode in front of `host:port`, users `postgres` and `root`.
    pub fn transaction_mode(server_host: &str, server_port: u16) -> Self {
        Self {
            server_host: server_host.to_owned(),
            server_port,
            users: vec!["postgres".into(), "root".into()],
            server_passwords: Vec::new(),
            pool_mode: "transaction".into(),
            pool_size: 20,
            client_tls: None,
            server_round_robin: false,
        }
    }
}

/// A running PgBouncer, stopped and its folder deleted when dropped.
#[derive(Debug)]
pub struct TempPgBouncer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl TempPgBouncer {
    /// Writes the configuration and starts PgBouncer; returns once it accepts
    /// connections. `Error::Config` when `pgbouncer` is not installed.
    pub fn start(options: &BouncerOptions) -> Result<TempPgBouncer> {
        let binary = find_pgbouncer()?;
        let dir = std::env::temp_dir().join(format!(
            "database-pgbouncer-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let user = server_user()?;
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            write_config(&dir, port, options)?;
            if let Some(user) = &user {
                for entry in std::fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
                    let path = entry.map_err(|e| io_error(&dir, e))?.path();
                    user.chown(&path)?;
                }
                user.chown(&dir)?;
            }
            // Started as that user directly (not through `runuser`), so the
            // child is PgBouncer itself and killing it on drop stops it.
            let mut command = Command::new(&binary);
            if let Some(user) = &user {
                let (uid, gid) = user.ids();
                command.uid(uid).gid(gid);
            }
            command
                .arg(dir.join("pgbouncer.ini"))
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = command.spawn().map_err(|e| spawn_error("pgbouncer", e))?;
            let mut bouncer = TempPgBouncer {
                child,
                dir: dir.clone(),
                port,
            };
            match bouncer.wait_ready(Duration::from_secs(10)) {
                Ok(()) => return Ok(bouncer),
                Err(e) => {
                    // Keep the folder for the next attempt; drop would delete it.
                    let _ = bouncer.child.kill();
                    let _ = bouncer.child.wait();
                    std::mem::forget(bouncer);
                    last_error = Some(e);
                }
            }
        }
        let log = std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_error.unwrap_or_else(|| {
            OpsError::Db(Error::Unavailable(format!(
                "pgbouncer did not start; its log:\n{log}"
            )))
        }))
    }

    /// The process id (to stop it from an exit hook when the value is never dropped).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its temporary folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL of `database` through this PgBouncer as `user`.
    pub fn url_of(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }

    /// PgBouncer's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(OpsError::Db(Error::Unavailable(format!(
                    "pgbouncer exited ({status}); its log:\n{}",
                    self.log()
                ))));
            }
            // Listening, and it is this PgBouncer that listens (another
            // process may have taken the port between choosing and binding).
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && self
                    .log()
                    .contains(&format!("listening on 127.0.0.1:{}", self.port))
            {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(OpsError::Db(Error::Unavailable(format!(
                    "pgbouncer did not listen on 127.0.0.1:{} within {limit:?}; its log:\n{}",
                    self.port,
                    self.log()
                ))));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TempPgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `pgbouncer` on the PATH or where Debian puts it.
fn find_pgbouncer() -> Result<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")]);
    for dir in candidates {
        let path = dir.join("pgbouncer");
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(OpsError::config(
        "pgbouncer is not installed: apt-get install pgbouncer",
    ))
}

fn write_config(dir: &Path, port: u16, options: &BouncerOptions) -> Result<()> {
    let users: String = options
        .users
        .iter()
        .map(|u| {
            let password = options
                .server_passwords
                .iter()
                .find(|(user, _)| user == u)
                .map_or("", |(_, p)| p.as_str());
            format!("\"{u}\" \"{}\"\n", password.replace('"', "\"\""))
        })
        .collect();
    // Copies in its own folder: PgBouncer's user may not reach the originals.
    let tls = match &options.client_tls {
        Some((cert, key)) => {
            for (from, name, mode) in [(cert, "client.crt", 0o644), (key, "client.key", 0o600)] {
                let to = dir.join(name);
                std::fs::copy(from, &to).map_err(|e| io_error(from, e))?;
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| io_error(&to, e))?;
            }
            format!(
                "client_tls_sslmode = allow\nclient_tls_cert_file = {}\nclient_tls_key_file = {}\n",
                dir.join("client.crt").display(),
                dir.join("client.key").display()
            )
        }
        None => String::new(),
    };
    let ini = format!(
        "[databases]\n\
         * = host={host} port={server_port}\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {auth}\n\
         pool_mode = {mode}\n\
         default_pool_size = {size}\n\
         max_client_conn = 1000\n\
         max_db_connections = {size}\n\
         server_reset_query =\n\
         ignore_startup_parameters = extra_float_digits\n\
         server_round_robin = {round_robin}\n\
         logfile = {log}\n\
         {tls}",
        host = options.server_host,
        server_port = options.server_port,
        auth = dir.join("userlist.txt").display(),
        mode = options.pool_mode,
        size = options.pool_size,
        log = dir.join("pgbouncer.log").display(),
        round_robin = u8::from(options.server_round_robin),
    );
    for (name, contents) in [("pgbouncer.ini", ini), ("userlist.txt", users)] {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|e| io_error(&path, e))?;
    }
    Ok(())
}
