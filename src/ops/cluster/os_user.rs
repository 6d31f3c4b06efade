//! PostgreSQL refuses to run as root: who runs it then, and where its data
//! can live.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::{create_dir, io_error, spawn_error};
use crate::ops::{OpsError, OpsResult as Result};

/// The OS user the server must run as.
pub(super) struct OsUser {
    pub(super) name: String,
    uid: u32,
    gid: u32,
}

impl OsUser {
    pub(super) fn lookup(name: &str) -> Result<OsUser> {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, name]).output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        match (id("-u"), id("-g")) {
            (Some(uid), Some(gid)) => Ok(OsUser {
                name: name.to_owned(),
                uid,
                gid,
            }),
            _ => Err(OpsError::config(format!(
                "PostgreSQL refuses to run as root, and there is no `{name}` OS user to run it as: \
                 create one (useradd --system {name}), or run `db` as an ordinary user"
            ))),
        }
    }

    /// Whether this user can enter `dir` (every folder above it included).
    pub(super) fn can_reach(&self, dir: &Path) -> bool {
        Command::new("runuser")
            .args(["-u", &self.name, "--", "test", "-x"])
            .arg(dir)
            .current_dir("/")
            .status()
            .is_ok_and(|s| s.success())
    }

    /// (uid, gid), to start a process as this user without `runuser`.
    pub(super) fn ids(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }

    pub(super) fn chown(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| io_error(path, e))
    }
}

/// `Some(postgres)` when running as root (the server refuses root), else `None`.
pub(super) fn server_user() -> Result<Option<OsUser>> {
    let euid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| spawn_error("id", e))?;
    if String::from_utf8_lossy(&euid.stdout).trim() != "0" {
        return Ok(None);
    }
    OsUser::lookup("postgres").map(Some)
}

/// A per-folder directory under `/var/tmp` for data the server's user cannot keep in `state_dir`.
pub(super) fn fallback_base(state_dir: &Path) -> Result<PathBuf> {
    let canonical = state_dir
        .canonicalize()
        .map_err(|e| io_error(state_dir, e))?;
    let hash = hex::encode(Sha256::digest(canonical.to_string_lossy().as_bytes()));
    let project = canonical
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = PathBuf::from("/var/tmp").join(format!("database-{project}-{}", &hash[..12]));
    create_dir(&base, 0o755)?;
    Ok(base)
}
