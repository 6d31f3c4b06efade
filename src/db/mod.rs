//! How the crate reaches a database (docs/design.md has the whole picture):
//! one handle per backend, `Db` (PostgreSQL) and `SqliteDb`, and `AnyDb`
//! for a service whose domains are all portable; the request context
//! (`Ctx`) they apply to every call; the connection types repository
//! functions take.
//!
//! One file per concern: `config` (the settings), `url` (URLs and their
//! redaction), `connection` (how one connection is opened and set up),
//! `pg_conn` (the PostgreSQL connection, direct or pooler mode) with `call`
//! (its call contract) and `unnamed` (pooler mode's protocol), `pool` (pools
//! and the connections they hand out), `postgres` (`Db`), `replicas` (the
//! read path), `roles` (row-level security's roles and settings), `ctx`,
//! `sqlcommenter` (the opt-in trace comment on statements),
//! `sqlite` (`SqliteDb`, SQLite's URLs and errors), `any` (the portable seam:
//! `AnyConn`, `AnyTx`, `AnyDb`, `any_run!`), `tls` (sslmode), `local` (the
//! project-local cluster's URL when `DATABASE_URL` is unset).

mod any;
mod call;
mod config;
mod connection;
mod ctx;
pub mod local;
pub mod metrics;
mod pg_conn;
mod pool;
mod postgres;
mod replicas;
pub mod roles;
mod sqlcommenter;
pub mod sqlite;
pub(crate) mod telemetry;
mod tls;
mod unnamed;
mod url;

pub use any::{AnyConn, AnyDb, AnyPooledConn, AnyTx, Backend, transaction};
pub(crate) use any::{any_run, selectable_on_both};
pub use config::{Config, Pooler, Recycle};
pub use connection::{connect, connect_for_migrations};
pub use ctx::Ctx;
pub use pg_conn::{PgConn, PgConnField, PgConnRow};
pub use pool::{Health, PoolStatus, PooledConn};
pub use postgres::Db;
pub use replicas::{ReadSource, ReplicaStatus, WalPosition};
pub use sqlcommenter::TraceParent;
pub use sqlite::{SqliteConn, SqliteDb, SqlitePooledConn};
pub use tls::SslMode;
pub use unnamed::{UnnamedField, UnnamedRow};
pub use url::{ConnString, redact_url, split_password, with_dbname};

/// The connection type every PostgreSQL repository function takes
/// (`&mut Conn`). A pooled connection dereferences to it. Direct or pooler
/// mode is decided when it opens (`DB_POOLER`); see `PgConn`.
pub type Conn = PgConn;
