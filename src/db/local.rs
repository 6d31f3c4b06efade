//! The project-local PostgreSQL cluster, as a service sees it: where its
//! record lives (`.db/cluster.toml` at the project root) and the URL it
//! serves. Reading only: nothing here starts, stops or creates a server
//! (that is `db up`, through `ops::cluster`), so a service built without the
//! CLI never spawns a process.
//!
//! The project root is the nearest directory, from the working directory
//! upwards, that holds `diesel.toml`: the rule every `db` command uses.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The folder at the project root that holds the local cluster's state.
pub const STATE_DIR: &str = ".db";
/// The record's file name inside the state folder.
pub const RECORD_FILE: &str = "cluster.toml";
/// The passwords' file name inside the state folder (mode 0600: only the
/// project's owner reads it).
pub const SECRETS_FILE: &str = "secrets.toml";
/// The role a service logs in as on the local cluster (`db setup` creates
/// it; row-level security applies to it).
pub const SERVICE_ROLE: &str = "app";
/// The server's log file name inside the state folder.
pub const LOG_FILE: &str = "postgres.log";
/// The database `db setup` creates on the local cluster unless told otherwise.
pub const DEFAULT_DATABASE: &str = "database_dev";

/// What `db up` wrote down about a cluster: enough to find it, start it and
/// connect to it again with the same URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The TCP port on 127.0.0.1, kept across restarts so the URL is stable.
    pub port: u16,
    /// The data directory (PGDATA). Inside the state folder, or elsewhere
    /// when the server's OS user cannot reach the project (see `db up`).
    pub data_dir: PathBuf,
    /// The directory of the server's Unix socket.
    pub socket_dir: PathBuf,
    /// The folder of `initdb`/`pg_ctl` that created the data directory: a
    /// data directory only runs on the major version that made it.
    pub bin_dir: PathBuf,
    /// The OS user the server runs as when `db up` ran as root (`postgres`);
    /// absent when it runs as the user who started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
    /// The database the printed URL names (`database_dev` by default).
    pub database: String,
    /// The passwords of its roles (`secrets.toml`, beside the record, mode
    /// 0600), for TCP, where the cluster asks for them (SCRAM). `None` for a
    /// cluster made before passwords (trust), until `db up` secures it.
    #[serde(skip)]
    pub secrets: Option<Secrets>,
}

/// The passwords of the local cluster's roles: generated when it is
/// created, never printed by `db` except inside the URLs it prints.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secrets {
    /// `postgres`, the superuser (migrations, `db` commands).
    pub superuser: String,
    /// `app`, the service's role.
    pub service: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { *** }")
    }
}

impl Secrets {
    /// Two new random passwords.
    pub fn generate() -> Secrets {
        use rand::RngCore;
        let password = || {
            let mut bytes = [0u8; 24];
            rand::rng().fill_bytes(&mut bytes);
            hex::encode(bytes)
        };
        Secrets {
            superuser: password(),
            service: password(),
        }
    }
}

impl Record {
    /// The record in `state_dir`, if one was written.
    pub fn load(state_dir: &Path) -> Result<Option<Record>> {
        let path = state_dir.join(RECORD_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Config(format!("{}: {e}", path.display()))),
        };
        let mut record: Record =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let secrets_path = state_dir.join(SECRETS_FILE);
        record.secrets = match std::fs::read_to_string(&secrets_path) {
            Ok(text) => Some(
                toml::from_str(&text)
                    .map_err(|e| Error::Config(format!("{}: {e}", secrets_path.display())))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::Config(format!("{}: {e}", secrets_path.display()))),
        };
        Ok(Some(record))
    }

    /// Writes the record into `state_dir` (which must exist).
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let path = state_dir.join(RECORD_FILE);
        let text = toml::to_string(self).map_err(|e| Error::Config(format!("record: {e}")))?;
        let header = "# The project's local PostgreSQL, written by `db up`. `db down --destroy` removes it.\n";
        std::fs::write(&path, format!("{header}{text}"))
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        if let Some(secrets) = &self.secrets {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let path = state_dir.join(SECRETS_FILE);
            let text =
                toml::to_string(secrets).map_err(|e| Error::Config(format!("secrets: {e}")))?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            file.write_all(
                format!(
                    "# Passwords of the project's local PostgreSQL roles, written by `db up`.\n{text}"
                )
                .as_bytes(),
            )
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// The URL of `database` on this cluster as the superuser `postgres`
    /// (TCP on 127.0.0.1, with its password when the cluster has one).
    pub fn url_of(&self, database: &str) -> String {
        let password = self.secrets.as_ref().map(|s| format!(":{}", s.superuser));
        format!(
            "postgres://postgres{}@127.0.0.1:{}/{database}",
            password.unwrap_or_default(),
            self.port
        )
    }

    /// The URL of the recorded database: what `db up` prints.
    pub fn url(&self) -> String {
        self.url_of(&self.database)
    }

    /// The URL of the recorded database as the service's role (`app`), which
    /// row-level security applies to: what a service connects with when
    /// `DATABASE_URL` is unset. The superuser's URL for a cluster made before
    /// passwords (no service role yet).
    pub fn service_url(&self) -> String {
        match &self.secrets {
            Some(s) => format!(
                "postgres://{SERVICE_ROLE}:{}@127.0.0.1:{}/{}",
                s.service, self.port, self.database
            ),
            None => self.url(),
        }
    }

    /// Whether something accepts connections on the recorded port. A probe,
    /// not proof that it is this cluster; `db up` checks with `pg_ctl`.
    pub fn is_listening(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
    }
}

/// The project root for `start`: the nearest directory upwards holding `diesel.toml`.
pub fn project_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join("diesel.toml").is_file())
        .map(Path::to_path_buf)
}

/// The state folder (`.db/`) of the project `start` belongs to, whether or
/// not it exists yet; `None` outside a project.
pub fn state_dir(start: &Path) -> Option<PathBuf> {
    project_root(start).map(|root| root.join(STATE_DIR))
}

/// The URL a service uses when `DATABASE_URL` is unset: the local cluster's,
/// when the project has one and it is running. `Ok(None)` when there is no
/// project or no `.db/` record; an error naming `db up` when the cluster is
/// recorded but down. Never starts anything.
pub fn service_url() -> Result<Option<String>> {
    match std::env::current_dir() {
        Ok(cwd) => service_url_in(&cwd),
        Err(_) => Ok(None),
    }
}

/// `service_url` for the project that `start` belongs to.
pub fn service_url_in(start: &Path) -> Result<Option<String>> {
    let Some(dir) = state_dir(start) else {
        return Ok(None);
    };
    let Some(record) = Record::load(&dir)? else {
        return Ok(None);
    };
    if !record.is_listening() {
        return Err(Error::Unavailable(format!(
            "DATABASE_URL is not set and the project's local PostgreSQL ({}, port {}) is not \
             running: `db up` starts it (or set DATABASE_URL)",
            dir.display(),
            record.port
        )));
    }
    Ok(Some(record.service_url()))
}

/// The URL migrations go to when `DATABASE_URL` is unset: the local
/// cluster's superuser (it owns the tables and bypasses row-level security),
/// when the project has a running cluster. Never starts anything.
pub fn migration_url() -> Result<Option<String>> {
    let Ok(cwd) = std::env::current_dir() else {
        return Ok(None);
    };
    let Some(dir) = state_dir(&cwd) else {
        return Ok(None);
    };
    Ok(Record::load(&dir)?.map(|r| r.url()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(port: u16) -> Record {
        Record {
            port,
            data_dir: "/p/.db/data".into(),
            socket_dir: "/p/.db/socket".into(),
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            os_user: None,
            database: DEFAULT_DATABASE.into(),
            secrets: None,
        }
    }

    #[test]
    fn a_record_round_trips_and_names_its_url() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(Record::load(tmp.path()).unwrap(), None);
        let r = Record {
            os_user: Some("postgres".into()),
            ..record(54321)
        };
        r.save(tmp.path()).unwrap();
        assert_eq!(Record::load(tmp.path()).unwrap(), Some(r.clone()));
        assert_eq!(r.url(), "postgres://postgres@127.0.0.1:54321/database_dev");
        // With passwords: in the URLs, and in a file only its owner reads.
        let secrets = Secrets {
            superuser: "s3".into(),
            service: "p4".into(),
        };
        let r = Record {
            secrets: Some(secrets),
            ..r
        };
        r.save(tmp.path()).unwrap();
        assert_eq!(Record::load(tmp.path()).unwrap(), Some(r.clone()));
        assert_eq!(
            r.url(),
            "postgres://postgres:s3@127.0.0.1:54321/database_dev"
        );
        assert_eq!(
            r.service_url(),
            "postgres://app:p4@127.0.0.1:54321/database_dev"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(tmp.path().join(SECRETS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let record = std::fs::read_to_string(tmp.path().join(RECORD_FILE)).unwrap();
        assert!(!record.contains("s3") && !record.contains("p4"), "{record}");
    }

    #[test]
    fn the_state_dir_is_beside_the_nearest_diesel_toml() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("diesel.toml"), "").unwrap();
        let deep = tmp.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(state_dir(&deep), Some(tmp.path().join(".db")));
    }

    #[test]
    fn a_recorded_cluster_that_is_down_is_not_listening() {
        // Port 1 on loopback: nothing listens there.
        assert!(!record(1).is_listening());
    }
}
