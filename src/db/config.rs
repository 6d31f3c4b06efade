//! `Config`: the settings of the data layer, read from the environment.

use std::fmt;
use std::time::Duration;

use super::url::{ConnString, redact_url};
use crate::error::{Error, Result};

/// How a connection is checked before the pool hands it out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recycle {
    /// Only check that the connection is open and has no open transaction.
    Fast,
    /// Also run a test query (one extra round trip per checkout).
    Verified,
}

/// Which statements connections may use: set by `DB_POOLER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooler {
    /// `none` (default): the server is reached directly (or through a
    /// session-mode pooler). Named, cached prepared statements, pipelining.
    #[default]
    None,
    /// `transaction`: a transaction-mode pooler (PgBouncer, Supavisor) sits
    /// in front. Only unnamed statements, nothing that outlives a
    /// transaction on the server; migrations go to `DATABASE_MIGRATION_URL`.
    Transaction,
}

/// Settings of the data layer. See the README's configuration table.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`: the database the pool connects to.
    pub database_url: String,
    /// `DATABASE_MIGRATION_URL`: where migrations run, when it differs (the
    /// server itself when the application goes through PgBouncer: the
    /// migration lock is session-level and does not survive transaction pooling).
    pub migration_url: Option<String>,
    /// `DB_POOL_SIZE`: the most connections the pool opens (default 10).
    pub pool_size: usize,
    /// `DB_CONNECT_TIMEOUT_SECS`: limit on opening a connection (default 10 s).
    pub connect_timeout: Duration,
    /// `DB_IDLE_TIMEOUT_SECS`: an idle connection is closed after this (default 20 s).
    pub idle_timeout: Duration,
    /// `DB_POOL_WAIT_TIMEOUT_SECS`: how long a caller waits for a free
    /// connection before getting `Error::Unavailable` (default 5 s).
    pub wait_timeout: Duration,
    /// `DB_STATEMENT_TIMEOUT_MS`: server-side limit per statement (default none).
    pub statement_timeout: Option<Duration>,
    /// `DB_STATEMENT_CACHE`: cache prepared statements per connection
    /// (default true). Has no effect in pooler mode, which prepares nothing
    /// by name; behind a transaction-mode pooler set `DB_POOLER` instead.
    pub statement_cache: bool,
    /// `DB_POOLER`: `none` (default) or `transaction` (see `Pooler`).
    pub pooler: Pooler,
    /// `DB_LOG_QUERIES`: log every statement and its duration through
    /// `tracing` (target `database::query`, level DEBUG).
    pub log_queries: bool,
    /// `DB_TRACE_RETURNED_ROWS`: give each PostgreSQL statement's span the
    /// number of rows it returned (`db.response.returned_rows`, opt-in in
    /// OpenTelemetry's conventions; default false).
    pub trace_returned_rows: bool,
    /// `DB_SQLCOMMENTER`: end each statement run under a context with a
    /// trace parent (`Ctx::correlate`) with a sqlcommenter `traceparent`
    /// comment, for `pg_stat_activity` and the server's logs (default
    /// false: in direct mode a commented statement is prepared on every
    /// run, outside the statement cache).
    pub sqlcommenter: bool,
    /// `DB_SLOW_QUERY_MS`: log statements slower than this at WARN, even when
    /// `log_queries` is off.
    pub slow_query: Option<Duration>,
    /// `DB_POOL_RECYCLE`: `fast` (default) or `verified`.
    pub recycle: Recycle,
    /// `DB_TCP_KEEPALIVE_SECS`: idle time before TCP keepalive probes (default 30 s).
    pub tcp_keepalive_idle: Duration,
    /// `DB_TCP_USER_TIMEOUT_SECS`: drop a connection whose sent data goes
    /// unacknowledged this long (default 30 s; 0 turns it off; Linux only).
    pub tcp_user_timeout: Option<Duration>,
    /// `DB_QUERY_TIMEOUT_MS`: the bound of every call that has no deadline
    /// of its own (a `Ctx` gives one): waiting for a connection, and each
    /// statement (default 30 s). When it passes the call fails with
    /// `Error::Timeout { kind: Client }` (or `Error::CommitOutcomeUnknown`
    /// when a `COMMIT` or a write outside a transaction was in flight), the
    /// connection is closed, and the server stops the statement too.
    pub query_timeout: Duration,
    /// `DB_APP_ROLE`: the role every transaction switches to with `SET LOCAL
    /// ROLE` (and every statement outside one is wrapped in a transaction
    /// for it), for a service that logs in as a privileged "authenticator"
    /// role; `None` (the default) when the login role is the service's own.
    pub app_role: Option<String>,
    /// `DATABASE_SYSTEM_URL`: where `Ctx::system` connections go (a role that
    /// bypasses row-level security, on its own pool); default the migration URL.
    pub system_url: Option<String>,
    /// `DATABASE_REPLICA_URLS`: streaming replicas that serve `Db::read`
    /// (whitespace-separated; commas belong to multi-host URLs).
    pub replica_urls: Vec<String>,
    /// `DB_REPLICA_MAX_LAG_MS`: a replica further behind than this (as
    /// measured) serves no reads until it catches up (default 1000 ms).
    pub replica_max_lag: Duration,
    /// `DB_REPLICA_READ_TIMEOUT_MS`: how long a statement on a replica may
    /// take before the read moves to the primary (`Db::read_run`) or fails
    /// as retryable (a connection from `Db::read`); the replica is then out
    /// of routing until the monitor sees it answer (default 2000 ms).
    pub replica_read_timeout: Duration,
    /// `DB_MIGRATION_LOCK_TIMEOUT_SECS`: how long a migration run waits for
    /// another process's migration lock before giving up (default 300 s).
    pub migration_lock_timeout: Duration,
    /// `DB_MIGRATION_DDL_LOCK_TIMEOUT_MS`: `lock_timeout` of the migration
    /// session: how long one DDL statement waits for a table lock (default 10 s).
    pub migration_ddl_lock_timeout: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "migration_url",
                &self.migration_url.as_deref().map(redact_url),
            )
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("statement_cache", &self.statement_cache)
            .field("pooler", &self.pooler)
            .field("log_queries", &self.log_queries)
            .field("trace_returned_rows", &self.trace_returned_rows)
            .field("sqlcommenter", &self.sqlcommenter)
            .field("slow_query", &self.slow_query)
            .field("recycle", &self.recycle)
            .field("tcp_keepalive_idle", &self.tcp_keepalive_idle)
            .field("tcp_user_timeout", &self.tcp_user_timeout)
            .field("query_timeout", &self.query_timeout)
            .field("app_role", &self.app_role)
            .field("system_url", &self.system_url.as_deref().map(redact_url))
            .field(
                "replica_urls",
                &self
                    .replica_urls
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("replica_max_lag", &self.replica_max_lag)
            .field("replica_read_timeout", &self.replica_read_timeout)
            .field("migration_lock_timeout", &self.migration_lock_timeout)
            .field(
                "migration_ddl_lock_timeout",
                &self.migration_ddl_lock_timeout,
            )
            .finish()
    }
}

impl Config {
    /// Defaults for everything but the URL.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            migration_url: None,
            pool_size: 10,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(20),
            wait_timeout: Duration::from_secs(5),
            statement_timeout: None,
            statement_cache: true,
            pooler: Pooler::None,
            log_queries: false,
            trace_returned_rows: false,
            sqlcommenter: false,
            slow_query: None,
            recycle: Recycle::Fast,
            tcp_keepalive_idle: Duration::from_secs(30),
            tcp_user_timeout: Some(Duration::from_secs(30)),
            query_timeout: Duration::from_secs(30),
            app_role: None,
            system_url: None,
            replica_urls: Vec::new(),
            replica_max_lag: Duration::from_millis(1000),
            replica_read_timeout: Duration::from_millis(2000),
            migration_lock_timeout: Duration::from_secs(300),
            migration_ddl_lock_timeout: Duration::from_secs(10),
        }
    }

    /// Reads the configuration from the environment, after loading `.env`
    /// from the working directory (or a parent) when there is one. Variables
    /// already set in the environment win over `.env`.
    pub fn from_env() -> Result<Self> {
        // A missing .env is normal; a malformed one is worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(Error::Config(format!(".env: {e}"))),
        }
        // No DATABASE_URL (environment or .env): the project's local
        // cluster, when recorded: the service's role for the service, its
        // superuser for migrations.
        let (local_url, local_migration_url) = match std::env::var("DATABASE_URL") {
            Ok(v) if !v.trim().is_empty() => (None, None),
            _ => match super::local::service_url()? {
                Some(url) => (Some(url), super::local::migration_url()?),
                None => (None, None),
            },
        };
        Self::from_lookup(|key| {
            std::env::var(key).ok().or_else(|| match key {
                "DATABASE_URL" => local_url.clone(),
                "DATABASE_MIGRATION_URL" => local_migration_url.clone(),
                _ => None,
            })
        })
    }

    /// Reads the configuration through `lookup` (the environment, in `from_env`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let url = get("DATABASE_URL").ok_or_else(|| {
            Error::Config(
                "DATABASE_URL is not set; e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/app (in the environment or .env), or `db up` for a project-local server".into(),
            )
        })?;
        check_url("DATABASE_URL", &url)?;
        let mut config = Config::new(url);
        config.migration_url = get("DATABASE_MIGRATION_URL");
        if let Some(url) = &config.migration_url {
            check_url("DATABASE_MIGRATION_URL", url)?;
        }

        let number = |key: &str, min: u64, max: u64| -> Result<Option<u64>> {
            let Some(raw) = get(key) else { return Ok(None) };
            match raw.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(Error::Config(format!(
                    "{key}={raw:?}: expected a whole number from {min} to {max}"
                ))),
            }
        };
        let flag = |key: &str| -> Result<Option<bool>> {
            let Some(raw) = get(key) else { return Ok(None) };
            match raw.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(Some(true)),
                "0" | "false" | "no" | "off" => Ok(Some(false)),
                _ => Err(Error::Config(format!(
                    "{key}={raw:?}: expected true or false"
                ))),
            }
        };

        if let Some(n) = number("DB_POOL_SIZE", 1, 10_000)? {
            config.pool_size = n as usize;
        }
        if let Some(n) = number("DB_CONNECT_TIMEOUT_SECS", 1, 3600)? {
            config.connect_timeout = Duration::from_secs(n);
        }
        if let Some(n) = number("DB_IDLE_TIMEOUT_SECS", 1, 86_400)? {
            config.idle_timeout = Duration::from_secs(n);
        }
        if let Some(n) = number("DB_POOL_WAIT_TIMEOUT_SECS", 0, 3600)? {
            config.wait_timeout = Duration::from_secs(n);
        }
        if let Some(n) = number("DB_STATEMENT_TIMEOUT_MS", 1, 86_400_000)? {
            config.statement_timeout = Some(Duration::from_millis(n));
        }
        if let Some(n) = number("DB_SLOW_QUERY_MS", 1, 86_400_000)? {
            config.slow_query = Some(Duration::from_millis(n));
        }
        if let Some(n) = number("DB_TCP_KEEPALIVE_SECS", 1, 86_400)? {
            config.tcp_keepalive_idle = Duration::from_secs(n);
        }
        if let Some(n) = number("DB_TCP_USER_TIMEOUT_SECS", 0, 86_400)? {
            config.tcp_user_timeout = (n > 0).then(|| Duration::from_secs(n));
        }
        if let Some(urls) = get("DATABASE_REPLICA_URLS") {
            config.replica_urls = urls.split_whitespace().map(str::to_owned).collect();
            for url in &config.replica_urls {
                check_url("DATABASE_REPLICA_URLS", url)?;
            }
        }
        if let Some(n) = number("DB_REPLICA_MAX_LAG_MS", 0, 86_400_000)? {
            config.replica_max_lag = Duration::from_millis(n);
        }
        if let Some(n) = number("DB_REPLICA_READ_TIMEOUT_MS", 1, 86_400_000)? {
            config.replica_read_timeout = Duration::from_millis(n);
        }
        if let Some(n) = number("DB_QUERY_TIMEOUT_MS", 1, 86_400_000)? {
            config.query_timeout = Duration::from_millis(n);
        }
        config.system_url = get("DATABASE_SYSTEM_URL");
        if let Some(url) = &config.system_url {
            check_url("DATABASE_SYSTEM_URL", url)?;
        }
        if let Some(role) = get("DB_APP_ROLE") {
            let valid = role.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && role.len() <= 63
                && !role.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(Error::Config(format!(
                    "DB_APP_ROLE={role:?}: expected a role name of letters, digits and underscores"
                )));
            }
            config.app_role = Some(role);
        }
        if let Some(n) = number("DB_MIGRATION_LOCK_TIMEOUT_SECS", 0, 86_400)? {
            config.migration_lock_timeout = Duration::from_secs(n);
        }
        if let Some(n) = number("DB_MIGRATION_DDL_LOCK_TIMEOUT_MS", 1, 86_400_000)? {
            config.migration_ddl_lock_timeout = Duration::from_millis(n);
        }
        if let Some(b) = flag("DB_STATEMENT_CACHE")? {
            config.statement_cache = b;
        }
        if let Some(raw) = get("DB_POOLER") {
            config.pooler = match raw.to_ascii_lowercase().as_str() {
                "none" => Pooler::None,
                "transaction" => Pooler::Transaction,
                _ => {
                    return Err(Error::Config(format!(
                        "DB_POOLER={raw:?}: expected none or transaction"
                    )));
                }
            };
        }
        if let Some(b) = flag("DB_LOG_QUERIES")? {
            config.log_queries = b;
        }
        if let Some(b) = flag("DB_TRACE_RETURNED_ROWS")? {
            config.trace_returned_rows = b;
        }
        if let Some(b) = flag("DB_SQLCOMMENTER")? {
            config.sqlcommenter = b;
        }
        if let Some(raw) = get("DB_POOL_RECYCLE") {
            config.recycle = match raw.to_ascii_lowercase().as_str() {
                "fast" => Recycle::Fast,
                "verified" => Recycle::Verified,
                _ => {
                    return Err(Error::Config(format!(
                        "DB_POOL_RECYCLE={raw:?}: expected fast or verified"
                    )));
                }
            };
        }
        Ok(config)
    }

    /// Checks what can be checked without connecting: every URL names a database.
    pub fn validate(&self) -> Result<()> {
        check_url("DATABASE_URL", &self.database_url)?;
        if let Some(url) = &self.migration_url {
            check_url("DATABASE_MIGRATION_URL", url)?;
        }
        for url in &self.replica_urls {
            check_url("DATABASE_REPLICA_URLS", url)?;
            // Read-your-writes checks a replica's replay position on the
            // connection it hands out; behind a transaction-mode pooler the
            // check and the reads may reach different servers of a
            // multi-host URL.
            if self.pooler == Pooler::Transaction && super::url::ConnString::parse(url).servers > 1
            {
                return Err(Error::Config(format!(
                    "DATABASE_REPLICA_URLS: {} names several hosts, which DB_POOLER=transaction \
                     cannot route reads to safely (read-your-writes would check one server and \
                     read from another): give each replica its own URL",
                    super::url::redact_url(url)
                )));
            }
        }
        // A session SET through a transaction-mode pooler lands on whichever
        // server connection is free and stays there for other clients; PgBouncer
        // 1.18 does not forward startup `options` either.
        if self.pooler == Pooler::Transaction && self.statement_timeout.is_some() {
            return Err(Error::Config(
                "DB_STATEMENT_TIMEOUT_MS cannot be applied with DB_POOLER=transaction (a session \
                 SET would leak to other clients of the pooler's server connections): set it on \
                 the role instead, e.g. ALTER ROLE app SET statement_timeout = '5s', and unset \
                 DB_STATEMENT_TIMEOUT_MS"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The URL migrations run against.
    pub fn migration_url(&self) -> &str {
        self.migration_url.as_deref().unwrap_or(&self.database_url)
    }

    /// The URL of the escape hatch's pool (`Ctx::system`).
    pub fn system_url(&self) -> &str {
        self.system_url
            .as_deref()
            .unwrap_or_else(|| self.migration_url())
    }
}

/// A URL that names no database would silently use the server's default
/// (the user's name, or the `postgres` maintenance database): refuse it.
fn check_url(variable: &str, url: &str) -> Result<()> {
    if super::sqlite::is_sqlite_url(url) {
        // A path, not a server: nothing to name.
        return Ok(());
    }
    // Any other scheme would be read as a key=value string that names
    // nothing, and the error would be about the database name.
    let trimmed = url.trim();
    if let Some((scheme, _)) = trimmed.split_once("://")
        && !scheme.is_empty()
        && !scheme.contains(|c: char| c.is_whitespace() || c == '=')
        && !["postgres", "postgresql"]
            .iter()
            .any(|s| scheme.eq_ignore_ascii_case(s))
    {
        return Err(Error::Config(format!(
            "{variable} {} is a {scheme}:// URL: only PostgreSQL \
             (postgres://user@host:5432/app_dev) and SQLite (sqlite:PATH) are supported",
            redact_url(url)
        )));
    }
    if ConnString::parse(url).dbname.is_none() {
        return Err(Error::Config(format!(
            "{variable} {} names no database: add one, e.g. postgres://user@host:5432/app_dev",
            redact_url(url)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_replica_url_is_refused_in_pooler_mode_only() {
        let mut config = Config::new("postgres://app@db/app");
        config.replica_urls = vec!["postgres://app:pw@r1:5432,r2:5432/app".into()];
        assert!(config.validate().is_ok());
        config.pooler = Pooler::Transaction;
        match config.validate() {
            Err(Error::Config(m)) => {
                assert!(
                    m.contains("DATABASE_REPLICA_URLS") && m.contains("several hosts"),
                    "{m}"
                );
                assert!(!m.contains("pw"), "the password is shown: {m}");
            }
            other => panic!("{other:?}"),
        }
        config.replica_urls = vec!["postgres://app@r1/app".into()];
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_url_of_another_database_is_refused_naming_its_scheme() {
        for (url, scheme) in [
            ("mysql://root:s3cret@localhost/app", "mysql"),
            ("MariaDB://db/app", "MariaDB"),
            ("jdbc:postgresql://db/app", "jdbc:postgresql"),
        ] {
            let Err(Error::Config(message)) = check_url("DATABASE_URL", url) else {
                panic!("{url} accepted");
            };
            assert!(
                message.contains(&format!("is a {scheme}:// URL")),
                "{message}"
            );
            assert!(!message.contains("names no database"), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
        for url in [
            "postgres://db/app",
            "PostgreSQL://db/app",
            "host=db dbname=app",
            "sqlite:./local.db",
        ] {
            assert!(check_url("DATABASE_URL", url).is_ok(), "{url}");
        }
    }

    #[test]
    fn config_debug_never_shows_the_password() {
        let config = Config::new("postgres://app:s3cret@db/app");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn config_reads_every_variable() {
        let env = |k: &str| {
            Some(
                match k {
                    "DATABASE_URL" => "postgres://x/y",
                    "DB_POOL_SIZE" => "3",
                    "DB_CONNECT_TIMEOUT_SECS" => "2",
                    "DB_IDLE_TIMEOUT_SECS" => "7",
                    "DB_POOL_WAIT_TIMEOUT_SECS" => "1",
                    "DB_STATEMENT_TIMEOUT_MS" => "1500",
                    "DB_STATEMENT_CACHE" => "false",
                    "DB_LOG_QUERIES" => "yes",
                    "DB_POOL_RECYCLE" => "verified",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let c = Config::from_lookup(env).unwrap();
        assert_eq!(c.pool_size, 3);
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.idle_timeout, Duration::from_secs(7));
        assert_eq!(c.wait_timeout, Duration::from_secs(1));
        assert_eq!(c.statement_timeout, Some(Duration::from_millis(1500)));
        assert!(!c.statement_cache);
        assert!(c.log_queries);
        assert_eq!(c.recycle, Recycle::Verified);
    }

    #[test]
    fn config_defaults_and_errors_name_the_variable() {
        let c = Config::from_lookup(|k| (k == "DATABASE_URL").then(|| "postgres://x/y".to_owned()))
            .unwrap();
        assert_eq!(c.pool_size, 10);
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(20));
        assert!(c.statement_cache);

        let missing = Config::from_lookup(|_| None).unwrap_err();
        assert!(missing.to_string().contains("DATABASE_URL"), "{missing}");
        let bad = Config::from_lookup(|k| {
            Some(
                if k == "DB_POOL_SIZE" {
                    "many"
                } else {
                    "postgres://x/y"
                }
                .to_owned(),
            )
        })
        .unwrap_err();
        assert!(bad.to_string().contains("DB_POOL_SIZE"), "{bad}");
    }
}
