//! `PgConn`: the one PostgreSQL connection type of the crate.
//!
//! Every repository function takes `&mut Conn` (= `PgConn`). Which protocol
//! it speaks is chosen once, when the connection opens (`DB_POOLER`):
//!
//! - **direct** (default): diesel-async's `AsyncPgConnection`, with named,
//!   cached prepared statements and pipelining. Each call is passed through
//!   unchanged.
//! - **pooler** (`DB_POOLER=transaction`): `UnnamedConnection`, which sends
//!   only unnamed statements in one round trip each and so is safe behind a
//!   transaction-mode pooler (see `unnamed.rs`).
//!
//! Both implement diesel-async's `AsyncConnection` with `Backend = Pg`,
//! so Diesel queries, `conn.transaction(...)` and `&PgConn` pipelining
//! (`tokio::join!` of two queries on one connection) work the same in both.

use diesel::QueryResult;
use diesel::connection::{CacheSize, Instrumentation};
use diesel::pg::Pg;
use diesel::query_builder::{AsQuery, QueryFragment, QueryId};
use diesel::row::{Field, PartialRow, Row, RowIndex, RowSealed};
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::{
    AnsiTransactionManager, AsyncConnection, AsyncConnectionCore, AsyncPgConnection,
    SimpleAsyncConnection, TransactionManager,
};
use futures::future::{BoxFuture, FutureExt, TryFutureExt};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};

use super::unnamed::{UnnamedConnection, UnnamedField, UnnamedRow};

/// A PostgreSQL connection: direct (named statements) or pooler mode
/// (unnamed statements only). See the module docs.
pub struct PgConn {
    inner: Inner,
}

enum Inner {
    Direct(AsyncPgConnection),
    Unnamed(UnnamedConnection),
}

impl PgConn {
    pub(super) fn direct(conn: AsyncPgConnection) -> Self {
        Self {
            inner: Inner::Direct(conn),
        }
    }

    pub(super) fn unnamed(conn: UnnamedConnection) -> Self {
        Self {
            inner: Inner::Unnamed(conn),
        }
    }

    /// Whether this connection runs in pooler mode (`DB_POOLER=transaction`):
    /// only unnamed statements, nothing that outlives a transaction.
    pub fn is_pooler_mode(&self) -> bool {
        matches!(self.inner, Inner::Unnamed(_))
    }

    /// The diesel-async connection underneath, in direct mode (`None` in
    /// pooler mode): for code that needs what only it offers.
    pub fn as_direct(&mut self) -> Option<&mut AsyncPgConnection> {
        match &mut self.inner {
            Inner::Direct(conn) => Some(conn),
            Inner::Unnamed(_) => None,
        }
    }
}

impl From<AsyncPgConnection> for PgConn {
    fn from(conn: AsyncPgConnection) -> Self {
        Self::direct(conn)
    }
}

/// The row type of the direct path (diesel-async does not export its name).
type DirectRow = <AsyncPgConnection as AsyncConnectionCore>::Row<'static, 'static>;

type Rows = BoxStream<'static, QueryResult<PgConnRow>>;

fn direct_rows(rows: BoxStream<'static, QueryResult<DirectRow>>) -> Rows {
    rows.map_ok(PgConnRow::Direct).boxed()
}

fn unnamed_rows(rows: BoxStream<'static, QueryResult<UnnamedRow>>) -> Rows {
    rows.map_ok(PgConnRow::Unnamed).boxed()
}

impl SimpleAsyncConnection for PgConn {
    async fn batch_execute(&mut self, query: &str) -> QueryResult<()> {
        match &mut self.inner {
            Inner::Direct(conn) => conn.batch_execute(query).await,
            Inner::Unnamed(conn) => conn.batch_execute(query).await,
        }
    }
}

impl SimpleAsyncConnection for &PgConn {
    async fn batch_execute(&mut self, query: &str) -> QueryResult<()> {
        match &self.inner {
            Inner::Direct(conn) => {
                let mut conn = conn;
                SimpleAsyncConnection::batch_execute(&mut conn, query).await
            }
            Inner::Unnamed(conn) => conn.batch_execute(query).await,
        }
    }
}

impl AsyncConnectionCore for PgConn {
    type LoadFuture<'conn, 'query> = BoxFuture<'conn, QueryResult<Self::Stream<'conn, 'query>>>;
    type ExecuteFuture<'conn, 'query> = BoxFuture<'conn, QueryResult<usize>>;
    type Stream<'conn, 'query> = Rows;
    type Row<'conn, 'query> = PgConnRow;
    type Backend = Pg;

    fn load<'conn, 'query, T>(&'conn mut self, source: T) -> Self::LoadFuture<'conn, 'query>
    where
        T: AsQuery + 'query,
        T::Query: QueryFragment<Pg> + QueryId + 'query,
    {
        match &mut self.inner {
            Inner::Direct(conn) => conn.load(source).map_ok(direct_rows).boxed(),
            Inner::Unnamed(conn) => {
                let rendered = conn.render(&source.as_query());
                let conn = &*conn;
                async move { conn.load(rendered).await.map(unnamed_rows) }.boxed()
            }
        }
    }

    fn execute_returning_count<'conn, 'query, T>(
        &'conn mut self,
        source: T,
    ) -> Self::ExecuteFuture<'conn, 'query>
    where
        T: QueryFragment<Pg> + QueryId + 'query,
    {
        match &mut self.inner {
            // diesel-async's own future, unchanged: the direct path pays nothing.
            Inner::Direct(conn) => conn.execute_returning_count(source),
            Inner::Unnamed(conn) => {
                let rendered = conn.render(&source);
                let conn = &*conn;
                conn.execute(rendered).boxed()
            }
        }
    }
}

// Pipelining: several queries in flight on one connection at once.
impl<'a> AsyncConnectionCore for &'a PgConn {
    type LoadFuture<'conn, 'query> = BoxFuture<'a, QueryResult<Self::Stream<'conn, 'query>>>;
    type ExecuteFuture<'conn, 'query> = BoxFuture<'a, QueryResult<usize>>;
    type Stream<'conn, 'query> = Rows;
    type Row<'conn, 'query> = PgConnRow;
    type Backend = Pg;

    fn load<'conn, 'query, T>(&'conn mut self, source: T) -> Self::LoadFuture<'conn, 'query>
    where
        T: AsQuery + 'query,
        T::Query: QueryFragment<Pg> + QueryId + 'query,
    {
        let this: &'a PgConn = self;
        match &this.inner {
            Inner::Direct(conn) => {
                let mut conn: &'a AsyncPgConnection = conn;
                conn.load(source).map_ok(direct_rows).boxed()
            }
            Inner::Unnamed(conn) => {
                let rendered = conn.render(&source.as_query());
                async move { conn.load(rendered).await.map(unnamed_rows) }.boxed()
            }
        }
    }

    fn execute_returning_count<'conn, 'query, T>(
        &'conn mut self,
        source: T,
    ) -> Self::ExecuteFuture<'conn, 'query>
    where
        T: QueryFragment<Pg> + QueryId + 'query,
    {
        let this: &'a PgConn = self;
        match &this.inner {
            Inner::Direct(conn) => {
                let mut conn: &'a AsyncPgConnection = conn;
                conn.execute_returning_count(source)
            }
            Inner::Unnamed(conn) => {
                let rendered = conn.render(&source);
                conn.execute(rendered).boxed()
            }
        }
    }
}

impl AsyncConnection for PgConn {
    type TransactionManager = AnsiTransactionManager;

    /// A direct connection with diesel-async's defaults. Services use `Db`
    /// (or `db::connect`), which apply the configuration.
    async fn establish(database_url: &str) -> diesel::ConnectionResult<Self> {
        AsyncPgConnection::establish(database_url)
            .await
            .map(Self::direct)
    }

    fn transaction_state(&mut self) -> &mut AnsiTransactionManager {
        match &mut self.inner {
            Inner::Direct(conn) => conn.transaction_state(),
            Inner::Unnamed(conn) => conn.transaction_state(),
        }
    }

    fn instrumentation(&mut self) -> &mut dyn Instrumentation {
        match &mut self.inner {
            Inner::Direct(conn) => conn.instrumentation(),
            Inner::Unnamed(conn) => conn.instrumentation(),
        }
    }

    fn set_instrumentation(&mut self, instrumentation: impl Instrumentation) {
        match &mut self.inner {
            Inner::Direct(conn) => conn.set_instrumentation(instrumentation),
            Inner::Unnamed(conn) => conn.set_instrumentation(instrumentation),
        }
    }

    fn set_prepared_statement_cache_size(&mut self, size: CacheSize) {
        match &mut self.inner {
            Inner::Direct(conn) => conn.set_prepared_statement_cache_size(size),
            // Nothing is prepared by name: there is no cache.
            Inner::Unnamed(_) => {}
        }
    }
}

impl PoolableConnection for PgConn {
    fn is_broken(&mut self) -> bool {
        let unnamed_broken = match &mut self.inner {
            Inner::Direct(conn) => return PoolableConnection::is_broken(conn),
            Inner::Unnamed(conn) => conn.is_broken(),
        };
        unnamed_broken || AnsiTransactionManager::is_broken_transaction_manager(self)
    }
}

/// A result row of either path.
pub enum PgConnRow {
    Direct(DirectRow),
    Unnamed(UnnamedRow),
}

/// A column of a `PgConnRow`.
pub enum PgConnField<'a> {
    Direct(<DirectRow as Row<'a, Pg>>::Field<'a>),
    Unnamed(UnnamedField<'a>),
}

impl RowSealed for PgConnRow {}

impl<'a> Row<'a, Pg> for PgConnRow {
    type InnerPartialRow = Self;
    type Field<'f>
        = PgConnField<'f>
    where
        Self: 'f,
        'a: 'f;

    fn field_count(&self) -> usize {
        match self {
            PgConnRow::Direct(row) => Row::<'a, Pg>::field_count(row),
            PgConnRow::Unnamed(row) => Row::<'a, Pg>::field_count(row),
        }
    }

    fn get<'b, I>(&'b self, idx: I) -> Option<Self::Field<'b>>
    where
        'a: 'b,
        Self: RowIndex<I>,
    {
        let idx = self.idx(idx)?;
        match self {
            PgConnRow::Direct(row) => Row::<'b, Pg>::get(row, idx).map(PgConnField::Direct),
            PgConnRow::Unnamed(row) => Row::<'b, Pg>::get(row, idx).map(PgConnField::Unnamed),
        }
    }

    fn partial_row(&self, range: std::ops::Range<usize>) -> PartialRow<'_, Self::InnerPartialRow> {
        PartialRow::new(self, range)
    }
}

impl RowIndex<usize> for PgConnRow {
    fn idx(&self, idx: usize) -> Option<usize> {
        match self {
            PgConnRow::Direct(row) => row.idx(idx),
            PgConnRow::Unnamed(row) => row.idx(idx),
        }
    }
}

impl<'n> RowIndex<&'n str> for PgConnRow {
    fn idx(&self, name: &'n str) -> Option<usize> {
        match self {
            PgConnRow::Direct(row) => row.idx(name),
            PgConnRow::Unnamed(row) => row.idx(name),
        }
    }
}

impl<'a> Field<'a, Pg> for PgConnField<'a> {
    fn field_name(&self) -> Option<&str> {
        match self {
            PgConnField::Direct(field) => field.field_name(),
            PgConnField::Unnamed(field) => field.field_name(),
        }
    }

    fn value(&self) -> Option<diesel::pg::PgValue<'_>> {
        match self {
            PgConnField::Direct(field) => field.value(),
            PgConnField::Unnamed(field) => field.value(),
        }
    }
}
