//! Spans in OpenTelemetry's database client conventions, through `tracing`
//! (the library imposes no exporter: a service's `tracing-opentelemetry`
//! layer turns them into OpenTelemetry spans, `otel.kind` and `otel.name`
//! included).
//!
//! Diesel's `Instrumentation` events carry no id to pair pipelined queries
//! and render bind values, so the crate's own connection type makes the
//! spans. What a statement's attributes cost to build (rendering its SQL,
//! finding its operation and table) is paid once per statement shape: the
//! `Shape` is cached by the query's static type, as Diesel's prepared
//! statement cache keys it, or else by its SQL text. With no subscriber
//! interested nothing is rendered or looked up: every entry point checks
//! `span_enabled!` first.
//!
//! Nothing here ever sees a bind value: the SQL is rendered with
//! placeholders (`$1`), and errors are recorded by SQLSTATE and class,
//! never by message (a server message can quote a value: "invalid input
//! syntax for type uuid: ...").
//!
//! One file past 600 lines on purpose: every span name and attribute of the
//! conventions is written here and nowhere else, for both backends, so that
//! the README's table has one place to be checked against.
//!
//! One file, though long: the span of a statement, the per-shape cache of its
//! costly attributes and the recording of its outcome are one mechanism that
//! the connection calls at three points; apart, each would need the others'
//! internals.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use futures::future::{BoxFuture, FutureExt};

use diesel::pg::{Pg, PgQueryBuilder};
use diesel::query_builder::{QueryBuilder, QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use tracing::{Level, Span};

/// The `tracing` target of every span the crate makes.
pub const TARGET: &str = "database";

/// Where a connection's statements go: the attributes every span of it shares.
#[derive(Debug, Default)]
pub(crate) struct Endpoint {
    pub(crate) system: &'static str,
    pub(crate) namespace: Option<Box<str>>,
    pub(crate) address: Option<Box<str>>,
    pub(crate) port: Option<u16>,
    pub(crate) pooler: bool,
    /// Count each statement's rows into its span (`DB_TRACE_RETURNED_ROWS`).
    pub(crate) returned_rows: bool,
    /// The metrics of the pool the connection belongs to (`primary`,
    /// `replica-1`, ..., `system`, `sqlite`; `direct` outside any pool).
    pub(crate) meter: Arc<super::metrics::Meter>,
}

impl Endpoint {
    /// A PostgreSQL server as a parsed URL names it (the first host when it
    /// names several: which one answered is not known without asking).
    pub(crate) fn postgres(
        config: &tokio_postgres::Config,
        pooler: bool,
        returned_rows: bool,
        meter: Arc<super::metrics::Meter>,
    ) -> Self {
        use tokio_postgres::config::Host;
        let address = config.get_hosts().first().map(|h| match h {
            Host::Tcp(name) => name.clone().into_boxed_str(),
            #[cfg(unix)]
            Host::Unix(path) => path.to_string_lossy().into_owned().into_boxed_str(),
        });
        let address = address.or_else(|| {
            config
                .get_hostaddrs()
                .first()
                .map(|a| a.to_string().into_boxed_str())
        });
        let port = config.get_ports().first().copied().or(Some(5432));
        // The convention's PostgreSQL namespace is the schema qualified by
        // the database. The crate's tables live in `public`, and asking the
        // server for its search_path would cost a round trip.
        let namespace = config
            .get_dbname()
            .or(config.get_user())
            .map(|db| format!("{db}.public").into_boxed_str());
        Endpoint {
            system: "postgresql",
            namespace,
            address,
            port,
            pooler,
            returned_rows,
            meter,
        }
    }
}

/// What a statement's spans say about it, computed once per shape.
#[derive(Debug)]
pub(crate) struct Shape {
    /// Unique in the process: the key of the shape's metric handles.
    pub(crate) id: u64,
    /// The parameterised SQL (`$1` where a value goes).
    pub(crate) text: Box<str>,
    pub(crate) operation: Option<Box<str>>,
    pub(crate) collection: Option<Box<str>>,
    pub(crate) summary: Box<str>,
    /// How many statements it holds when more than one (a batch sent as
    /// one simple-protocol string): `db.operation.batch.size`.
    pub(crate) batch_size: Option<u64>,
    /// Its labels on `db.client.operation.duration`.
    pub(crate) labels: Vec<::metrics::Label>,
}

impl Shape {
    fn of(sql: &str) -> Shape {
        let (operation, collections) = summarise(sql);
        let mut summary = String::new();
        if let Some(op) = &operation {
            summary.push_str(op);
        }
        for c in &collections {
            // The convention bounds the summary (255 characters).
            if summary.len() + c.len() + 1 > 255 {
                break;
            }
            summary.push(' ');
            summary.push_str(c);
        }
        let labels = super::metrics::shape_labels(
            operation.as_deref(),
            collections.first().map(String::as_str),
        );
        // Paid once per statement text: shapes are cached.
        let statements = crate::split::split_statements(sql).len() as u64;
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Shape {
            batch_size: (statements > 1).then_some(statements),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            labels,
            text: sql.into(),
            operation: operation.map(Into::into),
            collection: collections.into_iter().next().map(Into::into),
            summary: summary.into(),
        }
    }

    /// `{db.query.summary}` when there is one, else the system's name.
    pub(crate) fn span_name<'a>(&'a self, endpoint: &'a Endpoint) -> &'a str {
        if self.summary.is_empty() {
            endpoint.system
        } else {
            &self.summary
        }
    }
}

/// Shapes by static query type (what Diesel's statement cache keys by).
static BY_TYPE: LazyLock<RwLock<HashMap<TypeId, Arc<Shape>, IdHash>>> =
    LazyLock::new(Default::default);

/// A hasher for keys that are already well-spread 64-bit values (a
/// `TypeId`, a shape's id): SipHash's work per statement buys nothing there.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// See `IdHash`.
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not the keys this is for; correct all the same (FNV-1a).
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Sequential ids and TypeIds alike: multiply to spread the high bits
        // the table's index uses.
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
/// Shapes by SQL text, for queries without a static type (`sql_query`,
/// `IN` lists of varying length). Bounded: a service that builds SQL text
/// from values (never the crate's own queries) would otherwise grow it.
static BY_TEXT: LazyLock<RwLock<HashMap<Box<str>, Arc<Shape>>>> = LazyLock::new(Default::default);
const TEXT_CACHE_LIMIT: usize = 2048;

/// Whether a statement span would be recorded by anybody now.
pub(crate) fn enabled() -> bool {
    tracing::span_enabled!(target: TARGET, Level::INFO)
}

/// The shape of a Diesel query: from the cache, or rendered once.
pub(crate) fn shape_of<T: QueryFragment<Pg> + QueryId>(query: &T) -> Option<Arc<Shape>> {
    // A type is in the cache only if its SQL was safe to cache when it was
    // put there (a type with a static id renders one SQL text): the walk of
    // the query that says so is paid on a miss only.
    if let Some(id) = T::query_id()
        && let Some(shape) = BY_TYPE.read().ok()?.get(&id)
    {
        return Some(Arc::clone(shape));
    }
    let cacheable = query.is_safe_to_cache_prepared(&Pg).unwrap_or(false);
    let id = T::query_id().filter(|_| cacheable);
    let mut builder = PgQueryBuilder::default();
    query.to_sql(&mut builder, &Pg).ok()?;
    let sql = builder.finish();
    match id {
        Some(id) => {
            let shape = Arc::new(Shape::of(&sql));
            if let Ok(mut map) = BY_TYPE.write() {
                map.insert(id, Arc::clone(&shape));
            }
            Some(shape)
        }
        None => Some(shape_of_sql(&sql)),
    }
}

/// The shape of SQL text the crate received as text.
pub(crate) fn shape_of_sql(sql: &str) -> Arc<Shape> {
    if let Some(shape) = BY_TEXT.read().ok().and_then(|m| m.get(sql).cloned()) {
        return shape;
    }
    let shape = Arc::new(Shape::of(sql));
    if let Ok(mut map) = BY_TEXT.write() {
        if map.len() >= TEXT_CACHE_LIMIT {
            map.clear();
        }
        map.insert(sql.into(), Arc::clone(&shape));
    }
    shape
}

/// The span of one statement (kind CLIENT), under `parent` when given,
/// else under the current span. Call only when `enabled()`.
pub(crate) fn statement_span(
    endpoint: &Endpoint,
    shape: &Shape,
    route: super::pg_conn::Route,
    parent: Option<&Span>,
) -> Span {
    macro_rules! make {
        ($($parent:tt)*) => {
            tracing::info_span!(
                target: TARGET,
                $($parent)*
                "db.query",
                otel.kind = "client",
                otel.name = shape.span_name(endpoint),
                otel.status_code = tracing::field::Empty,
                db.system.name = endpoint.system,
                db.namespace = endpoint.namespace.as_deref(),
                db.collection.name = shape.collection.as_deref(),
                db.operation.name = shape.operation.as_deref(),
                db.query.summary = &*shape.summary,
                db.query.text = &*shape.text,
                db.operation.batch.size = shape.batch_size,
                db.response.status_code = tracing::field::Empty,
                db.response.returned_rows = tracing::field::Empty,
                error.type = tracing::field::Empty,
                server.address = endpoint.address.as_deref(),
                server.port = endpoint.port,
                database.pooler_mode = endpoint.pooler,
                database.route = route.target(),
                database.route.reason = route.reason(),
            )
        };
    }
    match parent {
        Some(parent) => make!(parent: parent,),
        None => make!(),
    }
}

/// The span of a transaction (kind INTERNAL): its statements are children.
pub(crate) fn transaction_span(endpoint: &Endpoint, parent: Option<&Span>) -> Span {
    macro_rules! make {
        ($($parent:tt)*) => {
            tracing::info_span!(
                target: TARGET,
                $($parent)*
                "db.transaction",
                otel.kind = "internal",
                otel.name = "transaction",
                otel.status_code = tracing::field::Empty,
                db.system.name = endpoint.system,
                db.namespace = endpoint.namespace.as_deref(),
                database.transaction.outcome = tracing::field::Empty,
                db.response.status_code = tracing::field::Empty,
                error.type = tracing::field::Empty,
            )
        };
    }
    match parent {
        Some(parent) => make!(parent: parent,),
        None => make!(),
    }
}

/// The span of a connection's open transaction, when a subscriber wanted
/// one: the parent of its statements' spans from `BEGIN` to the end.
#[derive(Default)]
pub(crate) struct TransactionSpan(Mutex<Option<Span>>);

impl TransactionSpan {
    /// The open transaction's span, if any.
    pub(crate) fn current(&self) -> Option<Span> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `BEGIN` went through at depth zero.
    pub(crate) fn begin(&self, endpoint: &Endpoint, parent: Option<&Span>) {
        if !enabled() {
            return;
        }
        let span = transaction_span(endpoint, parent);
        if !span.is_disabled() {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(span);
        }
    }

    /// `COMMIT` or `ROLLBACK` (`sql`) answered or failed: the span closes.
    pub(crate) fn end(&self, sql: &str, result: &diesel::QueryResult<()>) {
        let span = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(span) = span {
            let outcome = if sql == "COMMIT" {
                "commit"
            } else {
                "rollback"
            };
            span.record("database.transaction.outcome", outcome);
            record_result(&span, result);
        }
    }
}

/// `statement` under its watch (inside its span when a subscriber wanted
/// one), its failure recorded there.
pub(crate) fn traced<'a, R: Send + 'a>(
    watch: Option<Arc<Watch>>,
    statement: BoxFuture<'a, diesel::QueryResult<R>>,
) -> BoxFuture<'a, diesel::QueryResult<R>> {
    let Some(watch) = watch else {
        return statement;
    };
    async move {
        let result = match &watch.span {
            Some(span) => tracing::Instrument::instrument(statement, span.clone()).await,
            None => statement.await,
        };
        if let Err(e) = &result {
            watch.fail(e);
        }
        result
    }
    .boxed()
}

/// The span of waiting for a pooled connection (kind INTERNAL).
pub(crate) fn pool_wait_span(system: &'static str, pool: &str, parent: Option<&Span>) -> Span {
    macro_rules! make {
        ($($parent:tt)*) => {
            tracing::info_span!(
                target: TARGET,
                $($parent)*
                "db.pool.wait",
                otel.kind = "internal",
                otel.name = "pool wait",
                otel.status_code = tracing::field::Empty,
                db.system.name = system,
                db.client.connection.pool.name = pool,
                error.type = tracing::field::Empty,
            )
        };
    }
    match parent {
        Some(parent) => make!(parent: parent,),
        None => make!(),
    }
}

/// Marks `span` failed with the class `error_type`.
pub(crate) fn record_failure(span: &Span, error_type: &'static str) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", error_type);
}

/// Spans for a SQLite connection, made from Diesel's events: a SQLite
/// connection runs one statement at a time on its blocking thread, so a
/// start and the next finish are the same statement (the pairing that
/// pipelining breaks on PostgreSQL).
pub(crate) struct SqliteSpans {
    endpoint: Endpoint,
    statement: Option<Watch>,
    transaction: Option<Span>,
}

impl SqliteSpans {
    pub(crate) fn new(path: Option<&str>) -> Self {
        SqliteSpans {
            endpoint: Endpoint {
                system: "sqlite",
                namespace: path.map(Into::into),
                meter: super::metrics::Meter::new("sqlite", "sqlite"),
                ..Endpoint::default()
            },
            statement: None,
            transaction: None,
        }
    }
}

/// Statements that only delimit a transaction (its span stands for them).
fn is_control(sql: &str) -> bool {
    ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END"]
        .iter()
        .any(|k| sql.len() >= k.len() && sql[..k.len()].eq_ignore_ascii_case(k))
}

impl diesel::connection::Instrumentation for SqliteSpans {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        use diesel::connection::InstrumentationEvent as E;
        let tracing = enabled();
        if !tracing {
            self.transaction = None;
        }
        match event {
            E::BeginTransaction { depth, .. } if tracing && depth.get() == 1 => {
                let span = transaction_span(&self.endpoint, None);
                self.transaction = (!span.is_disabled()).then_some(span);
            }
            E::CommitTransaction { depth, .. } | E::RollbackTransaction { depth, .. }
                if depth.get() == 1 =>
            {
                if let Some(span) = self.transaction.take() {
                    let outcome = if matches!(event, E::CommitTransaction { .. }) {
                        "commit"
                    } else {
                        "rollback"
                    };
                    span.record("database.transaction.outcome", outcome);
                }
            }
            E::StartQuery { query, .. } => {
                // Display is the SQL, then " -- binds: [...]" for a query
                // with binds: only the part before is kept, never stored whole.
                let text = query.to_string();
                let sql = text.split(" -- binds: ").next().unwrap_or("").trim();
                if is_control(sql) {
                    return;
                }
                let shape = shape_of_sql(sql);
                let span = tracing
                    .then(|| {
                        statement_span(
                            &self.endpoint,
                            &shape,
                            super::pg_conn::Route::Requested,
                            self.transaction.as_ref(),
                        )
                    })
                    .filter(|span| !span.is_disabled());
                let timer = super::metrics::Timer::start(&self.endpoint, shape);
                self.statement = Some(Watch::new(span, timer));
            }
            E::FinishQuery { error, .. } => {
                if let Some(watch) = self.statement.take()
                    && let Some(error) = error
                {
                    if let Some(span) = &watch.span {
                        record_error_of(self.endpoint.system, span, error);
                    }
                    watch.timer.fail(error_class(error));
                }
            }
            _ => {}
        }
    }
}

/// What watches one statement: its span (when a subscriber wants it) and
/// its duration metric. Shared by the statement's future and its row
/// stream; the duration is recorded when the last of them lets go.
pub(crate) struct Watch {
    pub(crate) span: Option<Span>,
    timer: super::metrics::Timer,
    /// Rows read so far, when the span reports them (`returned_rows`).
    rows: Option<std::sync::atomic::AtomicU64>,
}

impl Watch {
    pub(crate) fn new(span: Option<Span>, timer: super::metrics::Timer) -> Self {
        Watch {
            span,
            timer,
            rows: None,
        }
    }

    /// Counts the statement's rows into its span when it ends
    /// (`db.response.returned_rows`); without a span, nothing is counted.
    pub(crate) fn counting_rows(mut self) -> Self {
        if self.span.is_some() {
            self.rows = Some(std::sync::atomic::AtomicU64::new(0));
        }
        self
    }

    /// Whether `row` has anything to count.
    pub(crate) fn counts_rows(&self) -> bool {
        self.rows.is_some()
    }

    /// One more row was read.
    pub(crate) fn row(&self) {
        if let Some(rows) = &self.rows {
            rows.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The statement failed with `error`.
    pub(crate) fn fail(&self, error: &DieselError) {
        if let Some(span) = &self.span {
            record_error(span, error);
        }
        self.timer.fail(error_class(error));
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let (Some(span), Some(rows)) = (&self.span, &self.rows) {
            span.record(
                "db.response.returned_rows",
                rows.load(std::sync::atomic::Ordering::Relaxed),
            );
        }
    }
}

/// Marks `span` failed with `error`: SQLSTATE and class, never the message.
pub(crate) fn record_error(span: &Span, error: &DieselError) {
    record_error_of("postgresql", span, error)
}

/// `record_error` for a system: SQLSTATEs are PostgreSQL's only (SQLite's
/// errors are recorded by class).
fn record_error_of(system: &str, span: &Span, error: &DieselError) {
    let code = if system == "postgresql" {
        sqlstate(error)
    } else {
        None
    };
    span.record("otel.status_code", "ERROR");
    if let Some(code) = code {
        span.record("db.response.status_code", code);
    }
    span.record("error.type", error_type(error, code));
}

/// The class of a failed statement, for logs: SQLSTATE or class, never
/// the server's message (it can quote a bind value).
pub(crate) fn error_class(error: &DieselError) -> &'static str {
    error_type(error, sqlstate(error))
}

/// Records a failure on `span` when `result` is one.
pub(crate) fn record_result<R>(span: &Span, result: &diesel::QueryResult<R>) {
    if let Err(e) = result {
        record_error(span, e);
    }
}

/// The SQLSTATE of a server error, where Diesel's error kind determines it
/// (Diesel's error carries the kind, not the code).
fn sqlstate(error: &DieselError) -> Option<&'static str> {
    let DieselError::DatabaseError(kind, _) = error else {
        return None;
    };
    Some(match kind {
        DatabaseErrorKind::UniqueViolation => "23505",
        DatabaseErrorKind::ForeignKeyViolation => "23503",
        DatabaseErrorKind::RestrictViolation => "23001",
        DatabaseErrorKind::ExclusionViolation => "23P01",
        DatabaseErrorKind::NotNullViolation => "23502",
        DatabaseErrorKind::CheckViolation => "23514",
        DatabaseErrorKind::SerializationFailure => "40001",
        DatabaseErrorKind::ReadOnlyTransaction => "25006",
        _ => return None,
    })
}

/// `error.type`: the SQLSTATE when known, else a low-cardinality class.
fn error_type(error: &DieselError, code: Option<&'static str>) -> &'static str {
    if let Some(code) = code {
        return code;
    }
    match error {
        DieselError::DatabaseError(kind, info) => {
            let message = info.message();
            if message.starts_with(super::call::DEADLINE_PASSED) {
                "timeout"
            } else if message.starts_with(super::call::OUTCOME_UNKNOWN) {
                "outcome_unknown"
            } else {
                match kind {
                    DatabaseErrorKind::ClosedConnection => "connection_closed",
                    DatabaseErrorKind::UnableToSendCommand => "unable_to_send",
                    DatabaseErrorKind::UniqueViolation => "unique_violation",
                    DatabaseErrorKind::ForeignKeyViolation => "foreign_key_violation",
                    DatabaseErrorKind::NotNullViolation => "not_null_violation",
                    DatabaseErrorKind::CheckViolation => "check_violation",
                    _ => "database_error",
                }
            }
        }
        DieselError::DeserializationError(_) => "deserialization",
        DieselError::SerializationError(_) => "serialization",
        DieselError::NotFound => "not_found",
        DieselError::RollbackTransaction => "rollback",
        DieselError::BrokenTransactionManager => "broken_transaction",
        _ => "_OTHER",
    }
}

/// The operation (first keyword) and the tables a statement names, in order
/// of appearance: after FROM, JOIN, INTO, UPDATE and TABLE. A scan, not a
/// parser: it only has to be right for the SQL Diesel and the crate write.
fn summarise(sql: &str) -> (Option<String>, Vec<String>) {
    let mut operation = None;
    let mut collections: Vec<String> = Vec::new();
    let mut expect_table = false;
    for token in tokens(sql) {
        let upper = token.to_ascii_uppercase();
        if operation.is_none() {
            if token.chars().all(|c| c.is_ascii_alphabetic()) {
                operation = Some(upper.clone());
            } else {
                continue;
            }
            if upper == "UPDATE" {
                expect_table = true;
            }
            continue;
        }
        if expect_table {
            if token == "(" || upper == "ONLY" || upper == "LATERAL" {
                continue;
            }
            expect_table = false;
            if matches!(upper.as_str(), "SELECT" | "VALUES" | "WITH") {
                continue;
            }
            let name: String = token.chars().filter(|&c| c != '"').collect();
            if !name.is_empty() && !collections.contains(&name) {
                collections.push(name);
            }
            continue;
        }
        expect_table = matches!(upper.as_str(), "FROM" | "JOIN" | "INTO" | "TABLE");
    }
    (operation, collections)
}

/// Words of SQL: quoted identifiers whole (with a schema prefix), string
/// literals skipped, punctuation splitting.
fn tokens(sql: &str) -> impl Iterator<Item = &str> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let c = bytes[i];
            if c == b'\'' {
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                continue;
            }
            if c == b'(' {
                i += 1;
                return Some("(");
            }
            if c == b'"' || c.is_ascii_alphanumeric() || c == b'_' {
                let start = i;
                while i < bytes.len() {
                    let c = bytes[i];
                    if c == b'"' {
                        i += 1;
                        while i < bytes.len() && bytes[i] != b'"' {
                            i += 1;
                        }
                        i += 1;
                    } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'$' {
                        i += 1;
                    } else {
                        break;
                    }
                }
                return Some(&sql[start..i.min(sql.len())]);
            }
            i += 1;
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_the_sql_diesel_writes() {
        let s = Shape::of(
            r#"SELECT "users"."id", "users"."email" FROM "users" WHERE ("users"."id" = $1) LIMIT $2"#,
        );
        assert_eq!(s.operation.as_deref(), Some("SELECT"));
        assert_eq!(s.collection.as_deref(), Some("users"));
        assert_eq!(&*s.summary, "SELECT users");
        let s = Shape::of(
            r#"INSERT INTO "todos" ("id", "title") VALUES ($1, $2) RETURNING "todos"."id""#,
        );
        assert_eq!(&*s.summary, "INSERT todos");
        let s = Shape::of(r#"UPDATE "projects" SET "name" = $1 WHERE ("projects"."id" = $2)"#);
        assert_eq!(&*s.summary, "UPDATE projects");
        let s = Shape::of(
            r#"SELECT "a"."x" FROM ("a" INNER JOIN "b" ON ("b"."id" = "a"."b_id")) WHERE 'FROM x' = $1"#,
        );
        assert_eq!(&*s.summary, "SELECT a b");
        let s = Shape::of(r#"DELETE FROM "public"."sessions" WHERE 1 = 1"#);
        assert_eq!(s.collection.as_deref(), Some("public.sessions"));
        let s = Shape::of("SELECT 1");
        assert_eq!(&*s.summary, "SELECT");
        assert_eq!(s.collection, None);
    }
}
