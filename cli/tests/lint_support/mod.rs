//! What the lint tests share: the labeled corpus (tests/lint_corpus/cases.toml)
//! and writing migrations folders (tests/lint.rs, tests/lint_trace.rs).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The `db` binary built for these tests.
pub const DB_BIN: &str = env!("CARGO_BIN_EXE_db");

/// The corpus file.
pub const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lint_corpus/cases.toml");

/// The corpus: a shared setup and the cases (see the file's header).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corpus {
    pub base_setup: String,
    pub case: Vec<Case>,
}

/// One labeled migration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub family: String,
    pub label: String,
    pub sql: String,
    pub setup: Option<String>,
    pub setup_extra: Option<String>,
    /// Why it is dangerous, when no lock, scan or rewrite shows it.
    pub why: Option<String>,
    /// The warning that flags the case, when the danger depends on row
    /// counts lint cannot see (it judges the shape): counted like an error.
    pub warning: Option<String>,
    #[serde(default = "yes")]
    pub transaction: bool,
    #[serde(default = "pg15")]
    pub pg_version: u32,
}

fn yes() -> bool {
    true
}

fn pg15() -> u32 {
    15
}

/// Writes the case as a migrations folder under `root`.
pub fn write_case(root: &Path, corpus: &Corpus, case: &Case) -> PathBuf {
    let dir = root.join(&case.name).join("migrations");
    let setup = format!(
        "{}\n{}",
        case.setup.as_deref().unwrap_or(&corpus.base_setup),
        case.setup_extra.as_deref().unwrap_or_default()
    );
    for (folder, up, transaction) in [
        ("2000-01-01-000000_setup", setup.as_str(), true),
        (
            "2000-01-02-000000_case",
            case.sql.as_str(),
            case.transaction,
        ),
    ] {
        let m = dir.join(folder);
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("up.sql"), up).unwrap();
        std::fs::write(m.join("down.sql"), "SELECT 1;\n").unwrap();
        if !transaction {
            std::fs::write(m.join("metadata.toml"), "run_in_transaction = false\n").unwrap();
        }
    }
    dir
}

impl Corpus {
    /// The corpus, read from its file.
    pub fn load() -> Corpus {
        toml::from_str(&std::fs::read_to_string(CORPUS).unwrap()).unwrap()
    }
}

/// Writes `dir/name/{up.sql, down.sql[, metadata.toml]}`.
pub fn write_migration(dir: &Path, name: &str, up: &str, down: Option<&str>, no_transaction: bool) {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("up.sql"), up).unwrap();
    if let Some(down) = down {
        std::fs::write(folder.join("down.sql"), down).unwrap();
    }
    if no_transaction {
        std::fs::write(folder.join("metadata.toml"), "run_in_transaction = false\n").unwrap();
    }
}
