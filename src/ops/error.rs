//! `OpsError`: what the operator's commands (`ops::*`) can fail with beyond
//! the library's own `crate::Error`: files that cannot be read or written
//! and external programs (`pg_dump`, `diesel`, `pg_ctl`) that are missing or
//! fail. A service's handlers never meet these, so they are not variants of
//! `crate::Error`.

use crate::Error;

/// Result of the operator's commands.
pub type OpsResult<T, E = OpsError> = std::result::Result<T, E>;

/// Everything an operator's command can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// The data layer refused or failed (the library's own error).
    #[error(transparent)]
    Db(#[from] Error),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },

    /// An external tool (`pg_dump`, `diesel`, `pg_ctl`) is missing or failed.
    #[error("{tool}: {message}")]
    Tool {
        /// The program.
        tool: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl From<crate::migrate::MigrationError> for OpsError {
    fn from(e: crate::migrate::MigrationError) -> Self {
        OpsError::Db(e.into())
    }
}

impl From<diesel::result::Error> for OpsError {
    fn from(e: diesel::result::Error) -> Self {
        OpsError::Db(e.into())
    }
}

impl OpsError {
    /// `crate::Error::Config`: the operator's setup is wrong (not retryable).
    pub fn config(message: impl Into<String>) -> Self {
        OpsError::Db(Error::Config(message.into()))
    }
}
