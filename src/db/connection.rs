//! Opening one connection: the one set-up every pooled connection, the
//! migration connection and the CLI's connections go through.

use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, Instrumentation, InstrumentationEvent};
use diesel::result::ConnectionError;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use super::config::Config;
use super::url::redact_url;
use crate::error::{Error, Result};

/// What each new connection is set up with.
#[derive(Clone)]
pub(super) struct ConnectionSettings {
    connect_timeout: Duration,
    statement_timeout: Option<Duration>,
    statement_cache: bool,
    log_queries: bool,
    slow_query: Option<Duration>,
}

impl ConnectionSettings {
    pub(super) fn from_config(config: &Config) -> Self {
        Self {
            connect_timeout: config.connect_timeout,
            statement_timeout: config.statement_timeout,
            statement_cache: config.statement_cache,
            log_queries: config.log_queries,
            slow_query: config.slow_query,
        }
    }

    pub(super) async fn establish(&self, url: &str) -> Result<AsyncPgConnection, ConnectionError> {
        let mut conn =
            tokio::time::timeout(self.connect_timeout, AsyncPgConnection::establish(url))
                .await
                .map_err(|_| {
                    ConnectionError::BadConnection(format!(
                        "no connection within the connect timeout ({} s)",
                        self.connect_timeout.as_secs()
                    ))
                })??;
        if !self.statement_cache {
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        if let Some(timeout) = self.statement_timeout {
            conn.batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis()))
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
        }
        if self.log_queries || self.slow_query.is_some() {
            conn.set_instrumentation(QueryLogger {
                log_all: self.log_queries,
                slow: self.slow_query,
                started: None,
            });
        }
        Ok(conn)
    }
}

/// Logs statements and their duration through `tracing`. Bind values are
/// logged only at TRACE: they may hold secrets or personal data.
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
                if !(slow
                    || self.log_all
                    || tracing::enabled!(target: "database::query", tracing::Level::TRACE))
                {
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
                            tracing::debug!(target: "database::query", elapsed_us, sql, error = %e, "query failed")
                        }
                        None => {
                            tracing::debug!(target: "database::query", elapsed_us, sql, "query")
                        }
                    }
                }
                tracing::trace!(target: "database::query", statement = %text);
            }
            _ => {}
        }
    }
}

/// Opens one connection to `url`, set up as `config` sets up pooled ones
/// (timeouts, statement cache, logging), without building a pool.
pub async fn connect(config: &Config, url: &str) -> Result<AsyncPgConnection> {
    ConnectionSettings::from_config(config)
        .establish(url)
        .await
        .map_err(|e| connection_error(e, url))
}

pub(super) fn connection_error(e: ConnectionError, url: &str) -> Error {
    match e {
        ConnectionError::InvalidConnectionUrl(msg) => {
            Error::Config(format!("invalid database URL {}: {msg}", redact_url(url)))
        }
        other => Error::Unavailable(format!("cannot connect to {}: {other}", redact_url(url))),
    }
}
