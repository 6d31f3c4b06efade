//! Operator code the `db` command (cli/) calls that must live in the
//! library: wiping data (`reset`, `nuke`), filling a database with demo data
//! (`seed`, built with the domains' crate-private insert types), the same on
//! a SQLite file (`sqlite`), and the PostgreSQL/PgBouncer launcher behind
//! `db up`/`db down` and the tests' servers (`cluster`). Feature `ops`: a
//! service does not turn it on.

pub mod cluster;
pub mod data;
mod error;
pub mod seed;
pub mod sqlite;

pub use error::{OpsError, OpsResult};
