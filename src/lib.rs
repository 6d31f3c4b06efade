//! The data layer of the platform: PostgreSQL through Diesel, an async pool
//! (diesel-async + deadpool), migrations embedded in every binary, and one
//! module per domain with typed rows and repository functions.
//!
//! ```no_run
//! use database::prelude::*;
//!
//! # async fn start() -> Result<(), database::Error> {
//! let db = Db::from_env()?;   // DATABASE_URL, DB_POOL_SIZE, ... (.env too)
//! db.migrate().await?;        // safe from many replicas at once
//! let mut conn = db.conn().await?;
//! let user = database::auth::users::find_by_email(&mut conn, "ann@example.com").await?;
//! # Ok(()) }
//! ```
//!
//! Repository functions take `&mut Conn`, never the pool, so a caller can run
//! several in one transaction: `conn.transaction(async |conn| { ... }).await`.

mod cached;
pub mod db;
pub mod error;
mod functions;
pub mod ids;
mod inline_limit;
mod input;
mod jsonb;
pub mod keyset;
pub mod migrate;
#[cfg(feature = "ops")]
pub mod ops;
mod render_once;
pub mod schema;
pub mod schema_sqlite;
mod split;
mod sql_enum;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;

pub mod admin;
pub mod auth;
pub mod billing;
pub mod chat;
pub mod features;
pub mod notifications;
pub mod projects;
pub mod settings;
pub mod tenancy;
pub mod workflows;

/// Every table of `schema` by its domain, the folder of its module
/// (`src/<domain>/<table>.rs`), in name order: generated at build time from
/// the module tree (`build.rs`), for tools that group tables (`db studio`).
pub const DOMAINS: &[(&str, &[&str])] = include!(concat!(env!("OUT_DIR"), "/domains.rs"));

/// What a service needs in scope: the handle, the connection and error
/// types, and the diesel-async traits behind `conn.transaction(...)` and
/// Diesel queries. `use database::prelude::*;`
pub mod prelude {
    pub use crate::{
        AnyConn, AnyDb, AnyPooledConn, AnyTx, Conn, Ctx, Db, Error, PooledConn, Result, SqliteDb,
    };
    pub use diesel_async::{AsyncConnection, RunQueryDsl};
}

/// The README's code blocks, compiled and run as doc-tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
/// `#[database::test]`: an async test on its own migrated database (feature
/// `testing`; see `testing`).
#[cfg(feature = "testing")]
pub use database_macros::test;
pub use db::{
    AnyConn, AnyDb, AnyPooledConn, AnyTx, Config, Conn, Ctx, Db, PooledConn, SqliteDb, TraceParent,
};
pub use error::{
    Error, FieldError, InvalidInput, Result, RetryReason, TimeoutKind, TokenRejection,
};
pub use ids::*;

// The query helpers (`cached`, `inline_limit`, `jsonb`, `render_once`) are
// for the crate's own repository functions: see each module's docs and the
// README's "Performance" part. They are not API.
pub(crate) use cached::{CachedExt, FixedSqlExt};
pub(crate) use inline_limit::InlineLimitDsl;
pub(crate) use jsonb::JsonbOf;
pub(crate) use sql_enum::sql_enum;
