//! One function per `db` command, grouped by what they work on.

pub(crate) mod data;
pub(crate) mod dev;
pub(crate) mod files;
pub(crate) mod migrations;
pub(crate) mod schema;
pub(crate) mod sqlite;
