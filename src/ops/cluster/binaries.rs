//! Finding the installed server binaries: nothing is ever downloaded.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ops::{OpsError, OpsResult as Result};

/// What to say when no server binaries exist.
const INSTALL_HINT: &str = "install PostgreSQL's server package, or set DATABASE_URL to a server you already have:\n  \
     Debian/Ubuntu:   sudo apt-get install postgresql\n  \
     Fedora/RHEL:     sudo dnf install postgresql-server\n  \
     macOS/Homebrew:  brew install postgresql@16\n\
     (or point PG_BIN at the folder that holds initdb and pg_ctl)";
/// The folder of the server's binaries (`initdb`, `pg_ctl`, `postgres`, ...).
pub fn find_binaries() -> Result<PathBuf> {
    let pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    find_binaries_in(
        std::env::var_os("PG_BIN").map(PathBuf::from),
        pg_config,
        &versioned_dirs(),
        &path,
    )
}

/// Version-numbered install folders, newest first: Debian's
/// `/usr/lib/postgresql/<v>/bin`, the PGDG RPMs' `/usr/pgsql-<v>/bin`,
/// Homebrew's `postgresql@<v>`.
fn versioned_dirs() -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    let mut scan = |parent: &str, prefix: &str, suffix: &str| {
        let Ok(entries) = fs::read_dir(parent) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(v) = name
                .strip_prefix(prefix)
                .and_then(|v| v.parse::<u32>().ok())
            {
                found.push((v, e.path().join(suffix)));
            }
        }
    };
    scan("/usr/lib/postgresql", "", "bin");
    scan("/usr", "pgsql-", "bin");
    scan("/opt/homebrew/opt", "postgresql@", "bin");
    scan("/usr/local/opt", "postgresql@", "bin");
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// `find_binaries` with its inputs given: `PG_BIN` wins (and must be
/// right), then `pg_config --bindir`, the versioned folders, `PATH`.
pub fn find_binaries_in(
    pg_bin: Option<PathBuf>,
    pg_config: Option<PathBuf>,
    versioned: &[PathBuf],
    path: &[PathBuf],
) -> Result<PathBuf> {
    let has_server = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(dir) = pg_bin {
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(OpsError::config(format!(
                "PG_BIN={} holds no initdb and pg_ctl; {INSTALL_HINT}",
                dir.display()
            )))
        };
    }
    pg_config
        .into_iter()
        .chain(versioned.iter().cloned())
        .chain(path.iter().cloned())
        .find(|d| has_server(d))
        .ok_or_else(|| {
            OpsError::config(format!(
                "no PostgreSQL server binaries (initdb, pg_ctl) found; {INSTALL_HINT}"
            ))
        })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_binaries_anywhere_says_what_to_install() {
        let empty = tempfile::tempdir().unwrap();
        let e = find_binaries_in(None, None, &[], &[empty.path().to_path_buf()]).unwrap_err();
        let text = e.to_string();
        for line in [
            "apt-get install postgresql",
            "dnf install postgresql-server",
            "brew install",
            "DATABASE_URL",
        ] {
            assert!(text.contains(line), "{text}");
        }
        let e = find_binaries_in(Some(empty.path().into()), None, &[], &[]).unwrap_err();
        assert!(e.to_string().contains("PG_BIN"), "{e}");
    }

    #[test]
    fn binaries_come_from_pg_bin_first_then_the_search() {
        let dir = tempfile::tempdir().unwrap();
        for tool in ["initdb", "pg_ctl"] {
            fs::write(dir.path().join(tool), "").unwrap();
        }
        let empty = tempfile::tempdir().unwrap();
        let found =
            find_binaries_in(None, Some(empty.path().into()), &[dir.path().into()], &[]).unwrap();
        assert_eq!(found, dir.path());
        assert_eq!(
            find_binaries_in(Some(dir.path().into()), None, &[], &[]).unwrap(),
            dir.path()
        );
    }
}
