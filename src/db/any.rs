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
//! does not type-check there, and `Db` (PostgreSQL's handle) refuses a
//! SQLite URL with `Error::Unsupported`.
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

use diesel_async::{AsyncConnection, TransactionManager};

use super::ctx::Ctx;
use super::postgres::Db;
use super::sqlite::{SqliteConn, SqliteDb, SqlitePooledConn};
use super::{Config, Conn, PooledConn};
use crate::error::Result;

/// A connection of either backend, borrowed for one call.
pub enum Backend<'a> {
    /// PostgreSQL.
    Pg(&'a mut Conn),
    /// SQLite (a blocking connection driven from a blocking thread).
    Sqlite(&'a mut SqliteConn),
}

/// A connection the portable repository functions (auth, settings) accept:
/// a PostgreSQL or SQLite connection, pooled or not, or a transaction of
/// either (`AnyTx`).
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

impl AnyConn for SqlitePooledConn {
    fn backend(&mut self) -> Backend<'_> {
        Backend::Sqlite(self)
    }
}

/// A transaction of either backend: what the closure of
/// `AnyPooledConn::transaction`, `AnyDb::transaction` and `db::transaction`
/// receives. Every portable function takes it.
pub struct AnyTx<'a>(Backend<'a>);

impl AnyConn for AnyTx<'_> {
    fn backend(&mut self) -> Backend<'_> {
        match &mut self.0 {
            Backend::Pg(c) => Backend::Pg(c),
            Backend::Sqlite(c) => Backend::Sqlite(c),
        }
    }
}

/// A pooled connection of whichever backend `DATABASE_URL` names
/// (`AnyDb::conn`); returns to its pool when dropped.
// Boxing the larger (PostgreSQL) variant would allocate on every checkout of
// the hot path; the value is moved once, into the caller's frame.
#[allow(clippy::large_enum_variant)]
pub enum AnyPooledConn {
    /// From the PostgreSQL pool.
    Pg(PooledConn),
    /// From the SQLite pool.
    Sqlite(SqlitePooledConn),
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

    /// Runs `f` in one transaction on this connection, whichever its
    /// backend: the same closure for both. Committed when `f` returns `Ok`,
    /// rolled back otherwise.
    pub async fn transaction<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut AnyTx<'_>) -> Result<T>,
    ) -> Result<T> {
        transaction(self, f).await
    }
}

/// Runs `f` in one transaction on `conn`, whichever its backend (see
/// `AnyPooledConn::transaction`).
pub async fn transaction<T>(
    conn: &mut impl AnyConn,
    f: impl AsyncFnOnce(&mut AnyTx<'_>) -> Result<T>,
) -> Result<T> {
    match conn.backend() {
        Backend::Pg(c) => {
            in_transaction(c, async |c: &mut Conn| f(&mut AnyTx(Backend::Pg(c))).await).await
        }
        Backend::Sqlite(c) => {
            let result = in_transaction(c, async |c: &mut SqliteConn| {
                f(&mut AnyTx(Backend::Sqlite(c))).await
            })
            .await;
            super::sqlite::name_errors(c, result).await
        }
    }
}

/// `f` between `BEGIN` and `COMMIT` (a savepoint when a transaction is
/// already open), `ROLLBACK` when it fails: what diesel-async's
/// `transaction` does, with the crate's error type and no `Send` bound on
/// `f` (the whole future is `Send` when `f`'s is).
pub(crate) async fn in_transaction<C, T>(
    conn: &mut C,
    f: impl AsyncFnOnce(&mut C) -> Result<T>,
) -> Result<T>
where
    C: AsyncConnection,
{
    C::TransactionManager::begin_transaction(conn).await?;
    match f(conn).await {
        Ok(value) => {
            C::TransactionManager::commit_transaction(conn).await?;
            Ok(value)
        }
        Err(e) => {
            // A failed rollback leaves the connection broken (it is closed,
            // and the server rolls back): the caller's error is the one that
            // says what went wrong.
            let _ = C::TransactionManager::rollback_transaction(conn).await;
            Err(e)
        }
    }
}

/// A database of either backend, chosen by the URL: the handle of a service
/// whose every domain is portable (auth, settings). A service that uses any
/// PostgreSQL-only domain takes a `Db`, so that a SQLite URL is refused at
/// start-up.
#[derive(Clone, Debug)]
pub enum AnyDb {
    /// PostgreSQL.
    Pg(Db),
    /// SQLite.
    Sqlite(SqliteDb),
}

impl AnyDb {
    /// `Db::new` or `SqliteDb::new`, by the URL.
    pub fn new(config: Config) -> Result<Self> {
        if super::sqlite::is_sqlite_url(&config.database_url) {
            Ok(AnyDb::Sqlite(SqliteDb::new(config)?))
        } else {
            Ok(AnyDb::Pg(Db::new(config)?))
        }
    }

    /// `Config::from_env` then `AnyDb::new`.
    pub fn from_env() -> Result<Self> {
        Self::new(Config::from_env()?)
    }

    /// The same pools, with every call made in `ctx`.
    pub fn with(&self, ctx: Ctx) -> AnyDb {
        match self {
            AnyDb::Pg(db) => AnyDb::Pg(db.with(ctx)),
            AnyDb::Sqlite(db) => AnyDb::Sqlite(db.with(ctx)),
        }
    }

    /// The backend's name: `"postgresql"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            AnyDb::Pg(_) => "postgresql",
            AnyDb::Sqlite(_) => "sqlite",
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        match self {
            AnyDb::Pg(db) => db.config(),
            AnyDb::Sqlite(db) => db.config(),
        }
    }

    /// A pooled connection of this backend.
    pub async fn conn(&self) -> Result<AnyPooledConn> {
        match self {
            AnyDb::Pg(db) => Ok(AnyPooledConn::Pg(db.conn().await?)),
            AnyDb::Sqlite(db) => Ok(AnyPooledConn::Sqlite(db.conn().await?)),
        }
    }

    /// Runs `f` in one transaction, whichever the backend: the same closure
    /// for both.
    pub async fn transaction<T>(
        &self,
        f: impl AsyncFnOnce(&mut AnyTx<'_>) -> Result<T>,
    ) -> Result<T> {
        match self {
            AnyDb::Pg(db) => {
                db.transaction(async |c| f(&mut AnyTx(Backend::Pg(c))).await)
                    .await
            }
            AnyDb::Sqlite(db) => {
                db.transaction(async |c| f(&mut AnyTx(Backend::Sqlite(c))).await)
                    .await
            }
        }
    }

    /// Checks that the database answers, and measures how fast.
    pub async fn health(&self) -> Result<super::Health> {
        match self {
            AnyDb::Pg(db) => db.health().await,
            AnyDb::Sqlite(db) => db.health().await,
        }
    }

    /// The (primary) pool's numbers now.
    pub fn pool_status(&self) -> super::PoolStatus {
        match self {
            AnyDb::Pg(db) => db.pool_status(),
            AnyDb::Sqlite(db) => db.pool_status(),
        }
    }

    /// Closes every pool.
    pub fn close(&self) {
        match self {
            AnyDb::Pg(db) => db.close(),
            AnyDb::Sqlite(db) => db.close(),
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
/// through `sqlite::named` so constraint names match PostgreSQL's (it reads
/// the file's catalog for a UNIQUE rule that SQLite names by its columns).
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
                $crate::db::sqlite::name_errors($conn, result).await
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

#[cfg(test)]
mod tests {
    /// The fields of `pub struct {name} {` in `source`, in declaration order.
    fn fields_of(source: &str, name: &str) -> Option<Vec<String>> {
        let start = source.find(&format!("pub struct {name} {{"))?;
        let body = &source[start..];
        let body = &body[body.find('{')? + 1..body.find("\n}")?];
        Some(
            body.lines()
                .map(str::trim)
                .filter_map(|line| line.strip_prefix("pub "))
                .filter_map(|line| line.split_once(':'))
                .map(|(field, _)| field.trim().to_owned())
                .collect(),
        )
    }

    /// `selectable_on_both!` lists a portable model's columns by hand and the
    /// model reads them by position (`Queryable`): a list in another order
    /// than the struct's fields compiles and swaps data silently (four
    /// `Option<SecretString>` side by side in accounts). Every use in the
    /// crate is found in the source and compared with its struct, so a new
    /// portable model is covered without being listed here.
    #[test]
    fn every_portable_models_columns_follow_its_fields() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src.clone()];
        let mut checked = Vec::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("db/any.rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for (at, _) in source.match_indices("selectable_on_both!(") {
                let call = &source[at + "selectable_on_both!(".len()..];
                let call = &call[..call.find("});").unwrap()];
                let (model, rest) = call.split_once("=>").unwrap();
                let model = model.trim();
                let columns: Vec<String> = rest[rest.find('{').unwrap() + 1..]
                    .split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect();
                let fields = fields_of(&source, model)
                    .unwrap_or_else(|| panic!("{}: no `pub struct {model}`", path.display()));
                assert_eq!(
                    columns,
                    fields,
                    "{}: selectable_on_both!({model}) must list the struct's fields, in order",
                    path.display()
                );
                checked.push(model.to_owned());
            }
        }
        checked.sort();
        assert_eq!(
            checked,
            ["Account", "Profile", "Session", "User", "Verification"],
            "the portable models found (a new one is checked as well: update this list)"
        );
    }

    /// What the check above relies on: the selection is the macro's list, on
    /// both backends alike.
    #[test]
    fn the_selection_is_the_same_columns_on_both_backends() {
        use diesel::{QueryDsl, SelectableHelper};
        let pg = diesel::debug_query::<diesel::pg::Pg, _>(
            &crate::schema::accounts::table.select(crate::auth::accounts::Account::as_select()),
        )
        .to_string();
        let sqlite = diesel::debug_query::<diesel::sqlite::Sqlite, _>(
            &crate::schema_sqlite::accounts::table
                .select(crate::auth::accounts::Account::as_select()),
        )
        .to_string();
        let names = |sql: &str| -> Vec<String> {
            sql.split(" FROM ").next().unwrap()["SELECT ".len()..]
                .split(", ")
                .map(|c| {
                    c.rsplit('.')
                        .next()
                        .unwrap()
                        .trim_matches(['"', '`'])
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(names(&pg), names(&sqlite));
        assert_eq!(
            names(&pg)[4..7],
            ["access_token", "refresh_token", "id_token"]
        );
    }
}
