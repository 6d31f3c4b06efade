//! The allow-list file: findings in landed migrations that were reviewed and
//! accepted. A landed migration is never edited (its checksum would change),
//! so an `-- db-lint: allow` comment cannot be added to it; an entry here,
//! keyed by the migration's version and the rule, with the reason, does the
//! same job. The file is `lint-allow.toml` beside the migrations folder
//! (in the project root for the usual layout):
//!
//! ```toml
//! [[allow]]
//! version = "20261121100000"
//! rule = "drop-column"
//! reason = "users.image was unused since release 12; dropping it was reviewed in #42"
//! ```

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::{Finding, Rule};
use database::migrate::MigrationSet;

/// The allow-list's file name, looked up in the migrations folder's parent.
pub const FILE_NAME: &str = "lint-allow.toml";

/// A broken allow-list: a usage or configuration error (exit 2), not a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// One accepted finding: every finding of `rule` in migration `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The migration's version (`20261121100000`).
    pub version: String,
    /// The rule allowed there.
    pub rule: Rule,
    /// Why it is acceptable (required).
    pub reason: String,
}

/// The entries of an allow-list file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// The entries, in file order.
    pub entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    allow: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    version: String,
    rule: String,
    reason: Option<String>,
}

impl AllowList {
    /// Reads `path` (a missing file is an empty list) and checks every entry
    /// against `set`: a known version, a known rule, a reason.
    pub fn load(path: &Path, set: &MigrationSet) -> Result<AllowList, ConfigError> {
        if !path.exists() {
            return Ok(AllowList::default());
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::parse(&text, set).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Parses the text of an allow-list file.
    pub fn parse(text: &str, set: &MigrationSet) -> Result<AllowList, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut entries = Vec::new();
        for (i, raw) in file.allow.into_iter().enumerate() {
            let at = format!("entry {} ({} / {})", i + 1, raw.version, raw.rule);
            let rule: Rule = raw.rule.parse().map_err(|e| format!("{at}: {e}"))?;
            if set.iter().all(|m| m.version != raw.version) {
                return Err(format!(
                    "{at}: no migration has version {} (the folder name's digits, e.g. 20261121100000)",
                    raw.version
                ));
            }
            let reason = raw.reason.unwrap_or_default();
            if reason.trim().is_empty() {
                return Err(format!("{at}: every entry needs a reason"));
            }
            entries.push(Entry {
                version: raw.version,
                rule,
                reason,
            });
        }
        Ok(AllowList { entries })
    }

    /// Whether an entry covers `f`.
    pub fn allows(&self, f: &Finding) -> bool {
        self.entries
            .iter()
            .any(|e| e.version == f.version && e.rule == f.rule)
    }

    /// Entries that match none of `findings` (stale: worth removing).
    pub fn unused<'a>(&'a self, findings: &[Finding]) -> Vec<&'a Entry> {
        self.entries
            .iter()
            .filter(|e| {
                !findings
                    .iter()
                    .any(|f| e.version == f.version && e.rule == f.rule)
            })
            .collect()
    }
}
