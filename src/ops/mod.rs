//! What an operator does by hand, as library functions the `db` command
//! calls: the production guard, wiping data (`reset`, `nuke`), scaffolding a
//! migration (`new`) and comparing the live schema with the migrations
//! (`diff`, `pull`), filling a database with demo data (`seed`) and the
//! PostgreSQL launcher behind `up`/`down` and the tests' servers (`cluster`).

pub mod cluster;
pub mod data;
pub mod drift;
mod error;
pub mod guard;
pub mod lint;
pub mod project;
pub mod scaffold;
pub mod seed;
pub mod sqlite;

pub use error::{OpsError, OpsResult};
