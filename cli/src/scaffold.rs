//! `db new <name>`: a timestamped migration folder, named the way Diesel
//! names them, so `diesel migration generate` and `db new` are interchangeable.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use database::Error;
use database::ops::{OpsError, OpsResult as Result};

/// Creates `dir/YYYY-MM-DD-HHMMSS_<name>/{up.sql,down.sql}` and returns the folder.
pub fn new_migration(dir: &Path, name: &str, now: DateTime<Utc>) -> Result<PathBuf> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(Error::invalid(
            "name",
            "format",
            "a migration name is 1 to 100 characters of a-z, 0-9 and _ (e.g. add_user_locale)",
        )
        .into());
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| OpsError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let version = now.format("%Y-%m-%d-%H%M%S").to_string();
    // Two migrations with one version would be one version to Diesel.
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let existing = entry
            .map_err(io(dir))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if existing.starts_with(&format!("{version}_")) {
            return Err(Error::Conflict {
                constraint: "migration_version".into(),
                message: format!(
                    "{existing} already has version {version}; wait a second and retry"
                ),
            }
            .into());
        }
    }
    let folder = dir.join(format!("{version}_{name}"));
    std::fs::create_dir(&folder).map_err(io(&folder))?;
    let up = folder.join("up.sql");
    std::fs::write(
        &up,
        format!("-- {name}: what this migration changes, and why.\n\n"),
    )
    .map_err(io(&up))?;
    let down = folder.join("down.sql");
    std::fs::write(
        &down,
        "-- Undo everything up.sql does, in reverse order.\n\n",
    )
    .map_err(io(&down))?;
    Ok(folder)
}

/// A name `new_migration` takes, made from one it refuses: lower case, runs
/// of anything but a-z and 0-9 as one `_` ("Add Users!" gives add_users).
pub fn suggested_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let out: String = out.trim_end_matches('_').chars().take(100).collect();
    if out.is_empty() {
        "describe_the_change".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_diesel_style_folder_and_refuses_bad_names() {
        let tmp = tempfile::tempdir().unwrap();
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2027, 1, 2, 3, 4, 5).unwrap();
        let folder = new_migration(tmp.path(), "add_locale", now).unwrap();
        assert_eq!(folder.file_name().unwrap(), "2027-01-02-030405_add_locale");
        assert!(folder.join("up.sql").is_file() && folder.join("down.sql").is_file());
        assert!(matches!(
            new_migration(tmp.path(), "other", now),
            Err(OpsError::Db(Error::Conflict { .. }))
        ));
        for bad in ["", "Add", "drop table", "a/b"] {
            let Err(OpsError::Db(err)) = new_migration(tmp.path(), bad, now) else {
                panic!("{bad:?} accepted or refused for another reason");
            };
            assert_eq!(err.invalid_fields(), vec!["name"], "{bad:?}");
        }
    }

    #[test]
    fn a_refused_name_gets_a_suggestion_the_rule_takes() {
        let tmp = tempfile::tempdir().unwrap();
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2027, 1, 2, 3, 4, 5).unwrap();
        for (bad, good) in [
            ("Add Users!", "add_users"),
            ("  drop--table  x", "drop_table_x"),
            ("!!!", "describe_the_change"),
        ] {
            assert_eq!(suggested_name(bad), good);
            assert!(new_migration(tmp.path(), good, now).is_ok(), "{good}");
            std::fs::remove_dir_all(tmp.path()).unwrap();
        }
    }
}
