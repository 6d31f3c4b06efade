//! `PgConn`: the one PostgreSQL connection type of the crate.
//!
//! Every repository function takes `&mut Conn` (= `PgConn`). Which protocol
//! it speaks is chosen once, when the connection opens (`DB_POOLER`):
//!
//! - **direct** (default): diesel-async's `AsyncPgConnection`, with named,
//!   cached prepared statements and pipelining.
//! - **pooler** (`DB_POOLER=transaction`): `UnnamedConnection`, which sends
//!   only unnamed statements in one round trip each and so is safe behind a
//!   transaction-mode pooler (see `unnamed.rs`).
//!
//! Both implement diesel-async's `AsyncConnection` with `Backend = Pg`,
//! so Diesel queries, `conn.transaction(...)` and `&PgConn` pipelining
//! (`tokio::join!` of two queries on one connection) work the same in both.
//!
//! On top of either, the connection keeps the call contract (`call.rs`:
//! every statement bounded, dirty when a future is dropped half-way, failures
//! reported by what they mean) and applies the request's context (`Scope`):
//! at `BEGIN`, in the same round trip, it sends the context's settings
//! (`SET LOCAL ROLE`, `set_config(..., true)`) and, when the call has a
//! deadline or runs behind a pooler, the remaining time as transaction-local
//! timeouts. The transaction manager sends `BEGIN` and `COMMIT` through
//! `batch_execute`, which is where both are recognised.
//!
//! Over 600 lines on purpose: the two protocols, the contract, the context
//! and the telemetry hooks meet on every statement path here, and splitting
//! them would split each path across files (the span and metric code itself
//! lives in `telemetry.rs` and `metrics.rs`).
//!
//! One file, though long: the one connection type implements Diesel's
//! connection traits and its row and field types for both protocols (direct
//! and pooler), each impl a dispatch over the same two variants; split by
//! trait, the dispatch would be scattered over as many files.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

use super::call::{self, Calls, Sent};
use super::sqlcommenter::Commented;
use super::telemetry::{self, Endpoint};
use super::unnamed::{UnnamedConnection, UnnamedField, UnnamedRow};

/// A PostgreSQL connection: direct (named statements) or pooler mode
/// (unnamed statements only). See the module docs.
///
/// One pointer: a pooled connection is moved by value through the pool's
/// futures, its timeout and its guard on every checkout and return, so its
/// state lives behind a box and each move copies eight bytes, not the
/// state's few hundred.
pub struct PgConn(Box<State>);

impl std::ops::Deref for PgConn {
    type Target = State;

    fn deref(&self) -> &State {
        &self.0
    }
}

impl std::ops::DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.0
    }
}

/// What a `PgConn` holds (see `PgConn`).
#[doc(hidden)]
pub struct State {
    inner: Inner,
    calls: Calls,
    /// A transaction is open on the server (a top-level `BEGIN` went
    /// through `batch_execute` and no `COMMIT`/`ROLLBACK` since).
    open: AtomicBool,
    scope: Scope,
    cancel: Option<super::connection::Canceller>,
    /// What every span of this connection says about its server.
    endpoint: Arc<Endpoint>,
    /// The span of the open transaction, when a subscriber wanted one: the
    /// parent of its statements' spans, closed at `COMMIT`/`ROLLBACK`.
    transaction: telemetry::TransactionSpan,
    /// No spans: the replica monitor's polling (until the next checkout).
    untraced: AtomicBool,
    /// Held by a statement wrapped in a transaction of its own from its
    /// `BEGIN` until its `COMMIT` is queued: two such statements pipelined on
    /// this connection would otherwise interleave, and one's `COMMIT` could
    /// reach the server before the other's statement, which would then run
    /// outside any transaction, without the context's settings.
    own_transaction: tokio::sync::Mutex<()>,
    /// The statements that diesel-async has prepared and cached on this
    /// direct connection, as far as wrapped statements have seen: such a
    /// statement goes out on its first poll, so its `COMMIT` can follow it
    /// in the same flight (`direct_in_transaction`). Empty, and left empty,
    /// when the statement cache is off.
    prepared: std::sync::Mutex<PreparedHere>,
    /// Pooler mode: the server's own `statement_timeout` for this role and
    /// database (`ALTER ROLE ... IN DATABASE ... SET`, as `db setup` makes
    /// it), read when the connection opened; `None` when unset (0) or not
    /// read. When it bounds a statement as the call's bound would, a
    /// statement outside a transaction needs no transaction of its own to
    /// carry its timeouts (`wraps`).
    server_limit: Option<Duration>,
}

/// See `PgConn::prepared`.
struct PreparedHere {
    /// The statement cache is on (diesel-async's default; `Disabled` by
    /// `DB_STATEMENT_CACHE=false`). It never evicts: once cached, a
    /// statement stays prepared for the connection's life.
    caching: bool,
    keys: std::collections::HashSet<CacheKey>,
}

/// A statement in diesel-async's cache (`PgConn::cache_key`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum CacheKey {
    Type(std::any::TypeId),
    Text(u64),
}

enum Inner {
    Direct(AsyncPgConnection),
    Unnamed(UnnamedConnection),
}

/// What the request a connection serves asks of it: the settings sent with
/// every `BEGIN` and the bounds of its statements. Set when the connection
/// is checked out (`Db` gives it the context's), the default for every
/// connection opened by `db::connect`.
#[derive(Clone, Default)]
pub(crate) struct Scope {
    /// `SET LOCAL ROLE ...; SELECT set_config(...)` for the tenant, the
    /// user and the role switch (`DB_APP_ROLE`); sent after `BEGIN` in the
    /// same round trip. A statement outside a transaction is wrapped in one
    /// so that it applies.
    pub(crate) settings: Option<Arc<str>>,
    /// The context's deadline: every statement ends before it.
    pub(crate) deadline: Option<Instant>,
    /// Each statement's own bound when the context has no earlier deadline
    /// (`DB_QUERY_TIMEOUT_MS`); `None` only for the migration session.
    pub(crate) per_statement: Option<Duration>,
    /// Send the remaining time as transaction-local `statement_timeout` and
    /// `idle_in_transaction_session_timeout` at `BEGIN` (a context deadline,
    /// or pooler mode, where no session setting may be made).
    pub(crate) local_timeouts: bool,
    /// A replica's connection: nothing it runs can commit (hot standbys are
    /// read-only), so no failure on it has an unknown outcome.
    pub(crate) read_only: bool,
    /// The span the call's statements hang under (the context's), when one
    /// was given; else the span current when each statement starts.
    pub(crate) parent: Option<tracing::Span>,
    /// Where routing sent this connection's calls, and why (the spans'
    /// `database.route` and `database.route.reason`).
    pub(crate) route: Route,
    /// The sqlcommenter comment each statement ends with
    /// (`DB_SQLCOMMENTER`, a context with a trace parent).
    pub(crate) comment: Option<Arc<str>>,
    /// The escape hatch's reason, when the call runs under `Ctx::system`:
    /// written to the audit log by what writes to it anyway.
    pub(crate) system_reason: Option<&'static str>,
}

/// Where routing sent a connection's calls, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Route {
    /// The primary, because the caller asked for it (`conn`, `run`,
    /// `transaction`: writes, and reads that must see the latest).
    #[default]
    Requested,
    /// A replica, for a read within `DB_REPLICA_MAX_LAG_MS`.
    ReplicaRead,
    /// A replica that has replayed the caller's WAL position (`read_after`).
    ReplicaCaughtUp,
    /// The primary for a read: no replica is configured.
    NoReplicas,
    /// The primary for a read: no replica was healthy, within the lag bound
    /// or caught up in time.
    NoReplicaReady,
    /// The primary for a read under `Ctx::system`, which never reads from a
    /// replica.
    SystemContext,
    /// The primary for a read the replica did not answer (`read_run`).
    ReplicaFailed,
}

impl Route {
    /// `database.route`: `primary` or `replica`.
    pub(crate) fn target(self) -> &'static str {
        match self {
            Route::ReplicaRead | Route::ReplicaCaughtUp => "replica",
            _ => "primary",
        }
    }

    /// `database.route.reason`.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Route::Requested => "requested",
            Route::ReplicaRead => "read",
            Route::ReplicaCaughtUp => "caught_up",
            Route::NoReplicas => "no_replicas",
            Route::NoReplicaReady => "no_replica_ready",
            Route::SystemContext => "system_context",
            Route::ReplicaFailed => "replica_failed",
        }
    }
}

impl PgConn {
    fn new(inner: Inner, scope: Scope, cancel: Option<super::connection::Canceller>) -> Self {
        let calls = Calls::default();
        calls.expect_read_only(scope.read_only);
        PgConn(Box::new(State {
            inner,
            calls,
            open: AtomicBool::new(false),
            scope,
            cancel,
            endpoint: Arc::new(Endpoint {
                system: "postgresql",
                ..Endpoint::default()
            }),
            transaction: telemetry::TransactionSpan::default(),
            untraced: AtomicBool::new(false),
            own_transaction: tokio::sync::Mutex::new(()),
            prepared: std::sync::Mutex::new(PreparedHere {
                caching: true,
                keys: Default::default(),
            }),
            server_limit: None,
        }))
    }

    /// The key under which diesel-async caches `query` on a direct
    /// connection, when it caches it: its query type when it has a static
    /// one, else its SQL text (with its Rust type, which decides its binds'
    /// types, the rest of diesel's key). `None` for a query that is not safe
    /// to cache (prepared anew on every run), or with the cache off.
    fn cache_key<T: QueryFragment<Pg> + QueryId>(&self, query: &T) -> Option<CacheKey> {
        if !matches!(query.is_safe_to_cache_prepared(&Pg), Ok(true)) {
            return None;
        }
        if !self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .caching
        {
            return None;
        }
        if let Some(id) = T::query_id() {
            return Some(CacheKey::Type(id));
        }
        use diesel::query_builder::QueryBuilder as _;
        use std::hash::{Hash, Hasher};
        let mut sql = diesel::pg::PgQueryBuilder::default();
        query.to_sql(&mut sql, &Pg).ok()?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::any::type_name::<T>().hash(&mut hasher);
        sql.finish().hash(&mut hasher);
        Some(CacheKey::Text(hasher.finish()))
    }

    /// Whether the statement of `key` is prepared on this connection.
    fn is_prepared(&self, key: Option<CacheKey>) -> bool {
        key.is_some_and(|key| {
            let prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
            prepared.caching && prepared.keys.contains(&key)
        })
    }

    /// Records that the statement of `key` ran, so diesel-async holds it
    /// prepared from now on.
    fn ran_prepared(&self, key: Option<CacheKey>) {
        if let Some(key) = key {
            let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
            if prepared.caching {
                prepared.keys.insert(key);
            }
        }
    }

    /// Gives the connection's spans their server attributes.
    pub(super) fn with_endpoint(mut self, endpoint: Arc<Endpoint>) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Makes no spans until the next checkout: for the crate's own
    /// background polling, which is not the service's work.
    pub(crate) fn set_untraced(&self) {
        self.untraced.store(true, Ordering::Relaxed);
    }

    /// The metrics of the pool this connection belongs to.
    pub(crate) fn meter(&self) -> Arc<super::metrics::Meter> {
        Arc::clone(&self.endpoint.meter)
    }

    /// Where routing sent this connection's calls, and why.
    fn route(&self) -> Route {
        self.scope.route
    }

    /// The reason given to `Ctx::system` when this connection serves the
    /// escape hatch (`admin_audit_log::record` writes it on the entry).
    pub fn system_reason(&self) -> Option<&'static str> {
        self.scope.system_reason
    }

    /// Says why a read runs on the primary (the call's routing decided
    /// after the checkout).
    pub(crate) fn set_route(&mut self, route: Route) {
        self.scope.route = route;
    }

    /// The watch of a statement starting now: its span when a subscriber
    /// wants one (else none is built), and its duration metric. `None` for
    /// the crate's own background polling. `rows`: the statement returns
    /// rows, which the span counts when `DB_TRACE_RETURNED_ROWS` is on.
    fn watch(
        &self,
        rows: bool,
        shape: impl FnOnce() -> Option<Arc<telemetry::Shape>>,
    ) -> Option<Arc<telemetry::Watch>> {
        self.owned_watch(rows, shape).map(Arc::new)
    }

    /// `watch`, for a single owner.
    fn owned_watch(
        &self,
        rows: bool,
        shape: impl FnOnce() -> Option<Arc<telemetry::Shape>>,
    ) -> Option<telemetry::Watch> {
        if self.untraced.load(Ordering::Relaxed) {
            return None;
        }
        let shape = shape()?;
        let span = if telemetry::enabled() {
            let transaction = self.transaction.current();
            let parent = transaction.as_ref().or(self.scope.parent.as_ref());
            let span = telemetry::statement_span(&self.endpoint, &shape, self.route(), parent);
            (!span.is_disabled()).then_some(span)
        } else {
            None
        };
        let timer = super::metrics::Timer::start(&self.endpoint, shape);
        let watch = telemetry::Watch::new(span, timer);
        Some(if rows && self.endpoint.returned_rows {
            watch.counting_rows()
        } else {
            watch
        })
    }

    pub(super) fn direct(
        conn: AsyncPgConnection,
        scope: Scope,
        cancel: Option<super::connection::Canceller>,
    ) -> Self {
        Self::new(Inner::Direct(conn), scope, cancel)
    }

    pub(super) fn unnamed(
        conn: UnnamedConnection,
        scope: Scope,
        cancel: Option<super::connection::Canceller>,
    ) -> Self {
        Self::new(Inner::Unnamed(conn), scope, cancel)
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

    /// Gives the connection the scope of the call it now serves.
    pub(crate) fn enter(&mut self, scope: Scope) {
        self.calls.expect_read_only(scope.read_only);
        self.scope = scope;
        self.untraced.store(false, Ordering::Relaxed);
    }

    /// Whether the connection must be closed rather than pooled: a statement
    /// was abandoned half-way, the deadline passed, the connection failed,
    /// or a transaction is still open.
    pub(crate) fn is_dirty(&mut self) -> bool {
        self.calls.is_broken()
            || self.open.load(Ordering::Relaxed)
            || PoolableConnection::is_broken(self)
    }

    /// When a statement starting now must have its answer.
    fn bound(&self) -> call::Bound {
        call::bound(self.scope.deadline, self.scope.per_statement)
    }

    /// The cancel request for the statement in flight, sent in the
    /// background (best effort: it travels the network path that may be
    /// what failed; the server-side timeouts are the guarantee). It borrows
    /// the token, copied (with its host name) only when the deadline
    /// passes, not for every statement.
    fn canceller(&self) -> impl FnOnce() + '_ {
        move || {
            if let Some(cancel) = &self.cancel {
                cancel.clone().send();
            }
        }
    }

    /// `BEGIN` (as the transaction manager wrote it) with the scope's
    /// settings after it, for one round trip; `Err` when the deadline has
    /// already passed (nothing is sent).
    fn begin_sql(&self, begin: &str) -> QueryResult<Option<String>> {
        let remaining_ms = if self.scope.local_timeouts {
            let bound = self.bound();
            if bound.passed {
                return Err(call::deadline_passed("the transaction began"));
            }
            bound.at.map(|b| {
                (b.saturating_duration_since(Instant::now()) + call::SERVER_BACKSTOP).as_millis()
            })
        } else {
            None
        };
        if self.scope.settings.is_none() && remaining_ms.is_none() {
            return Ok(None);
        }
        let mut sql = String::with_capacity(256);
        sql.push_str(begin);
        sql.push(';');
        if let Some(settings) = &self.scope.settings {
            sql.push_str(settings);
            sql.push(';');
        }
        if let Some(ms) = remaining_ms {
            use std::fmt::Write as _;
            let _ = write!(
                sql,
                "SELECT set_config('statement_timeout', '{ms}', true), \
                 set_config('idle_in_transaction_session_timeout', '{ms}', true)"
            );
        }
        Ok(Some(sql))
    }

    /// Runs `sql` (simple protocol) under the contract; `BEGIN` carries the
    /// scope's settings, `COMMIT` is tracked.
    async fn batch(&self, sql: &str) -> QueryResult<()> {
        let begins = sql.starts_with("BEGIN");
        let ends = sql == "COMMIT" || sql == "ROLLBACK";
        let control = begins
            || ends
            || sql.starts_with("SAVEPOINT")
            || sql.starts_with("RELEASE")
            || sql.starts_with("ROLLBACK TO");
        if !control && self.wraps() {
            return self.batch_in_own_transaction(sql).await;
        }
        let rewritten = if begins { self.begin_sql(sql)? } else { None };
        let sql = rewritten.as_deref().unwrap_or(sql);
        if call::declares_read_only(sql) {
            self.calls.expect_read_only(true);
        }
        let sent = if self.scope.read_only {
            Sent::Safe
        } else {
            Sent::of_batch(!self.open.load(Ordering::Relaxed), sql)
        };
        let bound = if sql.starts_with("ROLLBACK") {
            self.bound().for_rollback()
        } else {
            self.bound()
        };
        let work = async {
            match &self.inner {
                Inner::Direct(conn) => {
                    let mut conn = conn;
                    SimpleAsyncConnection::batch_execute(&mut conn, sql).await
                }
                Inner::Unnamed(conn) => conn.batch_execute(sql).await,
            }
        };
        let watch = if control {
            None
        } else {
            self.watch(false, || Some(telemetry::shape_of_sql(sql)))
        };
        let result = telemetry::traced(
            watch,
            self.calls
                .start(sent, bound)
                .run(work, self.canceller())
                .boxed(),
        )
        .await;
        if begins
            && result.is_ok()
            && !self.open.load(Ordering::Relaxed)
            && !self.untraced.load(Ordering::Relaxed)
        {
            self.transaction
                .begin(&self.endpoint, self.scope.parent.as_ref());
        }
        if begins && result.is_ok() {
            self.open.store(true, Ordering::Relaxed);
        }
        if ends {
            self.transaction.end(sql, &result);
            // The server ended the transaction, or the connection is broken.
            self.open.store(false, Ordering::Relaxed);
            self.calls.expect_read_only(self.scope.read_only);
        }
        result
    }

    /// What a statement starting now means for the contract (a replica's
    /// connection never commits anything).
    fn sent<T: QueryFragment<Pg>>(&self, query: &T) -> Sent {
        let depth_zero = !self.open.load(Ordering::Relaxed) && !self.scope.read_only;
        Sent::of_statement(depth_zero, query)
    }

    /// A batch outside a transaction, with the scope's settings applied: one
    /// simple-protocol string (`BEGIN` with the settings, the batch,
    /// `COMMIT`), one round trip. A failing statement leaves the transaction
    /// aborted, and a `ROLLBACK` ends it.
    async fn batch_in_own_transaction(&self, sql: &str) -> QueryResult<()> {
        let begin = self
            .begin_sql("BEGIN")?
            .unwrap_or_else(|| "BEGIN".to_owned());
        let whole = format!("{begin};{sql};COMMIT");
        // Held through the ROLLBACK below too (see `own_transaction`).
        let _turn = self.own_transaction.lock().await;
        let work = async {
            match &self.inner {
                Inner::Direct(conn) => {
                    let mut conn = conn;
                    SimpleAsyncConnection::batch_execute(&mut conn, &whole).await
                }
                Inner::Unnamed(conn) => conn.batch_execute(&whole).await,
            }
        };
        // Whatever the batch holds may write: its outcome is unknown when the
        // connection fails before the answer.
        let watch = self.watch(false, || Some(telemetry::shape_of_sql(sql)));
        let result = telemetry::traced(
            watch,
            self.calls
                .start(Sent::AutocommitWrite, self.bound())
                .run(work, self.canceller())
                .boxed(),
        )
        .await;
        if result.is_err() && !self.calls.is_broken() {
            let rollback = async {
                match &self.inner {
                    Inner::Direct(conn) => {
                        let mut conn = conn;
                        SimpleAsyncConnection::batch_execute(&mut conn, "ROLLBACK").await
                    }
                    Inner::Unnamed(conn) => conn.batch_execute("ROLLBACK").await,
                }
            };
            if self
                .calls
                .start(Sent::Safe, self.bound().for_rollback())
                .run(rollback, || {})
                .await
                .is_err()
            {
                self.calls.break_off();
            }
        }
        result
    }

    /// Whether a statement outside a transaction must be wrapped in one:
    /// for the scope's settings to apply to it, and behind a pooler for the
    /// transaction-local timeouts (the server-side bound of every statement,
    /// since no session setting may be made there).
    fn wraps(&self) -> bool {
        !self.open.load(Ordering::Relaxed)
            && (self.scope.settings.is_some()
                || (self.scope.local_timeouts
                    && matches!(self.inner, Inner::Unnamed(_))
                    && !self.server_bounds_statements()))
    }

    /// Whether the server's own `statement_timeout` (`server_limit`) stops
    /// a statement as the transaction-local one would: no earlier than the
    /// call's bound (`DB_QUERY_TIMEOUT_MS`; a context's earlier deadline is
    /// kept by the client's timer and its cancel request, as in direct
    /// mode), and no later than that bound and the backstop.
    pub(super) fn server_bounds_statements(&self) -> bool {
        match (self.server_limit, self.scope.per_statement) {
            (Some(limit), Some(bound)) => limit >= bound && limit <= bound + call::SERVER_BACKSTOP,
            _ => false,
        }
    }

    /// Records the server's own `statement_timeout` (pooler mode, read at
    /// connect: see `server_limit`).
    pub(super) fn set_server_limit(&mut self, limit: Option<Duration>) {
        self.server_limit = limit;
    }

    /// The statement's future: rendered now, sent when first polled. `Err`
    /// when it could not be rendered (nothing was sent).
    fn load_future<'a, T>(&'a self, source: T) -> QueryResult<BoxFuture<'a, QueryResult<Rows>>>
    where
        T: AsQuery,
        T::Query: QueryFragment<Pg> + QueryId,
    {
        Ok(match &self.inner {
            Inner::Direct(conn) => {
                let mut conn: &'a AsyncPgConnection = conn;
                conn.load(source).map_ok(direct_rows).boxed()
            }
            Inner::Unnamed(conn) => {
                let rendered = conn.render(&source.as_query())?;
                async move { conn.load(Ok(rendered)).await.map(unnamed_rows) }.boxed()
            }
        })
    }

    /// `load_future` for a statement that returns a row count.
    fn execute_future<'a, T>(&'a self, source: T) -> QueryResult<BoxFuture<'a, QueryResult<usize>>>
    where
        T: QueryFragment<Pg> + QueryId,
    {
        Ok(match &self.inner {
            Inner::Direct(conn) => {
                let mut conn: &'a AsyncPgConnection = conn;
                conn.execute_returning_count(source)
            }
            Inner::Unnamed(conn) => {
                let rendered = conn.render(&source)?;
                conn.execute(Ok(rendered)).boxed()
            }
        })
    }

    /// A statement under the contract: bounded, dirty if dropped, its
    /// failure reported by what it means (`sent`).
    fn contract<'a, R: Send + 'a>(
        &'a self,
        sent: Sent,
        statement: QueryResult<BoxFuture<'a, QueryResult<R>>>,
    ) -> BoxFuture<'a, QueryResult<R>> {
        let statement = match statement {
            Ok(statement) => statement,
            Err(e) => return futures::future::ready(Err(e)).boxed(),
        };
        self.calls
            .start(sent, self.bound())
            .run(statement, self.canceller())
            .boxed()
    }

    fn load_query<'a, Q>(&'a self, query: Q) -> BoxFuture<'a, QueryResult<Rows>>
    where
        Q: AsQuery,
        Q::Query: QueryFragment<Pg> + QueryId,
    {
        let query = query.as_query();
        if let Inner::Direct(conn) = &self.inner
            && !self.wraps()
            && self.scope.comment.is_none()
        {
            return self.load_direct(conn, query);
        }
        // The span's query text and summary are the statement's, without
        // its comment.
        let watch = self.watch(true, || telemetry::shape_of(&query));
        let rows = match self.scope.comment.clone() {
            Some(comment) => self.load_untraced(Commented { query, comment }),
            None => self.load_untraced(query),
        };
        let Some(watch) = watch else {
            return rows;
        };
        // A server error can arrive with the first row rather than with the
        // answer to the statement: the watch lasts until the rows are read
        // (the stream holds it) and records an error met among them.
        let rows_watch = Arc::clone(&watch);
        telemetry::traced(Some(watch), rows)
            .map_ok(move |rows| {
                if rows_watch.counts_rows() {
                    rows.inspect(move |row| match row {
                        Ok(_) => rows_watch.row(),
                        Err(e) => rows_watch.fail(e),
                    })
                    .boxed()
                } else {
                    rows.inspect_err(move |e| rows_watch.fail(e)).boxed()
                }
            })
            .boxed()
    }

    /// The most common statement, a read on a direct connection outside
    /// any wrapping, as one future: diesel-async's, under the contract and
    /// the watch, with no boxed layer between them (each costs an
    /// allocation and a copy of the future per statement).
    fn load_direct<'a, Q>(
        &'a self,
        conn: &'a AsyncPgConnection,
        query: Q,
    ) -> BoxFuture<'a, QueryResult<Rows>>
    where
        Q: diesel::query_builder::Query + QueryFragment<Pg> + QueryId,
    {
        let watch = self.owned_watch(true, || telemetry::shape_of(&query));
        let sent = self.sent(&query);
        let mut shared = conn;
        let statement = shared.load(query);
        let run = self
            .calls
            .start(sent, self.bound())
            .run(statement, self.canceller());
        async move {
            let Some(watch) = watch else {
                return run.await.map(direct_rows);
            };
            let result = match &watch.span {
                Some(span) => tracing::Instrument::instrument(run, span.clone()).await,
                None => run.await,
            };
            match result {
                // A server error can arrive with the first row rather than
                // with the answer to the statement: the watch lasts until
                // the rows are read (the stream holds it) and records an
                // error met among them.
                Ok(rows) => Ok(rows
                    .map(move |row| match row {
                        Ok(row) => {
                            watch.row();
                            Ok(PgConnRow::Direct(row))
                        }
                        Err(e) => {
                            watch.fail(&e);
                            Err(e)
                        }
                    })
                    .boxed()),
                Err(e) => {
                    watch.fail(&e);
                    Err(e)
                }
            }
        }
        .boxed()
    }

    fn load_untraced<'a, Q>(&'a self, query: Q) -> BoxFuture<'a, QueryResult<Rows>>
    where
        Q: diesel::query_builder::Query + QueryFragment<Pg> + QueryId,
    {
        let sent = self.sent(&query);
        if !self.wraps() {
            return self.contract(sent, self.load_future(query));
        }
        match &self.inner {
            Inner::Unnamed(conn) => {
                let rendered = match conn.render(&query) {
                    Ok(r) => r,
                    Err(e) => return futures::future::ready(Err(e)).boxed(),
                };
                self.in_own_transaction(sent, move |begin: String, turn: Turn<'a>| async move {
                    // Held to the end: the flight is answered before the
                    // next statement's goes out (see `own_transaction`).
                    let _turn = turn;
                    conn.load_in_transaction(&begin, rendered)
                        .await
                        .map(unnamed_rows)
                })
            }
            Inner::Direct(conn) => {
                let key = self.cache_key(&query);
                let mut shared: &'a AsyncPgConnection = conn;
                let statement = shared.load(query).map_ok(direct_rows);
                self.direct_in_own_transaction(conn, sent, key, async move {
                    let rows = statement.await?;
                    let rows: Vec<QueryResult<PgConnRow>> = rows.collect().await;
                    Ok(futures::stream::iter(rows).boxed())
                })
            }
        }
    }

    fn execute_query<'a, T>(&'a self, source: T) -> BoxFuture<'a, QueryResult<usize>>
    where
        T: QueryFragment<Pg> + QueryId,
    {
        let watch = self.watch(false, || telemetry::shape_of(&source));
        let count = match self.scope.comment.clone() {
            Some(comment) => self.execute_untraced(Commented {
                query: source,
                comment,
            }),
            None => self.execute_untraced(source),
        };
        telemetry::traced(watch, count)
    }

    fn execute_untraced<'a, T>(&'a self, source: T) -> BoxFuture<'a, QueryResult<usize>>
    where
        T: QueryFragment<Pg> + QueryId,
    {
        let sent = self.sent(&source);
        if !self.wraps() {
            return self.contract(sent, self.execute_future(source));
        }
        match &self.inner {
            Inner::Unnamed(conn) => {
                let rendered = match conn.render(&source) {
                    Ok(r) => r,
                    Err(e) => return futures::future::ready(Err(e)).boxed(),
                };
                self.in_own_transaction(sent, move |begin: String, turn: Turn<'a>| async move {
                    let _turn = turn;
                    conn.execute_in_transaction(&begin, rendered).await
                })
            }
            Inner::Direct(conn) => {
                let key = self.cache_key(&source);
                let mut shared: &'a AsyncPgConnection = conn;
                let statement = shared.execute_returning_count(source);
                self.direct_in_own_transaction(conn, sent, key, statement)
            }
        }
    }

    /// `in_own_transaction` on a direct connection, for `statement` cached
    /// under `key`: sent in one flight with its `BEGIN` and `COMMIT` once it
    /// is prepared here (`direct_in_transaction`).
    fn direct_in_own_transaction<'a, R: Send + 'a>(
        &'a self,
        conn: &'a AsyncPgConnection,
        sent: Sent,
        key: Option<CacheKey>,
        statement: impl Future<Output = QueryResult<R>> + Send + 'a,
    ) -> BoxFuture<'a, QueryResult<R>> {
        let prepared = self.is_prepared(key);
        self.in_own_transaction(sent, move |begin: String, turn: Turn<'a>| async move {
            let flight = Flight {
                begin: &begin,
                prepared,
                sent,
                turn,
            };
            let value = direct_in_transaction(conn, &self.calls, flight, statement).await?;
            self.ran_prepared(key);
            Ok(value)
        })
    }

    /// A statement outside a transaction, run in one of its own (`work`
    /// gets the `BEGIN` with the scope's settings, and the connection's turn
    /// to send one, see `own_transaction`): one flight under the contract,
    /// whose failure means what the statement alone would mean (a read's
    /// lost `COMMIT` committed nothing).
    fn in_own_transaction<'a, R: Send + 'a, F>(
        &'a self,
        sent: Sent,
        work: impl FnOnce(String, Turn<'a>) -> F + Send + 'a,
    ) -> BoxFuture<'a, QueryResult<R>>
    where
        F: Future<Output = QueryResult<R>> + Send + 'a,
    {
        let begin = match self.begin_sql("BEGIN") {
            Ok(sql) => sql.unwrap_or_else(|| "BEGIN".to_owned()),
            Err(e) => return futures::future::ready(Err(e)).boxed(),
        };
        let turn = &self.own_transaction;
        let in_turn = async move {
            let turn = turn.lock().await;
            work(begin, turn).await
        };
        self.calls
            .start(sent, self.bound())
            .run(in_turn, self.canceller())
            .boxed()
    }
}

/// A connection's turn to send a statement wrapped in a transaction of its
/// own (`PgConn::own_transaction`).
type Turn<'a> = tokio::sync::MutexGuard<'a, ()>;

/// What `direct_in_transaction` sends around its statement.
struct Flight<'a, 'b> {
    /// `BEGIN` with the scope's settings.
    begin: &'b str,
    /// The statement is prepared on the connection (`PgConn::prepared`).
    prepared: bool,
    /// What the statement is, for the meaning of a failure.
    sent: Sent,
    /// Held until the `COMMIT` is on its way.
    turn: Turn<'a>,
}

/// `statement` between `begin` and `COMMIT` on a direct connection: `BEGIN`
/// goes out together with the statement (it was rendered but not sent: it
/// goes out when first polled, after `BEGIN`).
///
/// When the statement is `prepared` on this connection, diesel-async sends
/// it on its first poll, so `COMMIT` goes out in the same flight: one round
/// trip, like the statement alone (a failed statement aborts the
/// transaction, and the server answers the `COMMIT` with a rollback). The
/// first poll runs outside Tokio's cooperative budget, whose exhaustion
/// could hold the statement back behind its `COMMIT`; once the three are
/// queued the turn passes on, so statements pipelined on the connection
/// share the flight. Otherwise diesel-async first prepares the statement in
/// a round trip of its own, and a `COMMIT` sent at once would reach the
/// server before the statement, which would then run outside the
/// transaction, without the context's settings: `COMMIT` then waits for the
/// statement's answer, and `ROLLBACK` follows a failure.
///
/// Answers come back in the order of the requests, so a `COMMIT` answered
/// before the statement means it overtook it: never expected, it is checked
/// all the same and reported as what it means.
async fn direct_in_transaction<R>(
    conn: &AsyncPgConnection,
    calls: &Calls,
    flight: Flight<'_, '_>,
    statement: impl Future<Output = QueryResult<R>>,
) -> QueryResult<R> {
    let mut for_begin = conn;
    let mut for_end = conn;
    let Flight {
        begin,
        prepared,
        sent,
        turn,
    } = flight;
    if prepared {
        let answered = AtomicBool::new(false);
        let statement = async {
            let result = statement.await;
            answered.store(true, Ordering::Relaxed);
            result
        };
        let commit = async {
            let committed = SimpleAsyncConnection::batch_execute(&mut for_end, "COMMIT").await;
            (committed, answered.load(Ordering::Relaxed))
        };
        let mut all = std::pin::pin!(tokio::task::coop::unconstrained(async {
            futures::join!(
                SimpleAsyncConnection::batch_execute(&mut for_begin, begin),
                statement,
                commit
            )
        }));
        let first = futures::poll!(all.as_mut());
        drop(turn);
        let (begun, result, (committed, in_order)) = match first {
            std::task::Poll::Ready(answers) => answers,
            std::task::Poll::Pending => all.await,
        };
        if !in_order {
            calls.break_off();
            return Err(call::ran_outside_its_transaction(sent));
        }
        return begun
            .and(result)
            .and_then(|value| committed.map(|()| value));
    }
    let (begun, result) = futures::join!(
        SimpleAsyncConnection::batch_execute(&mut for_begin, begin),
        statement
    );
    let outcome = match begun.and(result) {
        Ok(value) => SimpleAsyncConnection::batch_execute(&mut for_end, "COMMIT")
            .await
            .map(|()| value),
        Err(e) => {
            // A failed ROLLBACK leaves the connection broken (the contract
            // closes it): the statement's error is the one the caller needs.
            let _ = SimpleAsyncConnection::batch_execute(&mut for_end, "ROLLBACK").await;
            Err(e)
        }
    };
    drop(turn);
    outcome
}

impl From<AsyncPgConnection> for PgConn {
    fn from(conn: AsyncPgConnection) -> Self {
        Self::direct(conn, Scope::default(), None)
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
        self.batch(query).await
    }
}

impl SimpleAsyncConnection for &PgConn {
    async fn batch_execute(&mut self, query: &str) -> QueryResult<()> {
        self.batch(query).await
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
        let this: &'conn PgConn = self;
        this.load_query(source)
    }

    fn execute_returning_count<'conn, 'query, T>(
        &'conn mut self,
        source: T,
    ) -> Self::ExecuteFuture<'conn, 'query>
    where
        T: QueryFragment<Pg> + QueryId + 'query,
    {
        let this: &'conn PgConn = self;
        this.execute_query(source)
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
        this.load_query(source)
    }

    fn execute_returning_count<'conn, 'query, T>(
        &'conn mut self,
        source: T,
    ) -> Self::ExecuteFuture<'conn, 'query>
    where
        T: QueryFragment<Pg> + QueryId + 'query,
    {
        let this: &'a PgConn = self;
        this.execute_query(source)
    }
}

impl AsyncConnection for PgConn {
    type TransactionManager = AnsiTransactionManager;

    /// A connection set up as `db::connect` sets one up with the defaults
    /// of `Config::new(database_url)`: TLS as the URL's `sslmode` says,
    /// keepalives, the connect timeout, every statement bounded by the
    /// default `DB_QUERY_TIMEOUT_MS`, direct mode. (Nothing is read from the
    /// environment: a service builds a `Config` and a `Db`.)
    async fn establish(database_url: &str) -> diesel::ConnectionResult<Self> {
        let config = super::Config::new(database_url);
        super::connection::ConnectionSettings::from_config(&config)
            .establish(database_url)
            .await
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
        // A new cache starts empty.
        let prepared = self.prepared.get_mut().unwrap_or_else(|p| p.into_inner());
        prepared.caching = matches!(size, CacheSize::Unbounded);
        prepared.keys.clear();
        match &mut self.inner {
            Inner::Direct(conn) => conn.set_prepared_statement_cache_size(size),
            // Nothing is prepared by name: there is no cache.
            Inner::Unnamed(_) => {}
        }
    }
}

impl PoolableConnection for PgConn {
    fn is_broken(&mut self) -> bool {
        if self.calls.is_broken() {
            return true;
        }
        let unnamed_broken = match &mut self.inner {
            Inner::Direct(conn) => return PoolableConnection::is_broken(conn),
            Inner::Unnamed(conn) => conn.is_broken(),
        };
        unnamed_broken || AnsiTransactionManager::is_broken_transaction_manager(self)
    }
}

/// A result row of either path.
pub enum PgConnRow {
    /// From the direct path.
    Direct(DirectRow),
    /// From the pooler-mode path.
    Unnamed(UnnamedRow),
}

/// A column of a `PgConnRow`.
pub enum PgConnField<'a> {
    /// From the direct path.
    Direct(<DirectRow as Row<'a, Pg>>::Field<'a>),
    /// From the pooler-mode path.
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
