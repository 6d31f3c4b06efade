//! Opening one connection: the one set-up every pooled connection, the
//! migration connection and the CLI's connections go through.

use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, Instrumentation, InstrumentationEvent};
use diesel::result::ConnectionError;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use super::config::{Config, Pooler};
use super::pg_conn::{PgConn, Scope};
use super::tls::{SslMode, split_tls};
use super::unnamed::{UnnamedConnection, convert_error};
use super::url::{ConnString, redact_url};
use crate::error::{Error, Result};

/// What each new connection is set up with.
#[derive(Clone)]
pub(super) struct ConnectionSettings {
    connect_timeout: Duration,
    statement_timeout: Option<Duration>,
    statement_cache: bool,
    /// Pooler mode: unnamed statements only (`DB_POOLER=transaction`).
    pooler: bool,
    log_queries: bool,
    trace_returned_rows: bool,
    slow_query: Option<Duration>,
    /// Each statement's bound without a context deadline
    /// (`DB_QUERY_TIMEOUT_MS`); `None` for the migration session.
    per_statement: Option<Duration>,
    tcp_keepalive_idle: Duration,
    tcp_user_timeout: Option<Duration>,
    /// Extra `SET`s for this kind of session (the migration session's timeouts).
    session_settings: Vec<(&'static str, String)>,
    /// The metrics of the pool its connections belong to.
    meter: std::sync::Arc<super::metrics::Meter>,
    /// Pooler mode: `warn_unbounded_once` has spoken for this pool.
    warned_unbounded: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ConnectionSettings {
    pub(super) fn from_config(config: &Config) -> Self {
        Self {
            connect_timeout: config.connect_timeout,
            statement_timeout: config.statement_timeout,
            statement_cache: config.statement_cache,
            pooler: config.pooler == Pooler::Transaction,
            log_queries: config.log_queries,
            trace_returned_rows: config.trace_returned_rows,
            slow_query: config.slow_query,
            per_statement: Some(config.query_timeout),
            tcp_keepalive_idle: config.tcp_keepalive_idle,
            tcp_user_timeout: config.tcp_user_timeout,
            session_settings: Vec::new(),
            meter: super::metrics::Meter::new("postgresql", "direct"),
            warned_unbounded: Default::default(),
        }
    }

    /// The same, for the connections of the pool that `meter` measures.
    pub(super) fn for_pool(mut self, meter: std::sync::Arc<super::metrics::Meter>) -> Self {
        self.meter = meter;
        self
    }

    /// The migration session: no statement timeout (a long `CREATE INDEX
    /// CONCURRENTLY` must not be cancelled half-way, leaving an invalid
    /// index), a lock timeout for DDL so a migration waiting behind a busy
    /// table fails with a clear error instead of queueing every query of the
    /// application behind it, and a dead-client check so a killed `db migrate`
    /// releases its locks within about a second (PostgreSQL 14+; older
    /// servers notice only when they next write to the socket).
    pub(super) fn for_migrations(config: &Config) -> Self {
        let mut settings = Self::from_config(config);
        // The migration session holds a session-level advisory lock and sets
        // session timeouts: it always talks to the server directly.
        settings.pooler = false;
        settings.statement_timeout = None;
        // A migration's statements run as long as they must (a concurrent
        // index build on a big table): the lock timeouts bound its waits.
        settings.per_statement = None;
        settings.session_settings = vec![
            ("statement_timeout", "0".to_owned()),
            (
                "lock_timeout",
                config.migration_ddl_lock_timeout.as_millis().to_string(),
            ),
            ("client_connection_check_interval", "1000".to_owned()),
        ];
        settings
    }

    /// Opens and sets up one connection. Errors come back as
    /// `InvalidConnectionUrl` for configuration mistakes (wrong URL, unknown
    /// database or role, refused credentials) and `BadConnection` for outages,
    /// each with a whole sentence that names the URL (password redacted).
    pub(super) async fn establish(&self, url: &str) -> Result<PgConn, ConnectionError> {
        let shown = redact_url(url);
        let (without_tls, tls) = split_tls(url).map_err(|e| {
            ConnectionError::InvalidConnectionUrl(format!("invalid database URL {shown}: {e}"))
        })?;
        let mut pg: tokio_postgres::Config =
            without_tls.parse().map_err(|e: tokio_postgres::Error| {
                ConnectionError::InvalidConnectionUrl(format!(
                    "invalid database URL {shown}: {}",
                    error_chain(&e)
                ))
            })?;
        pg.ssl_mode(tls.tokio_mode());
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(self.connect_timeout);
        }
        // Peers that vanish at the kernel level (a host gone, a cable pulled)
        // are noticed by keepalives and the user timeout; a stalled process
        // that keeps its socket open is not, which is what the client-side
        // query deadline is for.
        pg.keepalives(true).keepalives_idle(self.tcp_keepalive_idle);
        if let Some(t) = self.tcp_user_timeout {
            pg.tcp_user_timeout(t);
        }
        if pg.get_application_name().is_none() {
            pg.application_name(default_application_name());
        }
        let timed_out = || {
            ConnectionError::BadConnection(format!(
                "cannot connect to {shown}: no answer within the connect timeout ({} s, DB_CONNECT_TIMEOUT_SECS)",
                self.connect_timeout.as_secs()
            ))
        };
        // tokio-postgres's timeout is per host: several hosts may each take it.
        let endpoint = std::sync::Arc::new(super::telemetry::Endpoint::postgres(
            &pg,
            self.pooler,
            self.trace_returned_rows,
            std::sync::Arc::clone(&self.meter),
        ));
        let opening = Instant::now();
        let hosts = (pg.get_hosts().len().max(pg.get_hostaddrs().len())).max(1) as u32;
        let connect_limit = self.connect_timeout * hosts;
        // Only `hostaddr=`: libpq encrypts all the same (no name is needed
        // unless the certificate's is checked), where tokio-postgres refuses
        // a TLS handshake without a host name. The addresses stand in as the
        // names: only verify-full would compare them, and it is refused here
        // as libpq refuses it.
        if pg.get_hosts().is_empty() && tls.mode != SslMode::Disable {
            if tls.mode == SslMode::VerifyFull {
                return Err(ConnectionError::InvalidConnectionUrl(format!(
                    "{shown}: sslmode=verify-full checks the server's certificate against the \
                     host name, and the URL gives only hostaddr=: add host=<the name on the \
                     certificate> (libpq refuses this URL too), or use sslmode=verify-ca"
                )));
            }
            for addr in pg.get_hostaddrs().to_vec() {
                pg.host(addr.to_string());
            }
        }
        // Plain and TLS connections are two stream types: one path each.
        let plain = tls.mode == SslMode::Disable;
        let conn = if plain {
            let connecting = pg.connect(tokio_postgres::NoTls);
            let (client, connection) = tokio::time::timeout(connect_limit, connecting)
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| classify_connect_error(&e, url))?;
            let cancel = Canceller::plain(client.cancel_token());
            self.take_over(client, connection, cancel).await?
        } else {
            let connector = tls.connector().map_err(|e| {
                ConnectionError::InvalidConnectionUrl(format!("TLS settings of {shown}: {e}"))
            })?;
            let (client, connection) =
                tokio::time::timeout(connect_limit, pg.connect(connector.clone()))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| classify_connect_error(&e, url))?;
            let cancel = Canceller::tls(client.cancel_token(), connector);
            self.take_over(client, connection, cancel).await?
        };
        self.meter.created(opening.elapsed());
        let mut conn = conn.with_endpoint(endpoint);
        if !self.statement_cache {
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        let mut setup = String::new();
        // In pooler mode `Config::validate` refuses a statement timeout and
        // there are no session settings: nothing is SET for the session (each
        // transaction carries its timeouts instead, see `Scope`). A direct
        // connection's server-side limits default to the call's own bound, so
        // that the server stops a statement the client gave up on even when
        // the cancel request cannot reach it (a stalled network path).
        let backstop = self
            .per_statement
            .map(|limit| limit + super::call::SERVER_BACKSTOP);
        if !self.pooler
            && let Some(timeout) = self.statement_timeout.or(backstop)
        {
            setup.push_str(&format!("SET statement_timeout = {};", timeout.as_millis()));
        }
        if !self.pooler
            && let Some(limit) = backstop
        {
            setup.push_str(&format!(
                "SET idle_in_transaction_session_timeout = {};",
                limit.as_millis()
            ));
        }
        // Through pg_settings, so a parameter the server does not have (the
        // dead-client check before PostgreSQL 14) is skipped, not an error.
        for (name, value) in &self.session_settings {
            setup.push_str(&format!(
                "SELECT set_config(name, '{value}', false) FROM pg_settings WHERE name = '{name}';"
            ));
        }
        if !setup.is_empty() {
            conn.batch_execute(&setup)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
        }
        // No instrumentation at all unless something needs it: the hot path
        // then pays nothing per query.
        if self.log_queries || self.slow_query.is_some() {
            conn.set_instrumentation(QueryLogger {
                log_all: self.log_queries,
                slow: self.slow_query,
                started: None,
            });
        }
        Ok(conn)
    }

    /// The scope of a connection no call has entered yet: each statement
    /// bounded by `DB_QUERY_TIMEOUT_MS`, and behind a pooler the timeouts
    /// carried by each transaction.
    pub(super) fn default_scope(&self) -> Scope {
        Scope {
            per_statement: self.per_statement,
            local_timeouts: self.pooler && self.per_statement.is_some(),
            ..Scope::default()
        }
    }

    /// Pooler mode: says once per pool that each statement outside a
    /// transaction carries its own timeouts (three requests instead of one)
    /// because the role's server-side `statement_timeout` does not bound it,
    /// and how to make it do so.
    fn warn_unbounded_once(&self, limit: Option<Duration>) {
        let Some(bound) = self.per_statement else {
            return;
        };
        if self
            .warned_unbounded
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let wanted = (bound + super::call::SERVER_BACKSTOP).as_millis();
        tracing::warn!(
            role_statement_timeout_ms = limit.map_or(0, |l| l.as_millis() as u64),
            wanted_ms = wanted as u64,
            "pooler mode: the role's statement_timeout on the server is not between \
             DB_QUERY_TIMEOUT_MS and {wanted} ms, so each statement outside a transaction \
             runs in a transaction of its own that carries its timeouts (BEGIN, the \
             statement, COMMIT: three requests instead of one); `db setup` sets it, or run \
             ALTER ROLE <role> IN DATABASE <database> SET statement_timeout = {wanted}"
        );
    }

    /// Wraps an open client in the connection type of this mode.
    async fn take_over<S>(
        &self,
        client: tokio_postgres::Client,
        connection: tokio_postgres::Connection<tokio_postgres::Socket, S>,
        cancel: Canceller,
    ) -> Result<PgConn, ConnectionError>
    where
        S: tokio_postgres::tls::TlsStream + Unpin + Send + 'static,
    {
        let scope = self.default_scope();
        if !self.pooler {
            let mut connection = connection;
            refuse_a_transaction_pooler(&client, &mut connection).await?;
            return AsyncPgConnection::try_from_client_and_connection(client, connection)
                .await
                .map(|conn| PgConn::direct(conn, scope, Some(cancel)));
        }
        let conn = UnnamedConnection::new(client, connection)
            .await
            .map_err(|e| ConnectionError::CouldntSetupConfiguration(convert_error(e)))?;
        let mut conn = PgConn::unnamed(conn, scope, Some(cancel));
        let limit = server_statement_limit(&mut conn)
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
        conn.set_server_limit(limit);
        if !conn.server_bounds_statements() {
            self.warn_unbounded_once(limit);
        }
        Ok(conn)
    }
}

/// The server's `statement_timeout` for this connection's role and
/// database, read through the pooler (`None` when 0: unset). No session
/// setting is ever made in pooler mode, so what a server connection shows is
/// the role's and database's default (`ALTER ROLE ... SET`), the same on
/// every server connection the pooler may hand this client.
async fn server_statement_limit(conn: &mut PgConn) -> diesel::QueryResult<Option<Duration>> {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = BigInt)]
        ms: i64,
    }
    // pg_settings gives milliseconds whatever unit the setting was written
    // in; `reset_val` is the session's default, not the transaction-local
    // value this very statement may run under (it is wrapped: the limit is
    // not known yet).
    let setting: Setting = diesel::sql_query(
        "SELECT reset_val::int8 AS ms FROM pg_settings WHERE name = 'statement_timeout'",
    )
    .get_result(conn)
    .await?;
    Ok((setting.ms > 0).then(|| Duration::from_millis(setting.ms as u64)))
}

/// Refuses a direct-mode connection that turns out to go through a
/// transaction-mode pooler (best effort): two statements in two round trips
/// answered by two different server processes. Named prepared statements
/// there land on other clients' server connections, where a statement of
/// the same name may be another client's (and, with matching parameter
/// types, run). Not seen when the pooler happens to hand both statements to
/// one server connection (an idle pool with one server connection); the
/// errors of a collision name the setting too (`crate::Error`).
async fn refuse_a_transaction_pooler<S>(
    client: &tokio_postgres::Client,
    connection: &mut tokio_postgres::Connection<tokio_postgres::Socket, S>,
) -> Result<(), ConnectionError>
where
    S: tokio_postgres::tls::TlsStream + Unpin,
{
    // Unnamed statements (Parse, Bind, Execute, Sync in one message): the
    // probe prepares nothing by name on whatever answers it.
    let pid = async || -> Result<i32, tokio_postgres::Error> {
        let row = client
            .query_typed_one("SELECT pg_backend_pid()", &[])
            .await?;
        Ok(row.get(0))
    };
    let probe = async { Ok::<_, tokio_postgres::Error>((pid().await?, pid().await?)) };
    // The connection is driven here until diesel-async takes it over.
    let (first, second) = tokio::select! {
        answered = probe => answered.map_err(|e| {
            ConnectionError::CouldntSetupConfiguration(convert_error(e))
        })?,
        ended = connection => {
            return Err(ConnectionError::BadConnection(format!(
                "the server closed the connection while it was set up ({ended:?})"
            )));
        }
    };
    if first != second {
        return Err(ConnectionError::InvalidConnectionUrl(format!(
            "two statements of one connection were answered by two server processes ({first} \
             and {second}): a transaction-mode pooler (PgBouncer, Supavisor) sits in front of the \
             server; set DB_POOLER=transaction (the named prepared statements of direct mode are \
             not safe there)"
        )));
    }
    Ok(())
}

/// `application_name` when the URL sets none: the program's name, so that
/// `pg_stat_activity` (and the migration lock's "held by" message) says who.
fn default_application_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "database".to_owned())
}

/// The error and its causes, `a: b: c` (tokio-postgres's `Display` shows only
/// the first).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// What to check after a failed TLS set-up. A name mismatch may be a
/// certificate that names its host only in the subject's CN: libpq's
/// verify-full falls back to the CN when there is no subjectAltName, rustls
/// (as browsers and RFC 6125) does not, and the crate keeps that.
fn tls_advice(text: &str) -> &'static str {
    if text.contains("not valid for name") {
        "verify-full: the certificate must name the host in its subjectAltName; a name only in \
         the subject's CN is not accepted (libpq accepts it): reissue the certificate with \
         subjectAltName=DNS:<host>, or use sslmode=verify-ca"
    } else {
        "check sslmode and sslrootcert"
    }
}

/// Sorts a failure to connect, by SQLSTATE where the server sent one.
fn classify_connect_error(e: &tokio_postgres::Error, url: &str) -> ConnectionError {
    use tokio_postgres::error::SqlState;
    let shown = redact_url(url);
    let Some(db) = e.as_db_error() else {
        let text = error_chain(e);
        return if text.starts_with("invalid connection string")
            || text.starts_with("invalid configuration")
        {
            ConnectionError::InvalidConnectionUrl(format!("invalid database URL {shown}: {text}"))
        } else if text.contains("TLS") || text.contains("certificate") {
            // A certificate that does not verify, or a server without TLS
            // under sslmode=require: settings to fix, not an outage.
            ConnectionError::InvalidConnectionUrl(format!(
                "TLS with {shown} failed: {text} ({})",
                tls_advice(&text)
            ))
        } else {
            ConnectionError::BadConnection(format!("cannot connect to {shown}: {text}"))
        };
    };
    let message = db.message();
    let code = db.code();
    if *code == SqlState::INVALID_CATALOG_NAME {
        let name = ConnString::parse(url).dbname.unwrap_or_default();
        return ConnectionError::InvalidConnectionUrl(format!(
            "database {name:?} does not exist on the server of {shown}: `db setup` creates it"
        ));
    }
    if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        || *code == SqlState::INVALID_PASSWORD
        || *code == SqlState::INSUFFICIENT_PRIVILEGE
    {
        return ConnectionError::InvalidConnectionUrl(format!(
            "the server refused {shown}: {message} (check the user, password and pg_hba.conf)"
        ));
    }
    ConnectionError::BadConnection(format!("cannot connect to {shown}: {message}"))
}

/// Logs statements and their duration through `tracing`. Bind values are
/// never logged, at any level (they may hold secrets or personal data), nor
/// a server's error message (it can quote one): a failure is logged by its
/// SQLSTATE or class.
struct QueryLogger {
    log_all: bool,
    slow: Option<Duration>,
    started: Option<Instant>,
}

impl Instrumentation for QueryLogger {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.started = Some(Instant::now()),
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                let elapsed = self.started.take().map(|s| s.elapsed()).unwrap_or_default();
                let slow = self.slow.is_some_and(|limit| elapsed >= limit);
                // Rendering the statement costs an allocation per query:
                // only when it will be written somewhere.
                if !(slow || self.log_all) {
                    return;
                }
                let text = query.to_string();
                let sql = text.split(" -- binds: ").next().unwrap_or(&text);
                let elapsed_us = elapsed.as_micros() as u64;
                if slow {
                    tracing::warn!(target: "database::query", elapsed_us, sql, "slow query");
                } else if self.log_all {
                    match error {
                        Some(e) => {
                            let error = super::telemetry::error_class(e);
                            tracing::debug!(target: "database::query", elapsed_us, sql, error, "query failed")
                        }
                        None => {
                            tracing::debug!(target: "database::query", elapsed_us, sql, "query")
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Sends a cancel request for the statement a connection is running, in
/// the background: what the call's deadline does besides closing the
/// connection. Best effort (it travels the same network path, which may be
/// what stalled); the server-side timeouts are the guarantee.
#[derive(Clone)]
pub(crate) struct Canceller {
    token: tokio_postgres::CancelToken,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Canceller {
    fn plain(token: tokio_postgres::CancelToken) -> Self {
        Self { token, tls: None }
    }

    fn tls(
        token: tokio_postgres::CancelToken,
        tls: tokio_postgres_rustls::MakeRustlsConnect,
    ) -> Self {
        Self {
            token,
            tls: Some(tls),
        }
    }

    /// Sends the cancel request (within a few seconds, or not at all).
    pub(crate) fn send(self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            const LIMIT: Duration = Duration::from_secs(3);
            let sent = match self.tls {
                None => {
                    tokio::time::timeout(LIMIT, self.token.cancel_query(tokio_postgres::NoTls))
                        .await
                }
                Some(tls) => tokio::time::timeout(LIMIT, self.token.cancel_query(tls)).await,
            };
            if !matches!(sent, Ok(Ok(()))) {
                tracing::debug!(target: "database::connection", "the cancel request did not go through");
            }
        });
    }
}

/// Opens one connection to `url`, set up as `config` sets up pooled ones
/// (timeouts, statement cache, logging, pooler mode), without building a pool.
pub async fn connect(config: &Config, url: &str) -> Result<PgConn> {
    ConnectionSettings::from_config(config)
        .establish(url)
        .await
        .map_err(|e| connection_error(e, url))
}

/// `ConnectionError` (what the pool's set-up hook must return) to `Error`:
/// configuration mistakes are not retryable, outages are.
pub(super) fn connection_error(e: ConnectionError, url: &str) -> Error {
    match e {
        ConnectionError::InvalidConnectionUrl(msg) => Error::Config(msg),
        ConnectionError::BadConnection(msg) => Error::Unavailable(msg),
        ConnectionError::CouldntSetupConfiguration(e) => match Error::from(e) {
            // A setting the server refuses (class 42, 22023) is configuration.
            Error::Database(e)
                if e.to_string().contains("configuration parameter")
                    || e.to_string().contains("invalid value for parameter") =>
            {
                Error::Config(format!(
                    "setting up a connection to {} failed: {e}",
                    redact_url(url)
                ))
            }
            Error::Database(e) => Error::Unavailable(format!(
                "setting up a connection to {} failed: {e}",
                redact_url(url)
            )),
            other => other,
        },
        other => Error::Unavailable(format!("cannot connect to {}: {other}", redact_url(url))),
    }
}

/// Opens the migration session to `url`: set up as `config` sets up pooled
/// connections, but with the migration timeouts (see `for_migrations`).
/// It always reaches the server directly, also in pooler mode: the
/// migration lock is a session-level advisory lock. In pooler mode without
/// `DATABASE_MIGRATION_URL` it is refused: `DATABASE_URL` is the pooler.
pub async fn connect_for_migrations(config: &Config, url: &str) -> Result<PgConn> {
    if config.pooler == Pooler::Transaction && config.migration_url.is_none() {
        return Err(Error::Config(
            "DB_POOLER=transaction: migrations and the db command's sessions need \
             DATABASE_MIGRATION_URL, a URL of the server itself (not the pooler): they hold a \
             session-level lock and session settings"
                .into(),
        ));
    }
    ConnectionSettings::for_migrations(config)
        .establish(url)
        .await
        .map_err(|e| connection_error(e, url))
}
