//! The backend seam of the portable domains (auth, settings): one
//! repository function serves a PostgreSQL and a SQLite connection.
//!
//! A portable function takes `conn: &mut impl AnyConn`; its body is written
//! once inside `any_run!`, which compiles it twice, once with
//! `crate::schema`'s tables in scope and a `Conn`, once with
//! `crate::schema_sqlite`'s tables and a `SqliteConn`. Every query is still
//! checked by Diesel at compile time against the schema of its backend, and
//! the PostgreSQL arm is the very code it was before (same query types, same
//! prepared statements): the only cost is one `match`.
//!
//! PostgreSQL-only functions keep taking `&mut Conn`: a SQLite connection
//! does not type-check there. A `Db` on SQLite asked for a PostgreSQL
//! connection (`Db::conn`) returns `Error::Unsupported`.
//!
//! ```no_run
//! # async fn f(conn: &mut database::db::sqlite::SqliteConn) -> database::Result<()> {
//! // A portable domain takes a SQLite connection...
//! database::auth::users::find(conn, database::UserId::new()).await?;
//! # Ok(()) }
//! ```
//!
//! ```compile_fail
//! # async fn f(conn: &mut database::db::sqlite::SqliteConn) -> database::Result<()> {
//! // ...a PostgreSQL-only one (tenancy) does not compile with it.
//! database::tenancy::tenants::find(conn, database::TenantId::new()).await?;
//! # Ok(()) }
//! ```

use diesel_async::pooled_connection::deadpool::Object;

use super::sqlite::SqliteConn;
use super::{Conn, PooledConn};

/// A connection of either backend, borrowed for one call.
pub enum Backend<'a> {
    /// PostgreSQL.
    Pg(&'a mut Conn),
    /// SQLite (a blocking connection driven from a blocking thread).
    Sqlite(&'a mut SqliteConn),
}

/// A connection the portable repository functions (auth, settings) accept:
/// a PostgreSQL or SQLite connection, pooled or not.
pub trait AnyConn: Send {
    /// Which backend this is, as the connection itself.
    fn backend(&mut self) -> Backend<'_>;
}

impl AnyConn for Conn {
    fn backend(&mut self) -> Backend<'_> {
        Backend::Pg(self)
    }
}

impl AnyConn for PooledConn {
    fn backend(&mut self) -> Backend<'_> {
        Backend::Pg(self)
    }
}

impl AnyConn for SqliteConn {
    fn backend(&mut self) -> Backend<'_> {
        Backend::Sqlite(self)
    }
}

impl AnyConn for Object<SqliteConn> {
    fn backend(&mut self) -> Backend<'_> {
        Backend::Sqlite(self)
    }
}

/// A pooled connection of whichever backend `DATABASE_URL` names
/// (`Db::any_conn`); returns to its pool when dropped.
// Boxing the larger (PostgreSQL) variant would allocate on every checkout of
// the hot path; the value is moved once, into the caller's frame.
#[allow(clippy::large_enum_variant)]
pub enum AnyPooledConn {
    /// From the PostgreSQL pool.
    Pg(PooledConn),
    /// From the SQLite pool.
    Sqlite(Object<SqliteConn>),
}

impl AnyConn for AnyPooledConn {
    fn backend(&mut self) -> Backend<'_> {
        match self {
            AnyPooledConn::Pg(c) => Backend::Pg(c),
            AnyPooledConn::Sqlite(c) => Backend::Sqlite(c),
        }
    }
}

impl AnyPooledConn {
    /// The backend's name: `"postgresql"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            AnyPooledConn::Pg(_) => "postgresql",
            AnyPooledConn::Sqlite(_) => "sqlite",
        }
    }
}

/// Compiles `body` once per backend: `any_run!(conn, [users, sessions] => { ... })`.
///
/// In each arm `conn` is that backend's connection, the listed tables are
/// that backend's schema modules, and `SQLITE` is a `bool` constant (for the
/// few places where the backends differ by a value, such as setting
/// `updated_at` in a statement whose `RETURNING` must show it: SQLite's
/// triggers run after `RETURNING` is computed). Errors of the SQLite arm go
/// through `sqlite::named` so constraint names match PostgreSQL's.
macro_rules! any_run {
    ($conn:ident, [$($table:ident),* $(,)?] => $body:block) => {
        match $crate::db::AnyConn::backend($conn) {
            $crate::db::Backend::Pg($conn) => {
                #[allow(unused_imports)]
                use $crate::schema::{$($table),*};
                #[allow(dead_code)]
                const SQLITE: bool = false;
                $body
            }
            $crate::db::Backend::Sqlite($conn) => {
                #[allow(unused_imports)]
                use $crate::schema_sqlite::{$($table),*};
                #[allow(dead_code)]
                const SQLITE: bool = true;
                let result: $crate::Result<_> = async { $body }.await;
                result.map_err($crate::db::sqlite::named)
            }
        }
    };
}
pub(crate) use any_run;

/// `Selectable` for both backends: the same columns of a table in
/// `crate::schema` (PostgreSQL) and in `crate::schema_sqlite`, so
/// `Model::as_select()` works in both arms of `any_run!`. (Diesel's derive
/// ties a model to one `table!`, i.e. one backend's schema.)
macro_rules! selectable_on_both {
    ($model:ty => $table:ident { $($column:ident),+ $(,)? }) => {
        impl diesel::Selectable<diesel::pg::Pg> for $model {
            type SelectExpression = ($($crate::schema::$table::$column,)+);
            fn construct_selection() -> Self::SelectExpression {
                ($($crate::schema::$table::$column,)+)
            }
        }
        impl diesel::Selectable<diesel::sqlite::Sqlite> for $model {
            type SelectExpression = ($($crate::schema_sqlite::$table::$column,)+);
            fn construct_selection() -> Self::SelectExpression {
                ($($crate::schema_sqlite::$table::$column,)+)
            }
        }
    };
}
pub(crate) use selectable_on_both;
