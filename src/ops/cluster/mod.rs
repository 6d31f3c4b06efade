//! The one PostgreSQL launcher: `db up`/`db down`, `scripts/test`'s
//! throwaway server and any test that needs a server of its own (a replica,
//! a TLS server) all start clusters through it.
//!
//! It uses the binaries already installed (`PG_BIN`, `pg_config --bindir`,
//! the newest `/usr/lib/postgresql/<v>/bin`, ...): nothing is downloaded.
//! A cluster lives in a state folder (`.db/` for the project's own) holding
//! its record (`cluster.toml`, read by `db::local`), the server's log
//! (`postgres.log`) and, unless the server's OS user cannot reach it, the
//! data directory and the socket directory. It listens on a Unix socket and
//! on 127.0.0.1 only, with `trust` authentication limited to those two.
//!
//! PostgreSQL refuses to run as root. Started by root, the server runs as
//! the `postgres` OS user (`runuser`), and when that user cannot reach the
//! state folder (a project under `/root`, mode 700) the data lives in a
//! per-folder directory under `/var/tmp`, which the record names. The log is
//! written through a file handle the launcher opens, so it stays in the
//! state folder either way.
//!
//! Files: this one (`Cluster`: create, start, stop, destroy), `binaries`
//! (finding the installed server), `os_user` (running as `postgres` when
//! root), `temp` (`TempCluster`, deleted on drop), `pgbouncer`
//! (`TempPgBouncer`, a throwaway transaction-mode pooler in front of one).
//!
//! One file, though long: creating, securing, starting and stopping one
//! cluster all read and write its record and hold its lock; the binaries, the
//! OS user, PgBouncer and temporary folders are submodules.
use std::fs;
use std::io::Write as _;
use std::ops::RangeInclusive;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::db::local::{DEFAULT_DATABASE, LOG_FILE, Record, SERVICE_ROLE, Secrets};
use crate::ops::{OpsError, OpsResult as Result};

mod binaries;
mod os_user;
mod pgbouncer;
mod temp;

pub use binaries::{find_binaries, find_binaries_in};
use os_user::{OsUser, fallback_base, server_user};
pub use pgbouncer::{BouncerOptions, TempPgBouncer};
pub use temp::TempCluster;

/// Ports a cluster picks from when none is given (never the default 5432).
pub const PORT_RANGE: RangeInclusive<u16> = 54320..=54399;

/// Marks the block the launcher appends to `postgresql.conf`.
const CONF_MARKER: &str = "# --- written by the database crate's cluster launcher ---";

/// How to create a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// The TCP port; `None` picks a free one in `PORT_RANGE`.
    pub port: Option<u16>,
    /// The database the cluster's URL names.
    pub database: String,
    /// Extra `postgresql.conf` lines (`wal_level = replica`, `ssl = on`, ...).
    pub settings: Vec<String>,
    /// `false` turns off fsync, synchronous commit and full-page writes:
    /// faster, and a crash may lose the cluster (throwaway clusters only).
    pub fsync: bool,
    /// Make the data directory with `pg_basebackup -R` from this URL (a
    /// streaming replica) instead of `initdb`.
    pub base_backup_of: Option<String>,
    /// The passwords of a replica's roles: its primary's (they replicate).
    pub secrets: Option<Secrets>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            port: None,
            database: DEFAULT_DATABASE.to_owned(),
            settings: Vec::new(),
            fsync: true,
            base_backup_of: None,
            secrets: None,
        }
    }
}

impl Options {
    /// Settings for a throwaway cluster: fsync off, everything else default.
    pub fn scratch() -> Self {
        Self {
            fsync: false,
            ..Self::default()
        }
    }
}
/// Whether `start` (a cluster that was started) was already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// It was down and is now up.
    Started,
    /// It was up already; nothing was done.
    AlreadyRunning,
}

/// A cluster on disk, found through its state folder.
#[derive(Debug, Clone)]
pub struct Cluster {
    state_dir: PathBuf,
    record: Record,
}

impl Cluster {
    /// The cluster recorded in `state_dir`, if there is one.
    pub fn open(state_dir: &Path) -> Result<Option<Cluster>> {
        Ok(Record::load(state_dir)?.map(|record| Cluster {
            state_dir: state_dir.to_path_buf(),
            record,
        }))
    }

    /// The cluster of `state_dir`: opened when recorded, created otherwise
    /// (`initdb` or `pg_basebackup`, configuration, record). Not started.
    pub fn create(state_dir: &Path, options: &Options) -> Result<Cluster> {
        if let Some(existing) = Self::open(state_dir)? {
            return Ok(existing);
        }
        let bin_dir = find_binaries()?;
        create_dir(state_dir, 0o755)?;
        // The state folder never belongs in git, even where .gitignore forgets it.
        write(&state_dir.join(".gitignore"), "*\n")?;

        let os_user = server_user()?;
        let base = match &os_user {
            Some(user) if !user.can_reach(state_dir) => fallback_base(state_dir)?,
            _ => state_dir.to_path_buf(),
        };
        let data_dir = base.join("data");
        let mut socket_dir = base.join("socket");
        // A socket path longer than the OS allows (~107 bytes) cannot be bound.
        if socket_dir.join(".s.PGSQL.54320").as_os_str().len() > 100 {
            socket_dir = std::env::temp_dir();
        } else {
            create_dir(&socket_dir, 0o700)?;
        }
        create_dir(&data_dir, 0o700)?;
        if let Some(user) = &os_user {
            user.chown(&data_dir)?;
            if socket_dir.starts_with(&base) {
                user.chown(&socket_dir)?;
            }
        }
        let record = Record {
            port: options.port.unwrap_or(free_port()?),
            data_dir,
            socket_dir,
            bin_dir,
            os_user: os_user.map(|u| u.name),
            database: options.database.clone(),
            secrets: options.secrets.clone(),
        };
        let cluster = Cluster {
            state_dir: state_dir.to_path_buf(),
            record,
        };
        // A data directory left behind (the state folder was deleted by
        // hand) is adopted rather than wiped: it may hold someone's data.
        if !cluster.record.data_dir.join("PG_VERSION").is_file() {
            match &options.base_backup_of {
                None => cluster.initdb(options.fsync)?,
                Some(url) => cluster.base_backup(url)?,
            }
        }
        cluster.configure(options)?;
        cluster.record.save(state_dir)?;
        Ok(cluster)
    }

    /// What the state folder records.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The state folder (`.db/` for a project's cluster).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The data directory (PGDATA).
    pub fn data_dir(&self) -> &Path {
        &self.record.data_dir
    }

    /// The server's log.
    pub fn log_path(&self) -> PathBuf {
        self.state_dir.join(LOG_FILE)
    }

    /// The URL of the recorded database.
    pub fn url(&self) -> String {
        self.record.url()
    }

    /// The URL of another database on this cluster.
    pub fn url_of(&self, database: &str) -> String {
        self.record.url_of(database)
    }

    /// Whether the data directory lives outside the state folder (root, unreachable project).
    pub fn data_is_elsewhere(&self) -> bool {
        !self.record.data_dir.starts_with(&self.state_dir)
    }

    /// Whether the server of this data directory runs (`pg_ctl status`).
    pub fn is_running(&self) -> Result<bool> {
        let out = self.run("pg_ctl", |c| {
            c.arg("status").arg("-D").arg(&self.record.data_dir);
        })?;
        // 0: running; 3: not running; 4: no data directory.
        match out.status.code() {
            Some(0) => Ok(true),
            Some(3) | Some(4) => Ok(false),
            _ => Err(tool_error("pg_ctl", "status", &out)),
        }
    }

    /// Starts the server and waits until it accepts connections. On failure
    /// the error quotes the last lines of the log. A cluster without
    /// passwords yet (new, or made before they existed) is secured once it
    /// runs (see `secure`).
    pub fn start(&mut self) -> Result<Start> {
        let started = self.start_server()?;
        if self.record.secrets.is_none() {
            self.secure()?;
        }
        Ok(started)
    }

    /// Passwords for TCP, the service's role, and the socket for the OS
    /// users who own the cluster only: the superuser `postgres` and the
    /// service role `app` get random passwords (written to `secrets.toml`
    /// beside the record, mode 0600, and into the URLs `db up` prints and a
    /// service reads); TCP then asks for them (SCRAM), and the Unix socket
    /// admits only the OS user who made the cluster and the server's own
    /// (peer, mapped to `postgres`). Until then (a new cluster's first
    /// start, a moment) the cluster trusts loopback, as it used to.
    fn secure(&mut self) -> Result<()> {
        let secrets = Secrets::generate();
        let sql = format!(
            "ALTER ROLE postgres PASSWORD '{superuser}';
             DO $$ BEGIN
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SERVICE_ROLE}') THEN
                     CREATE ROLE \"{SERVICE_ROLE}\" LOGIN NOSUPERUSER NOBYPASSRLS;
                 END IF;
             END $$;
             ALTER ROLE \"{SERVICE_ROLE}\" PASSWORD '{service}';",
            superuser = secrets.superuser,
            service = secrets.service
        );
        let out = self.run("psql", |c| {
            c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(&self.record.socket_dir)
                .args([
                    "-p",
                    &self.record.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ])
                .args(["-c", &sql]);
        })?;
        if !out.status.success() {
            return Err(tool_error("psql", "setting the cluster's passwords", &out));
        }
        self.record.secrets = Some(secrets);
        self.record.save(&self.state_dir)?;
        self.write_access()?;
        let out = self.run("pg_ctl", |c| {
            c.args(["reload", "-D"]).arg(&self.record.data_dir);
        })?;
        if !out.status.success() {
            return Err(tool_error("pg_ctl", "reloading the access rules", &out));
        }
        Ok(())
    }

    fn start_server(&self) -> Result<Start> {
        if self.is_running()? {
            return Ok(Start::AlreadyRunning);
        }
        if !self.record.data_dir.join("PG_VERSION").is_file() {
            return Err(OpsError::config(format!(
                "the data directory {} that {} records is gone (deleted, or a temporary folder                  cleaned up); `db down --destroy --yes` then `db up` make a new, empty cluster",
                self.record.data_dir.display(),
                self.state_dir.join(crate::db::local::RECORD_FILE).display()
            )));
        }
        if self.record.is_listening() {
            return Err(OpsError::config(format!(
                "port {} on 127.0.0.1 is taken by another program; stop it, or change `port` in {}",
                self.record.port,
                self.state_dir.join(crate::db::local::RECORD_FILE).display()
            )));
        }
        let log_path = self.log_path();
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| io_error(&log_path, e))?;
        let started_at = log.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = writeln!(log, "--- starting on port {} ---", self.record.port);
        // The server inherits this handle: its log reaches the state folder
        // even when its OS user could not open a file there.
        let stdout = log.try_clone().map_err(|e| io_error(&log_path, e))?;
        let server_options = format!(
            "-p {} -k {}",
            self.record.port,
            quote_option(&self.record.socket_dir.to_string_lossy())
        );
        let mut cmd = self.command("pg_ctl");
        cmd.args(["start", "-w", "-t", "60", "-D"])
            .arg(&self.record.data_dir)
            .args(["-o", &server_options])
            .stdout(stdout)
            .stderr(log);
        let status = cmd.status().map_err(|e| spawn_error("pg_ctl", e))?;
        if status.success() {
            return Ok(Start::Started);
        }
        let tail = self.log_since(started_at);
        Err(OpsError::Tool {
            tool: "pg_ctl",
            message: format!(
                "the server did not start (data in {}); last lines of {}:\n  {tail}",
                self.record.data_dir.display(),
                log_path.display()
            ),
        })
    }

    /// Stops the server (fast shutdown: sessions are ended, nothing
    /// committed is lost). `false` when it was not running.
    pub fn stop(&self) -> Result<bool> {
        self.stop_with("fast")
    }

    /// Kills the server as a crash would: SIGKILL to the postmaster (first,
    /// so that it restarts nothing) and to every process it started, without
    /// a word to the clients, no checkpoint, and WAL not yet sent to the
    /// replicas never sent. Returns once the postmaster is gone; `false`
    /// when it was not running. Linux (`/proc`).
    pub fn crash(&self) -> Result<bool> {
        let pid_file = self.record.data_dir.join("postmaster.pid");
        let Some(pid) = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        else {
            return Ok(false);
        };
        // A postmaster.pid left by an earlier crash may name a pid reused
        // since: only a postgres started on this data directory is killed.
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let data_dir = self.record.data_dir.to_string_lossy();
        if !String::from_utf8_lossy(&cmdline).contains(data_dir.as_ref()) {
            return Ok(false);
        }
        let mut pids = vec![pid];
        pids.extend(children_of(pid));
        // A child may exit between the listing and the kill (kill then
        // fails for it): what counts is that the postmaster goes.
        Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .output()
            .map_err(|e| spawn_error("kill", e))?;
        let gone = std::time::Instant::now();
        while Path::new(&format!("/proc/{pid}/stat")).exists()
            && fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        {
            if gone.elapsed() > std::time::Duration::from_secs(10) {
                return Err(OpsError::config(format!(
                    "the server (pid {pid}) outlived SIGKILL"
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(true)
    }

    /// Promotes a streaming replica to a primary (`pg_ctl promote`, waiting
    /// until it accepts writes): it starts a new timeline.
    pub fn promote(&self) -> Result<()> {
        let log_length = fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0);
        let out = self.run("pg_ctl", |c| {
            c.args(["promote", "-w", "-t", "60", "-D"])
                .arg(&self.record.data_dir);
        })?;
        if !out.status.success() {
            // pg_ctl only says that it stopped waiting; why the server did
            // not promote (or died doing it) is in the server's log.
            return Err(tool_error(
                "pg_ctl",
                &format!(
                    "promote (last lines of {}:\n  {}\n)",
                    self.log_path().display(),
                    self.log_since(log_length)
                ),
                &out,
            ));
        }
        Ok(())
    }

    /// The last lines the server logged after byte `offset` of its log.
    fn log_since(&self, offset: u64) -> String {
        let text = fs::read(self.log_path()).unwrap_or_default();
        let appended = String::from_utf8_lossy(&text[(offset as usize).min(text.len())..]);
        let lines: Vec<&str> = appended.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n  ")
    }

    fn stop_with(&self, mode: &str) -> Result<bool> {
        if !self.is_running()? {
            return Ok(false);
        }
        let out = self.run("pg_ctl", |c| {
            c.args(["stop", "-w", "-m", mode, "-D"])
                .arg(&self.record.data_dir);
        })?;
        if !out.status.success() {
            return Err(tool_error("pg_ctl", "stop", &out));
        }
        Ok(true)
    }

    /// Stops the server and deletes everything: the data directory (also
    /// when it lives elsewhere) and the state folder.
    pub fn destroy(self) -> Result<()> {
        self.stop()?;
        if self.data_is_elsewhere()
            && let Some(base) = self.record.data_dir.parent()
        {
            remove_dir(base)?;
        }
        remove_dir(&self.state_dir)
    }

    /// Writes a file into the data directory, owned by the server's OS user
    /// with `mode` (e.g. a TLS key: `server.key`, 0o600).
    pub fn write_data_file(&self, name: &str, contents: &[u8], mode: u32) -> Result<PathBuf> {
        let path = self.record.data_dir.join(name);
        fs::write(&path, contents).map_err(|e| io_error(&path, e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| io_error(&path, e))?;
        if let Some(name) = &self.record.os_user {
            OsUser::lookup(name)?.chown(&path)?;
        }
        Ok(path)
    }

    fn initdb(&self, fsync: bool) -> Result<()> {
        let init = |locale: &str| {
            self.run("initdb", |c| {
                c.arg("-D")
                    .arg(&self.record.data_dir)
                    .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", locale]);
                if !fsync {
                    c.arg("--no-sync");
                }
            })
        };
        // C.UTF-8 where the system has it (like Debian's own clusters), else plain C.
        let mut out = init("--locale=C.UTF-8")?;
        if !out.status.success() {
            let _ = fs::remove_dir_all(&self.record.data_dir);
            create_dir(&self.record.data_dir, 0o700)?;
            if let Some(name) = &self.record.os_user {
                OsUser::lookup(name)?.chown(&self.record.data_dir)?;
            }
            out = init("--no-locale")?;
        }
        if !out.status.success() {
            return Err(tool_error("initdb", "creating the cluster", &out));
        }
        Ok(())
    }

    fn base_backup(&self, url: &str) -> Result<()> {
        let out = self.run("pg_basebackup", |c| {
            c.arg("-D").arg(&self.record.data_dir).args([
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "-d",
                url,
            ]);
        })?;
        if !out.status.success() {
            return Err(tool_error("pg_basebackup", "copying the primary", &out));
        }
        Ok(())
    }

    /// Loopback-only listening, the access rules (`write_access`), and the
    /// caller's settings. Port and socket go on `pg_ctl`'s command line at
    /// each start (so a base backup never inherits its primary's).
    fn configure(&self, options: &Options) -> Result<()> {
        self.write_access()?;
        let conf_path = self.record.data_dir.join("postgresql.conf");
        let mut conf = fs::read_to_string(&conf_path).map_err(|e| io_error(&conf_path, e))?;
        if !conf.contains(CONF_MARKER) {
            conf.push_str(&format!(
                "\n{CONF_MARKER}\nlisten_addresses = '127.0.0.1'\n"
            ));
        }
        if !options.fsync {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        for line in &options.settings {
            conf.push_str(line);
            conf.push('\n');
        }
        write(&conf_path, &conf)
    }

    /// `pg_hba.conf` and `pg_ident.conf`: passwords (SCRAM) over loopback and
    /// the socket for the OS users who own the cluster, once the cluster has
    /// passwords; trust over both before (a new cluster until its first
    /// start secures it). The server listens on nothing but loopback.
    fn write_access(&self) -> Result<()> {
        let hba = if self.record.secrets.is_some() {
            "# Written by the database crate's cluster launcher: passwords over loopback\n\
             # (secrets.toml beside cluster.toml), the socket for the cluster's OS users.\n\
             local all         all              peer map=owners\n\
             host  all         all 127.0.0.1/32 scram-sha-256\n\
             local replication all              peer map=owners\n\
             host  replication all 127.0.0.1/32 scram-sha-256\n"
        } else {
            "# Written by the database crate's cluster launcher: trust until the cluster's\n\
             # first start sets its passwords (then passwords over loopback).\n\
             local all         all              trust\n\
             host  all         all 127.0.0.1/32 trust\n\
             local replication all              trust\n\
             host  replication all 127.0.0.1/32 trust\n"
        };
        let mut owners = vec![current_os_user()?];
        if let Some(server) = &self.record.os_user {
            owners.push(server.clone());
        }
        owners.dedup();
        let mut ident = String::from(
            "# Written by the database crate's cluster launcher: the OS users who may use the\n\
             # socket as postgres, and any OS user as the role of its own name.\n",
        );
        for user in &owners {
            ident.push_str(&format!("owners  {user}  postgres\n"));
        }
        ident.push_str("owners  /^(.*)$  \\1\n");
        write(&self.record.data_dir.join("pg_hba.conf"), hba)?;
        write(&self.record.data_dir.join("pg_ident.conf"), &ident)?;
        if let Some(name) = &self.record.os_user {
            let user = OsUser::lookup(name)?;
            user.chown(&self.record.data_dir.join("pg_hba.conf"))?;
            user.chown(&self.record.data_dir.join("pg_ident.conf"))?;
        }
        Ok(())
    }

    /// A command of the server's binaries, run as the server's OS user.
    fn command(&self, tool: &str) -> Command {
        let program = self.record.bin_dir.join(tool);
        let mut cmd = match &self.record.os_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        // The server's user may not be able to enter the caller's directory,
        // and these variables would point the tools elsewhere.
        cmd.current_dir("/").stdin(Stdio::null());
        for var in [
            "PGDATA",
            "PGPORT",
            "PGHOST",
            "PGUSER",
            "PGDATABASE",
            "PGOPTIONS",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn run(&self, tool: &'static str, args: impl FnOnce(&mut Command)) -> Result<Output> {
        let mut cmd = self.command(tool);
        args(&mut cmd);
        cmd.output().map_err(|e| spawn_error(tool, e))
    }
}
/// The name of the OS user running this process.
fn current_os_user() -> Result<String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .map_err(|e| spawn_error("id", e))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The processes whose parent is `pid` (from `/proc`; none elsewhere).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            // "pid (name) state ppid ...": the name may hold spaces and parentheses.
            fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                stat.rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    .and_then(|ppid| ppid.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

/// A port in `PORT_RANGE` that nothing listens on now, tried from a
/// varying start so parallel callers rarely pick the same one.
fn free_port() -> Result<u16> {
    let span = (PORT_RANGE.end() - PORT_RANGE.start() + 1) as u32;
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    (0..span)
        .map(|i| PORT_RANGE.start() + ((seed.wrapping_add(i)) % span) as u16)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .ok_or_else(|| {
            OpsError::config(format!(
                "no free port in {}-{} on 127.0.0.1",
                PORT_RANGE.start(),
                PORT_RANGE.end()
            ))
        })
}

/// A value for `pg_ctl -o`, which the server splits on spaces.
fn quote_option(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

fn create_dir(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| io_error(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io_error(path, e))
}

fn remove_dir(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path, e)),
        _ => Ok(()),
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, source: std::io::Error) -> OpsError {
    OpsError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn spawn_error(tool: &'static str, e: std::io::Error) -> OpsError {
    OpsError::Tool {
        tool,
        message: format!("cannot run it: {e}"),
    }
}

fn tool_error(tool: &'static str, doing: &str, out: &Output) -> OpsError {
    OpsError::Tool {
        tool,
        message: format!(
            "{doing} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_in_the_range() {
        assert!(PORT_RANGE.contains(&free_port().unwrap()));
    }
}
