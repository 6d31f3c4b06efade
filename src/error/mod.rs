//! The one error type that every function of the crate returns.
//!
//! Callers match on the variants to decide what to do: `NotFound` → 404,
//! `Invalid` → 422 with the field list, `Conflict`/`Stale` → 409,
//! `Unavailable` → 503 and retry. Anything else is a bug or an outage and
//! stays wrapped in `Database` with Diesel's own error.

use std::borrow::Cow;
use std::fmt;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub(crate) mod migration;
mod sqlite;
mod validation;

pub use validation::validate;

pub use sqlite::FOREIGN_KEY_UNNAMED;
pub(crate) use sqlite::UNIQUE_FAILED;

use migration::MigrationError;

// The message prefixes by which the connection layer (`db::call`) marks
// what it knows of a failed call, read back by `From<DieselError>` below.

/// The start of the message of an error whose outcome is unknown (a
/// `COMMIT`, or a write outside a transaction, in flight when the connection
/// failed or the deadline passed): `crate::Error` reports it as
/// `CommitOutcomeUnknown`, never as retryable.
pub(crate) const OUTCOME_UNKNOWN: &str = "outcome unknown: ";

/// The start of the message of a statement the client-side deadline cut
/// short, when nothing of it can have committed: `crate::Error::Timeout { kind: Client }`.
pub(crate) const DEADLINE_PASSED: &str = "deadline passed: ";

/// The start of the message of a write the server refused because it
/// accepts none (SQLSTATE 25006 on a session that did not ask for read-only
/// work): the connection reached a standby or a fenced old primary, so it is
/// closed, and `crate::Error` reports a retryable `Unavailable` (nothing was
/// written).
pub(crate) const READ_ONLY_SERVER: &str = "the server accepts no writes: ";

/// The parameter of a struct-level validation error that names its field
/// (set by `input::json_field`, read by `From<ValidationErrors>`).
pub(crate) const FIELD_PARAM: &str = "field";

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the data layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The row the caller asked for does not exist (or is not visible to it).
    #[error("{entity} not found")]
    NotFound {
        /// The kind of row, e.g. `"user"`.
        entity: &'static str,
    },

    /// A uniqueness or referential rule of the database, or a domain rule,
    /// was violated. Every rule a caller may want to handle has a `pub const`
    /// in its table's module (`users::EMAIL_TAKEN`, `tenant_members::LAST_OWNER`,
    /// `execution_steps::EXECUTION_NOT_RUNNING`, ...); test with `is_conflict`.
    #[error("conflict on {constraint}: {message}")]
    Conflict {
        /// The name of the violated constraint or rule, e.g. `users_email_lower_key`.
        constraint: String,
        /// What the database (or the rule) said.
        message: String,
    },

    /// The input was rejected before anything was written.
    #[error("invalid input: {0}")]
    Invalid(InvalidInput),

    /// An optimistic-concurrency check failed: somebody else changed the row first.
    #[error("{entity} was changed concurrently (expected version {expected}); reload and retry")]
    Stale {
        /// The kind of row.
        entity: &'static str,
        /// The version the caller based its change on.
        expected: i64,
    },

    /// A state machine refused a transition. `from` and `to` are the labels
    /// of the domain's status enum (`ExecutionStatus::as_str()`, its
    /// `Display`); test with `is_illegal_transition_to`.
    #[error("illegal transition from {from} to {to}")]
    IllegalTransition {
        /// The current state.
        from: String,
        /// The requested state.
        to: String,
    },

    /// A single-use token could not be redeemed.
    #[error("token rejected: {0}")]
    TokenRejected(TokenRejection),

    /// The database cannot be reached right now (pool exhausted, connection
    /// refused, server restarting). Safe to retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),

    /// The transaction lost a race the server could not resolve (a deadlock,
    /// SQLSTATE 40P01, or a serialization failure, 40001) and was rolled back:
    /// run the whole transaction again.
    #[error("transaction rolled back ({reason}); run it again: {message}")]
    RetryTransaction {
        /// Deadlock or serialization failure.
        reason: RetryReason,
        /// What the server said.
        message: String,
    },

    /// A time limit fired and the statement was cancelled; nothing of it is
    /// committed. Not retryable by default: the same work will likely take
    /// as long again.
    #[error("{kind}: {message}")]
    Timeout {
        /// Which limit.
        kind: TimeoutKind,
        /// What was cancelled, and where the limit is configured.
        message: String,
    },

    /// A `COMMIT` was sent but its answer never came (the connection broke or
    /// the client-side deadline fired): the transaction may or may not have
    /// committed. Check before retrying anything that is not idempotent.
    #[error("outcome of COMMIT unknown: {0}")]
    CommitOutcomeUnknown(String),

    /// The database's schema is not what this code expects (a table or column
    /// it uses does not exist, SQLSTATE 42P01/42703): usually migrations that
    /// have not been applied yet.
    #[error(
        "{0}: the database schema is older than this code; are migrations pending? (`db status` lists them, `db migrate` applies them)"
    )]
    SchemaMismatch(String),

    /// Row-level security refused the statement: a row written with a
    /// tenant other than the context's (a policy's `WITH CHECK`), or a table
    /// the role may not touch (SQLSTATE 42501). Nothing was written. Not
    /// retryable.
    #[error("forbidden by row-level security: {0}")]
    Forbidden(String),

    /// The configuration (environment, URL, credentials, a missing database)
    /// is wrong. Not retryable: it will not fix itself.
    #[error("configuration error: {0}")]
    Config(String),

    /// The backend `DATABASE_URL` names cannot do this: a PostgreSQL-only
    /// domain or command asked of a SQLite database. Not retryable.
    #[error("unsupported on this backend: {0}")]
    Unsupported(String),

    /// The migration engine refused or failed.
    #[error(transparent)]
    Migration(#[from] MigrationError),

    /// Any other database error.
    #[error("database error: {0}")]
    Database(DieselError),
}

/// Why the server rolled a transaction back on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// SQLSTATE 40P01.
    Deadlock,
    /// SQLSTATE 40001 (`SERIALIZABLE`/`REPEATABLE READ` conflicts).
    SerializationFailure,
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Deadlock => "deadlock",
            Self::SerializationFailure => "serialization failure",
        })
    }
}

/// Which time limit fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// The server's `statement_timeout` (`DB_STATEMENT_TIMEOUT_MS`), SQLSTATE 57014.
    Statement,
    /// The server's `lock_timeout` (SQLSTATE 55P03): a lock held by another session.
    Lock,
    /// The client-side deadline (`DB_QUERY_TIMEOUT_MS`): no answer in time;
    /// the connection was discarded.
    Client,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Statement => "statement timeout",
            Self::Lock => "lock timeout",
            Self::Client => "query deadline",
        })
    }
}

/// Why a single-use token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// No token with this value exists.
    Unknown,
    /// The token exists but its expiry has passed.
    Expired,
    /// The token was already used (or revoked).
    AlreadyUsed,
}

impl fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "unknown token",
            Self::Expired => "token expired",
            Self::AlreadyUsed => "token already used",
        })
    }
}

/// One rejected field of an input struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name as the caller spelled it (`email`, `graph.edges[2].target`).
    pub field: String,
    /// A machine-readable code (`email`, `length`, `range`, `url`, ...).
    pub code: Cow<'static, str>,
    /// A human-readable explanation.
    pub message: String,
}

/// The list of rejected fields of one input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InvalidInput {
    /// Every rejected field, in field order.
    pub fields: Vec<FieldError>,
}

impl InvalidInput {
    /// An input error about a single field.
    pub fn field(
        field: impl Into<String>,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            fields: vec![FieldError {
                field: field.into(),
                code: code.into(),
                message: message.into(),
            }],
        }
    }

    /// The names of the rejected fields, each once, in order.
    pub fn field_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            if !names.contains(&f.field.as_str()) {
                names.push(&f.field);
            }
        }
        names
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl Error {
    /// Shorthand for `Error::Invalid` about one field.
    pub fn invalid(
        field: impl Into<String>,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self::Invalid(InvalidInput::field(field, code, message))
    }

    /// Whether retrying the same call later may succeed and is safe: an
    /// outage before anything could commit (`Unavailable`) or a transaction
    /// the server rolled back on its own (`RetryTransaction`). Timeouts,
    /// configuration errors, refusals and an unknown commit outcome are not:
    /// retrying blindly would repeat or hide them.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::RetryTransaction { .. })
    }

    /// The names of the rejected fields when this is `Error::Invalid`, else empty.
    pub fn invalid_fields(&self) -> Vec<&str> {
        match self {
            Self::Invalid(input) => input.field_names(),
            _ => Vec::new(),
        }
    }

    /// Whether this is `Conflict` on `rule`: one of the domains' constants
    /// (`users::EMAIL_TAKEN`, `tenant_members::LAST_OWNER`, ...), so a
    /// caller tells the conflicts it handles apart without spelling a
    /// constraint name: `if e.is_conflict(tenants::SLUG_TAKEN) { ... }`.
    pub fn is_conflict(&self, rule: &str) -> bool {
        matches!(self, Self::Conflict { constraint, .. } if constraint == rule)
    }

    /// Whether this is `IllegalTransition` towards `to`, a status of the
    /// domain's state machine: `e.is_illegal_transition_to(ExecutionStatus::Completed)`.
    pub fn is_illegal_transition_to(&self, to: impl fmt::Display) -> bool {
        matches!(self, Self::IllegalTransition { to: t, .. } if *t == to.to_string())
    }
}

/// Messages PostgreSQL sends when it is shutting down or not yet accepting
/// work. diesel-async only keeps the SQLSTATE for a handful of kinds, so these
/// (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now)
/// arrive as `Unknown` and are recognised by their fixed server text.
const UNAVAILABLE_MESSAGES: &[&str] = &[
    "terminating connection due to administrator command",
    "terminating connection because of crash of another server process",
    // A backend that outlives its postmaster (killed, or crashed) says this
    // before it exits.
    "terminating connection due to unexpected postmaster exit",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "connection closed",
    "connection reset",
    // PgBouncer's own (SQLSTATE 08P01): the pooler lost or could not get a
    // server connection, or gave up waiting for one.
    "server conn crashed",
    "query_wait_timeout",
    "client_idle_timeout",
    "no more connections allowed",
    "pgbouncer cannot connect to server",
    "server login has been failing",
    "client_login_timeout",
];

/// Whether a server message says a named prepared statement was not this
/// connection's: missing (26000), taken (42P05), with another parameter
/// count (08P01 "bind message supplies N parameters, but prepared statement
/// ... requires M") or other parameter types (22P03 "incorrect binary data
/// format in bind parameter N"). What a transaction-mode pooler does to a
/// client that prepares by name; the connection is closed after it.
pub(crate) fn is_pooler_collision(message: &str) -> bool {
    (message.starts_with("prepared statement \"")
        && (message.ends_with("does not exist") || message.ends_with("already exists")))
        || (message.starts_with("bind message supplies") && message.contains("prepared statement"))
        || message.starts_with("incorrect binary data format in bind parameter")
}

/// Whether a server or driver message says the connection or the server
/// went away (the request may or may not have been carried out).
pub(crate) fn is_outage_message(message: &str) -> bool {
    UNAVAILABLE_MESSAGES.iter().any(|m| message.contains(m))
}

/// diesel-async keeps the SQLSTATE of only a few error kinds and reports
/// the rest as `Unknown` with the server's message, so these are recognised by
/// the server's fixed English text (PostgreSQL's default `lc_messages`; a
/// server with translated messages reports them as `Database`).
fn classify_by_message(message: &str) -> Option<Error> {
    let owned = || message.to_owned();
    if message.starts_with("deadlock detected") {
        return Some(Error::RetryTransaction {
            reason: RetryReason::Deadlock,
            message: owned(),
        });
    }
    if message.starts_with("could not serialize access") {
        return Some(Error::RetryTransaction {
            reason: RetryReason::SerializationFailure,
            message: owned(),
        });
    }
    if message.contains("canceling statement due to statement timeout") {
        return Some(Error::Timeout {
            kind: TimeoutKind::Statement,
            message: format!("{message} (DB_STATEMENT_TIMEOUT_MS)"),
        });
    }
    if message.contains("canceling statement due to lock timeout") {
        return Some(Error::Timeout {
            kind: TimeoutKind::Lock,
            message: owned(),
        });
    }
    // The call contract (`db::call`): what was in flight when the
    // connection failed or the deadline passed.
    if let Some(rest) = message.strip_prefix(OUTCOME_UNKNOWN) {
        return Some(Error::CommitOutcomeUnknown(rest.to_owned()));
    }
    if message.starts_with(READ_ONLY_SERVER) {
        return Some(Error::Unavailable(owned()));
    }
    if let Some(rest) = message.strip_prefix(DEADLINE_PASSED) {
        return Some(Error::Timeout {
            kind: TimeoutKind::Client,
            message: rest.to_owned(),
        });
    }
    // 42501: a policy's WITH CHECK ("new row violates row-level security
    // policy for table ...") or a missing privilege.
    if message.starts_with("new row violates row-level security policy")
        || message.starts_with("permission denied for")
    {
        return Some(Error::Forbidden(owned()));
    }
    if is_pooler_collision(message) {
        return Some(Error::Config(format!(
            "{message}: a transaction-mode pooler (PgBouncer, Supavisor) seems to sit in front of \
             the server, handing this connection's named statements to other clients' server \
             connections; set DB_POOLER=transaction, which sends only unnamed statements"
        )));
    }
    // 42P01 undefined_table, 42703 undefined_column, 42704 undefined_object (types).
    let undefined = (message.starts_with("relation ")
        || message.starts_with("column ")
        || message.starts_with("type "))
        && message.ends_with("does not exist");
    if undefined {
        return Some(Error::SchemaMismatch(owned()));
    }
    None
}

impl From<DieselError> for Error {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => Error::NotFound { entity: "row" },
            DieselError::DatabaseError(kind, info) => {
                // SQLite names constraints only in its messages.
                if info.constraint_name().is_none()
                    && let Some(e) = sqlite::classify(&kind, info.message())
                {
                    return e;
                }
                if matches!(kind, DatabaseErrorKind::Unknown)
                    && let Some(e) = classify_by_message(info.message())
                {
                    return e;
                }
                let constraint = || info.constraint_name().unwrap_or("unknown").to_owned();
                match kind {
                    DatabaseErrorKind::UniqueViolation
                    | DatabaseErrorKind::ForeignKeyViolation
                    | DatabaseErrorKind::RestrictViolation
                    | DatabaseErrorKind::ExclusionViolation => Error::Conflict {
                        constraint: constraint(),
                        message: info.details().unwrap_or(info.message()).to_owned(),
                    },
                    DatabaseErrorKind::CheckViolation => Error::invalid(
                        constraint(),
                        "check",
                        match info.constraint_name() {
                            Some(name) => format!("violates check constraint {name}"),
                            None => info.message().to_owned(),
                        },
                    ),
                    DatabaseErrorKind::NotNullViolation => Error::invalid(
                        info.column_name().unwrap_or("unknown").to_owned(),
                        "required",
                        info.message().to_owned(),
                    ),
                    DatabaseErrorKind::SerializationFailure => Error::RetryTransaction {
                        reason: RetryReason::SerializationFailure,
                        message: info.message().to_owned(),
                    },
                    DatabaseErrorKind::ClosedConnection
                    | DatabaseErrorKind::UnableToSendCommand => {
                        Error::Unavailable(info.message().to_owned())
                    }
                    _ if is_outage_message(info.message()) => {
                        Error::Unavailable(info.message().to_owned())
                    }
                    kind => Error::Database(DieselError::DatabaseError(kind, info)),
                }
            }
            other => Error::Database(other),
        }
    }
}

impl Error {
    /// Turns a foreign-key `Conflict` on `constraint` into `NotFound { entity }`:
    /// inserting a row that points at a missing parent means the parent was
    /// not found, which is what the caller needs to hear. On SQLite, which
    /// names no foreign key (`FOREIGN_KEY_UNNAMED`), any `..._fkey` matches:
    /// a statement that can break more than one foreign key there checks its
    /// parents itself.
    pub(crate) fn not_found_on(self, constraint: &str, entity: &'static str) -> Self {
        match self {
            Error::Conflict { constraint: c, .. }
                if c == constraint
                    || (c == FOREIGN_KEY_UNNAMED && constraint.ends_with("_fkey")) =>
            {
                Error::NotFound { entity }
            }
            other => other,
        }
    }
}
