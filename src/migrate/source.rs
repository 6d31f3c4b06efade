//! Where migrations come from: the set embedded in the binary at compile
//! time, or a `migrations/` folder read at run time (`db --migrations-dir`).

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::MigrationError;

/// The files of one migration folder as `build.rs` embeds them.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedFiles {
    pub name: &'static str,
    pub up_sql: &'static str,
    pub down_sql: Option<&'static str>,
    pub metadata_toml: Option<&'static str>,
}

static EMBEDDED_FILES: &[EmbeddedFiles] =
    include!(concat!(env!("OUT_DIR"), "/embedded_migrations.rs"));

/// One migration: a folder `YYYY-MM-DD-HHMMSS_name` with `up.sql`,
/// `down.sql` and an optional `metadata.toml`.
#[derive(Clone)]
pub struct Migration {
    /// The version Diesel records: the folder name up to the first `_`,
    /// without dashes (`20261121100000`).
    pub version: String,
    /// The folder name (`2026-11-21-100000_create_auth`).
    pub name: String,
    /// The SQL that applies the migration.
    pub up_sql: Cow<'static, str>,
    /// The SQL that reverts it, if there is a `down.sql`.
    pub down_sql: Option<Cow<'static, str>>,
    /// `false` when `metadata.toml` says `run_in_transaction = false`.
    pub run_in_transaction: bool,
    /// Hex SHA-256 of `up.sql` exactly as it is, recorded when the
    /// migration is applied (older binaries compare this one).
    pub checksum: String,
    /// Hex SHA-256 of `normalize_sql(up.sql)`: what this engine compares, so
    /// CRLF line endings, trailing blanks or a BOM are not reported as edits.
    pub checksum_normalized: String,
}

impl fmt::Debug for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migration")
            .field("name", &self.name)
            .field("run_in_transaction", &self.run_in_transaction)
            .field("checksum", &self.checksum)
            .finish_non_exhaustive()
    }
}

/// Diesel's metadata.toml. Like Diesel, a present file without the key means
/// `false` (the key's serde default); only a missing file means `true`.
#[derive(serde::Deserialize)]
struct Metadata {
    #[serde(default)]
    run_in_transaction: bool,
}

impl Migration {
    fn new(
        name: &str,
        up_sql: Cow<'static, str>,
        down_sql: Option<Cow<'static, str>>,
        metadata_toml: Option<&str>,
    ) -> Result<Self, MigrationError> {
        let version = version_of(name).ok_or_else(|| MigrationError::Source {
            path: name.to_owned(),
            message:
                "a migration folder is named <version>_<name>, e.g. 2026-11-21-100000_create_users"
                    .into(),
        })?;
        let run_in_transaction = match metadata_toml {
            None => true,
            Some(text) => {
                toml::from_str::<Metadata>(text)
                    .map_err(|e| MigrationError::Source {
                        path: format!("{name}/metadata.toml"),
                        message: e.to_string(),
                    })?
                    .run_in_transaction
            }
        };
        let checksum = hex::encode(Sha256::digest(up_sql.as_bytes()));
        let checksum_normalized = hex::encode(Sha256::digest(normalize_sql(&up_sql).as_bytes()));
        Ok(Self {
            version,
            name: name.to_owned(),
            up_sql,
            down_sql,
            run_in_transaction,
            checksum,
            checksum_normalized,
        })
    }
}

impl Migration {
    /// The normalised checksum of the first `done` statements of `up.sql`:
    /// what an interrupted run records, so that a resume is refused when a
    /// statement that already ran has changed, and allowed when only a later
    /// one was fixed.
    pub fn prefix_checksum(&self, done: usize) -> String {
        let mut hasher = Sha256::new();
        for statement in super::split_statements(&self.up_sql).into_iter().take(done) {
            hasher.update(normalize_sql(statement).as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }
}

/// The text a checksum is taken of: without a UTF-8 BOM, with LF line
/// endings, without trailing blanks on any line and without blank lines at
/// the end. Nothing PostgreSQL runs differently depends on those (a string
/// literal spanning lines with trailing blanks is the one exception, and a
/// rare one in DDL); everything else, a single character included, counts.
pub fn normalize_sql(sql: &str) -> String {
    let sql = sql.strip_prefix('\u{feff}').unwrap_or(sql);
    let sql = sql.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(sql.len());
    for line in sql.split('\n') {
        out.push_str(line.trim_end_matches([' ', '\t']));
        out.push('\n');
    }
    let trimmed = out.trim_end_matches('\n').len();
    out.truncate(trimmed);
    out
}

/// Diesel's rule: the part before the first `_`, dashes removed.
fn version_of(name: &str) -> Option<String> {
    let (version, rest) = name.split_once('_')?;
    let version = version.replace('-', "");
    let valid = !version.is_empty()
        && version.len() <= 50
        && !rest.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit());
    valid.then_some(version)
}

/// An ordered set of migrations.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    migrations: Vec<Migration>,
}

impl MigrationSet {
    /// The migrations compiled into this binary from `migrations/`.
    pub fn embedded() -> &'static MigrationSet {
        static SET: OnceLock<MigrationSet> = OnceLock::new();
        SET.get_or_init(|| {
            Self::from_embedded(EMBEDDED_FILES)
                .expect("embedded migrations are valid: build.rs embedded them from migrations/")
        })
    }

    /// A set from files `build.rs` embedded (`migrations/` or `migrations_sqlite/`).
    pub(crate) fn from_embedded(files: &[EmbeddedFiles]) -> Result<MigrationSet, MigrationError> {
        {
            let migrations = files
                .iter()
                .map(|f| {
                    Migration::new(
                        f.name,
                        Cow::Borrowed(f.up_sql),
                        f.down_sql.map(Cow::Borrowed),
                        f.metadata_toml,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            MigrationSet::from_migrations(migrations)
        }
    }

    /// Reads a `migrations/` folder at run time.
    pub fn from_dir(dir: &Path) -> Result<MigrationSet, MigrationError> {
        let source_err = |path: &Path, e: std::io::Error| MigrationError::Source {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut migrations = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| source_err(dir, e))? {
            let entry = entry.map_err(|e| source_err(dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !path.join("up.sql").is_file() {
                continue;
            }
            let read = |file: &str| -> Result<Option<String>, MigrationError> {
                let p = path.join(file);
                if !p.is_file() {
                    return Ok(None);
                }
                std::fs::read_to_string(&p)
                    .map(Some)
                    .map_err(|e| source_err(&p, e))
            };
            let up = read("up.sql")?.unwrap_or_default();
            let down = read("down.sql")?;
            let metadata = read("metadata.toml")?;
            migrations.push(Migration::new(
                &name,
                Cow::Owned(up),
                down.map(Cow::Owned),
                metadata.as_deref(),
            )?);
        }
        Self::from_migrations(migrations)
    }

    /// Builds a set from migrations in any order; versions must be unique.
    pub fn from_migrations(mut migrations: Vec<Migration>) -> Result<Self, MigrationError> {
        migrations.sort_by(|a, b| a.version.cmp(&b.version));
        if let Some(w) = migrations.windows(2).find(|w| w[0].version == w[1].version) {
            return Err(MigrationError::Source {
                path: format!("{} and {}", w[0].name, w[1].name),
                message: format!("both have version {}", w[0].version),
            });
        }
        Ok(Self { migrations })
    }

    /// The migrations in version order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Migration> {
        self.migrations.iter()
    }

    /// How many migrations the set holds.
    pub fn len(&self) -> usize {
        self.migrations.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }

    /// The migration with this version (`20261121100000`) or folder name.
    pub fn get(&self, version_or_name: &str) -> Option<&Migration> {
        self.migrations
            .iter()
            .find(|m| m.version == version_or_name || m.name == version_or_name)
    }

    /// The migration a user means: a version (`20261121100000`), the same
    /// with dashes (`2026-11-21-100000`, as in folder names), or a folder name.
    pub fn find(&self, given: &str) -> Result<&Migration, MigrationError> {
        let given = given.trim().trim_end_matches('/');
        let given = given.rsplit('/').next().unwrap_or(given);
        self.get(given)
            .or_else(|| {
                let digits: String = given.chars().filter(|c| *c != '-').collect();
                self.get(&digits)
            })
            .ok_or_else(|| MigrationError::UnknownVersion(given.to_owned()))
    }

    /// A digest of every migration's name and checksum, and of the engine's
    /// own bookkeeping tables: equal sets of files run by the same engine give
    /// equal fingerprints (the test harness names its template by it).
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(super::history::SETUP_SQL.as_bytes());
        for m in &self.migrations {
            hasher.update(m.name.as_bytes());
            hasher.update([0]);
            hasher.update(m.checksum_normalized.as_bytes());
            hasher.update([u8::from(m.run_in_transaction)]);
        }
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_follows_diesel() {
        assert_eq!(
            version_of("2026-11-21-100000_create_auth").as_deref(),
            Some("20261121100000")
        );
        assert_eq!(
            version_of("00000000000000_diesel_initial_setup").as_deref(),
            Some("00000000000000")
        );
        assert_eq!(version_of("no_version_here"), None);
        assert_eq!(version_of("20261121"), None);
    }

    #[test]
    fn version_shapes_of_diesel_cli_2_3() {
        // `diesel migration generate` names folders with a sub-second suffix.
        assert_eq!(
            version_of("2026-11-30-101500-0000_add_x").as_deref(),
            Some("202611301015000000")
        );
        let set = MigrationSet::from_migrations(vec![
            Migration::new("2026-11-30-101500-0000_b", "".into(), None, None).unwrap(),
            Migration::new("2026-11-30-101500_a", "".into(), None, None).unwrap(),
            Migration::new("2026-11-30-101501_c", "".into(), None, None).unwrap(),
        ])
        .unwrap();
        let names: Vec<&str> = set.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "2026-11-30-101500_a",
                "2026-11-30-101500-0000_b",
                "2026-11-30-101501_c"
            ]
        );
        assert_eq!(
            set.find("2026-11-30-101500-0000").unwrap().name,
            "2026-11-30-101500-0000_b"
        );
    }

    #[test]
    fn targets_in_every_form() {
        let set = MigrationSet::embedded();
        let m = set.iter().nth(1).unwrap();
        let dashed = m.name.split('_').next().unwrap();
        for given in [
            m.version.as_str(),
            dashed,
            m.name.as_str(),
            &format!("migrations/{}/", m.name),
        ] {
            assert_eq!(set.find(given).unwrap().version, m.version, "{given}");
        }
        assert!(set.find("1999").is_err());
    }

    #[test]
    fn normalisation_ignores_only_noise() {
        let base = "CREATE TABLE t (a int);\n-- done\n";
        let same = |s: &str| normalize_sql(s) == normalize_sql(base);
        assert!(same("CREATE TABLE t (a int);\r\n-- done\r\n"));
        assert!(same("\u{feff}CREATE TABLE t (a int);  \n-- done\t\n\n\n"));
        assert!(same("CREATE TABLE t (a int);\n-- done"));
        assert!(!same("CREATE TABLE t (a bigint);\n-- done\n"));
        assert!(!same("CREATE TABLE t  (a int);\n-- done\n"));
        assert!(!same("CREATE TABLE t (a int);\n\n-- done\n"));
    }

    #[test]
    fn metadata_follows_diesel() {
        let m = |toml| Migration::new("1_x", "".into(), None, toml).unwrap();
        assert!(m(None).run_in_transaction);
        assert!(!m(Some("run_in_transaction = false")).run_in_transaction);
        assert!(m(Some("run_in_transaction = true")).run_in_transaction);
        assert!(!m(Some("")).run_in_transaction);
        assert!(Migration::new("1_x", "".into(), None, Some("run_in_transaction = 3")).is_err());
    }

    #[test]
    fn embedded_set_is_ordered_and_matches_diesels_embedding() {
        use diesel::migration::MigrationSource;
        let ours: Vec<String> = MigrationSet::embedded()
            .iter()
            .map(|m| m.version.clone())
            .collect();
        let mut diesels: Vec<String> =
            MigrationSource::<diesel::pg::Pg>::migrations(&crate::migrate::DIESEL_MIGRATIONS)
                .unwrap()
                .iter()
                .map(|m| m.name().version().to_string())
                .collect();
        diesels.sort();
        assert!(!ours.is_empty());
        assert_eq!(ours, diesels);
        assert!(ours.windows(2).all(|w| w[0] < w[1]));
    }
}
