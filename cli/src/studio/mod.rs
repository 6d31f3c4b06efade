//! `db studio`: a local data browser served by the `db` binary.
//!
//! One file per concern: `security` (the front door: Host, token, Origin,
//! headers), `catalog` (what tables and columns exist: the only source of
//! identifiers), `query` (running SQL with binds), `view` (a table view's
//! state and SQL: filters, sort, keyset cursor), `table` (the table page),
//! `row` (the row page), `sql` (the read-only console), `write` (edit and
//! insert with a preview), `form` (write mode's forms and pages), `delete`
//! (delete, its cascades counted first), `export` (streamed CSV/JSON),
//! `html` (layout and escaping). HTML, CSS and JavaScript are compiled in
//! from `assets/`.

mod catalog;
mod delete;
mod export;
mod form;
mod html;
mod query;
mod row;
mod security;
mod sql;
mod sqlite;
mod stmt;
mod table;
mod view;
mod write;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use database::db::Pooler;
use database::db::sqlite::{SqliteTarget, sqlite_target};
use database::migrate::{self, MigrationSet};
use database::{Config, Db, SqliteDb};

use catalog::{Catalog, RowCount};
use html::{Chrome, esc};
use query::Source;

/// The port `db studio` listens on unless `--port` says otherwise.
pub const DEFAULT_PORT: u16 = 4983;

/// Everything a handler needs; one per process.
pub struct Studio {
    /// The database, and how the studio reaches it.
    pub source: Source,
    pub port: u16,
    /// The random path prefix every page is served under (`/` and 32 hex
    /// digits), which the token's cookie is scoped to (see `security`).
    pub base: String,
    pub token: String,
    pub write: bool,
    /// Bound on every statement the studio runs (`DB_STUDIO_STATEMENT_TIMEOUT_MS`, default 5000).
    pub timeout_ms: u64,
    pub migrations: MigrationSet,
    catalog: RwLock<Arc<Catalog>>,
}

impl Studio {
    /// The catalog as last read.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("catalog lock").clone()
    }

    /// Reads the catalog again (a migration may have run meanwhile).
    pub async fn refresh(&self) -> Result<Arc<Catalog>, database::Error> {
        let fresh = Arc::new(query::read_catalog(&self.source).await?);
        *self.catalog.write().expect("catalog lock") = fresh.clone();
        Ok(fresh)
    }

    pub fn chrome(&self) -> Chrome {
        Chrome {
            write: self.write,
            base: self.base.clone(),
        }
    }

    /// A page for a typed error: what the crate's `Error` says, with the status it maps to.
    pub fn db_error(&self, e: &database::Error) -> Response {
        html::error(&self.chrome(), self.status_of(e), &self.describe(e))
    }

    /// The HTTP status a typed error maps to.
    pub fn status_of(&self, e: &database::Error) -> StatusCode {
        use database::Error as E;
        match e {
            E::NotFound { .. } => StatusCode::NOT_FOUND,
            E::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            E::Conflict { .. } | E::Stale { .. } | E::IllegalTransition { .. } => {
                StatusCode::CONFLICT
            }
            E::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            E::Unavailable(_) | E::RetryTransaction { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A typed error as one line a person can act on. A statement timeout
    /// here is the studio's own (`SET LOCAL statement_timeout` on
    /// PostgreSQL, the progress handler on SQLite): it names the studio's
    /// setting.
    pub fn describe(&self, e: &database::Error) -> String {
        use database::Error as E;
        match e {
            E::Timeout {
                kind: database::error::TimeoutKind::Statement,
                ..
            } => format!(
                "statement timeout: cancelled after {} ms (DB_STUDIO_STATEMENT_TIMEOUT_MS)",
                self.timeout_ms
            ),
            E::Conflict {
                constraint,
                message,
            } => format!("Conflict on constraint {constraint}: {message}"),
            E::Invalid(invalid) => format!("Invalid input: {invalid}"),
            other => other.to_string(),
        }
    }
}

/// Starts the studio and serves until interrupted.
pub async fn run(
    config: &Config,
    migrations: &MigrationSet,
    port: u16,
    write: bool,
    open: bool,
) -> Result<()> {
    let listener = bind(port).await?;
    let port = listener.local_addr()?.port();
    let mut config = config.clone();
    config.pool_size = 4;
    // The studio reads and writes the primary only.
    config.replica_urls.clear();
    // Behind a transaction-mode pooler, the studio's sessions go to the
    // server itself, as every other `db` session does: what a statement
    // leaves on its session (an advisory lock a function took) must stay
    // on the studio's session, not on a server connection the pooler hands
    // to other clients next.
    if config.pooler == Pooler::Transaction && sqlite_target(&config.database_url).is_none() {
        let Some(direct) = config.migration_url.clone() else {
            bail!(
                "DB_POOLER=transaction: `db studio` talks to the server itself, not through the \
                 pooler: set DATABASE_MIGRATION_URL to a URL of the server (as `db migrate` needs)"
            );
        };
        config.database_url = direct;
        config.pooler = Pooler::None;
    }
    let source = match sqlite_target(&config.database_url) {
        // The studio browses every tenant: the escape hatch, logged once
        // per checkout with its reason.
        None => Source::Postgres(Db::new(config)?.with(database::Ctx::system(
            "db studio: an operator browses every tenant's rows",
        ))),
        Some(SqliteTarget::File(path)) => {
            if !path.exists() {
                bail!(
                    "no SQLite database at {}: `db setup` creates it",
                    path.display()
                );
            }
            Source::Sqlite {
                db: SqliteDb::new(config)?,
                path,
            }
        }
        Some(SqliteTarget::Memory) => bail!(
            "sqlite::memory: is a private database of one connection, empty for the studio: \
             give a file (sqlite:PATH)"
        ),
    };
    let timeout_ms = std::env::var("DB_STUDIO_STATEMENT_TIMEOUT_MS")
        .ok()
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .context("DB_STUDIO_STATEMENT_TIMEOUT_MS must be a number of milliseconds")
        })
        .transpose()?
        .unwrap_or(5000);
    let catalog = query::read_catalog(&source).await?;
    let studio = Arc::new(Studio {
        source,
        port,
        base: security::new_base(),
        token: security::new_token(),
        write,
        timeout_ms,
        migrations: migrations.clone(),
        catalog: RwLock::new(Arc::new(catalog)),
    });
    let url = format!(
        "http://127.0.0.1:{port}{}/?token={}",
        studio.base, studio.token
    );
    // Exactly one line on stdout: the URL (tests and scripts read it).
    println!("{url}");
    if write {
        eprintln!("db studio: write mode: edits, inserts and deletes are enabled");
    }
    eprintln!("db studio: serving on 127.0.0.1:{port}; Ctrl-C stops it");
    if open {
        open_browser(&url);
    }
    // Ctrl-C ends the process; nothing is held that needs a clean stop
    // (writes are single transactions).
    axum::serve(listener, router(studio)).await?;
    Ok(())
}

/// Binds 127.0.0.1:`port` (loopback only, never all interfaces); a taken
/// port is reported with the next free one.
async fn bind(port: u16) -> Result<tokio::net::TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let mut next = None;
            for candidate in port.saturating_add(1)..port.saturating_add(100) {
                if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, candidate)).is_ok() {
                    next = Some(candidate);
                    break;
                }
            }
            match next {
                Some(free) => bail!(
                    "port {port} on 127.0.0.1 is taken (another studio or server?); \
                     port {free} is free: db studio --port {free}"
                ),
                None => bail!("port {port} on 127.0.0.1 is taken; pick one with --port"),
            }
        }
        Err(e) => Err(e).with_context(|| format!("listening on 127.0.0.1:{port}")),
    }
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("db studio: could not open a browser ({opener}: {e}); open the URL above");
    }
}

fn router(studio: Arc<Studio>) -> Router {
    let at = |path: &str| format!("{}{path}", studio.base);
    Router::new()
        .route(&studio.base, get(home))
        .route(&at("/"), get(home))
        .route(&at("/migrations"), get(migrations_page))
        .route(&at("/sql"), get(sql::form).post(sql::run))
        .route(&at("/t/{table}"), get(table::view))
        .route(&at("/t/{table}/row"), get(row::row))
        .route(&at("/t/{table}/export.csv"), get(export::csv))
        .route(&at("/t/{table}/export.json"), get(export::json))
        .route(
            &at("/t/{table}/edit"),
            get(write::edit_form).post(write::edit),
        )
        .route(
            &at("/t/{table}/new"),
            get(write::insert_form).post(write::insert),
        )
        .route(
            &at("/t/{table}/delete"),
            get(delete::delete_form).post(delete::delete),
        )
        .route(&at("/assets/studio.css"), get(css))
        .route(&at("/assets/studio.js"), get(js))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            studio.clone(),
            security::guard,
        ))
        .with_state(studio)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/studio.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/studio.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn not_found(State(studio): State<Arc<Studio>>) -> Response {
    html::error(&studio.chrome(), StatusCode::NOT_FOUND, "no such page")
}

/// `/`: the tables, grouped by domain, with their row counts.
async fn home(State(studio): State<Arc<Studio>>) -> Response {
    let catalog = match studio.refresh().await {
        Ok(c) => c,
        Err(e) => return studio.db_error(&e),
    };
    let mut groups: Vec<(&str, Vec<&catalog::Table>)> = Vec::new();
    for t in catalog.tables.values() {
        let d = catalog::domain_of(&t.name);
        match groups.iter_mut().find(|(name, _)| *name == d) {
            Some((_, list)) => list.push(t),
            None => groups.push((d, vec![t])),
        }
    }
    groups.sort_by_key(|(d, _)| (*d == "other", *d));
    let mut body = String::from(r#"<h1>Tables</h1><div class="domains" id="tables">"#);
    for (domain, tables) in groups {
        body.push_str(&format!(
            r#"<section class="domain"><h2>{}</h2><ul>"#,
            esc(domain)
        ));
        for t in tables {
            let count = match t.rows {
                RowCount::Exact(n) => format!("{n}"),
                RowCount::MoreThan(n) => {
                    format!(r#"<span class="est" title="counted up to {n}">&gt;{n}</span>"#)
                }
                RowCount::Estimate(n) => format!(
                    r#"<span class="est" title="the planner's estimate">~{}</span>"#,
                    n.max(0)
                ),
            };
            body.push_str(&format!(
                r#"<li><a href="t/{0}">{1}</a> <span class="count">{2}</span></li>"#,
                html::enc(&t.name),
                esc(&t.name),
                count
            ));
        }
        body.push_str("</ul></section>");
    }
    body.push_str("</div>");
    html::page(&studio.chrome(), "Tables", &body).into_response()
}

/// `/migrations`: what `db status` prints, as a table.
async fn migrations_page(State(studio): State<Arc<Studio>>) -> Response {
    let status = async {
        Ok::<_, database::Error>(match &studio.source {
            Source::Postgres(db) => {
                migrate::status(&mut *db.conn().await?, &studio.migrations).await?
            }
            Source::Sqlite { db, .. } => {
                migrate::sqlite::status(&mut *db.conn().await?, &studio.migrations).await?
            }
        })
    }
    .await;
    let status = match status {
        Ok(s) => s,
        Err(e) => return studio.db_error(&e),
    };
    let mut body = String::from(
        r#"<h1>Migrations</h1><p class="muted">The same status as <code>db status</code>; read-only.</p>
<div class="scroll"><table class="grid" id="migrations"><thead><tr><th>Version</th><th>State</th><th>Applied at (UTC)</th><th>Migration</th></tr></thead><tbody>"#,
    );
    for v in &status.versions {
        body.push_str(&format!(
            r#"<tr class="state-{1}"><td>{0}</td><td>{1}</td><td>{2}</td><td>{3}</td></tr>"#,
            esc(&v.version),
            esc(&v.state.to_string()),
            esc(&v.applied_at_text()),
            esc(&v.described_name())
        ));
    }
    body.push_str("</tbody></table></div>");
    body.push_str(&format!("<p>{}</p>", esc(&status.summary())));
    for index in &status.invalid_indexes {
        body.push_str(&format!(
            r#"<p class="error">INVALID index {}</p>"#,
            esc(index)
        ));
    }
    html::page(&studio.chrome(), "Migrations", &body).into_response()
}
