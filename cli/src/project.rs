//! Where the project is: the nearest directory, from the working directory
//! upwards, that holds `diesel.toml`. `db new`, `db lint`, `db up` and the
//! check of embedded against on-disk migrations all use this one rule, so no
//! command silently uses or creates `./migrations` in an unrelated directory.

use std::path::{Path, PathBuf};

use database::ops::{OpsError, OpsResult as Result};

/// A project found on disk: its root and its migrations folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The directory that holds `diesel.toml`.
    pub root: PathBuf,
    /// The migrations folder `diesel.toml` names (`[migrations_directory] dir`),
    /// `migrations` beside it when it names none.
    pub migrations_dir: PathBuf,
}

/// The project that `start` (usually the working directory) belongs to, if any.
pub fn find(start: &Path) -> Result<Option<Project>> {
    // The rule itself lives in the library (`db::local`), which services use without the CLI.
    let Some(root) = database::db::local::project_root(start) else {
        return Ok(None);
    };
    let migrations_dir = root.join(migrations_dir_of(&root.join("diesel.toml"))?);
    Ok(Some(Project {
        root,
        migrations_dir,
    }))
}

/// `find` from the working directory, or an error that says how to get one.
pub fn current() -> Result<Project> {
    let cwd =
        std::env::current_dir().map_err(|e| OpsError::config(format!("working directory: {e}")))?;
    find(&cwd)?.ok_or_else(|| {
        OpsError::config(format!(
            "no diesel.toml in {} or any directory above it: run this inside the project \
             (the directory with diesel.toml and migrations/), or pass --migrations-dir DIR",
            cwd.display()
        ))
    })
}

/// The schema file `diesel.toml` names (`[print_schema] file`), if any.
pub fn schema_file(project: &Project) -> Option<PathBuf> {
    let text = std::fs::read_to_string(project.root.join("diesel.toml")).ok()?;
    let value: toml::Value = toml::from_str(&text).ok()?;
    let file = value.get("print_schema")?.get("file")?.as_str()?;
    Some(project.root.join(file))
}

/// The migrations directory a `diesel.toml` names, relative to its folder.
fn migrations_dir_of(config: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| OpsError::config(format!("{}: {e}", config.display())))?;
    let value: toml::Value = toml::from_str(&text)
        .map_err(|e| OpsError::config(format!("{}: {e}", config.display())))?;
    let dir = value
        .get("migrations_directory")
        .and_then(|m| m.get("dir"))
        .and_then(|d| d.as_str())
        .unwrap_or("migrations");
    Ok(PathBuf::from(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_diesel_toml_upwards() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::write(
            root.join("diesel.toml"),
            "[migrations_directory]\ndir = \"db/migrations\"\n",
        )
        .unwrap();
        let deep = root.join("src/a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let p = find(&deep).unwrap().unwrap();
        assert_eq!(p.root, root);
        assert_eq!(p.migrations_dir, root.join("db/migrations"));
    }

    #[test]
    fn no_project_outside_one() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(find(tmp.path()).unwrap(), None);
    }
}
