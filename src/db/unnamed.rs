//! The unnamed-statement connection: what `DB_POOLER=transaction` runs on.
//!
//! A transaction-mode pooler (PgBouncer, Supavisor) hands each transaction,
//! and each statement outside one, to whichever server connection is free.
//! A named prepared statement made on one server connection is then missing
//! (or, worse, another client's) on the next, and diesel-async always
//! prepares named statements. What survives such a pooler is the unnamed
//! statement with Parse, Bind, Describe, Execute and Sync in one message
//! (tokio-postgres `query_typed_raw`), which is all this connection sends,
//! besides simple-protocol `BEGIN`/`COMMIT`/`SAVEPOINT` and batches.
//!
//! Types. Diesel binds custom types (the schema's enums) by name and asks
//! the connection for their OIDs; tokio-postgres names the type of every
//! result column that is not built in through named statements of its own
//! (`typeinfo`). Both are answered at connect time, inside one transaction
//! (which a pooler keeps on one server connection): the catalog's
//! non-built-in types are read once, a row of each type is selected so
//! tokio-postgres caches them, and the statements it prepared for that are
//! deallocated before the commit. A type created later (a migration run
//! while the connection is open) is not known: the statement fails with a
//! retryable error, the connection is discarded, and the next one learns it.
//!
//! One file, though long: a connection type of its own protocol (unnamed
//! statements in one message), with its row and field types and its error
//! mapping, which change together whenever the protocol handling does.

use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use diesel::QueryResult;
use diesel::connection::{Instrumentation, InstrumentationEvent, StrQueryHelper};
use diesel::pg::{
    FailedToLookupTypeError, Pg, PgMetadataCache, PgMetadataCacheKey, PgMetadataLookup,
    PgQueryBuilder, PgTypeMetadata, PgValue,
};
use diesel::query_builder::bind_collector::RawBytesBindCollector;
use diesel::query_builder::{QueryBuilder, QueryFragment};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::row::{Field, PartialRow, Row, RowIndex, RowSealed};
use diesel_async::AnsiTransactionManager;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

use super::call::OUTCOME_UNKNOWN;

/// A PostgreSQL connection that never names a statement.
pub(super) struct UnnamedConnection {
    client: tokio_postgres::Client,
    /// Ends the connection task when this connection is dropped (without it
    /// tokio-postgres would wait for every pending answer first: forever,
    /// behind a stalled pooler, holding the transaction's locks).
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// One request at a time: a transaction-mode pooler may hand the server
    /// connection to another client at the first ReadyForQuery, so two
    /// Sync-terminated requests in flight outside a transaction could be
    /// answered by different server connections.
    serial: Arc<tokio::sync::Mutex<()>>,
    transaction: AnsiTransactionManager,
    /// OIDs of the database's non-built-in types, by (schema, name) and by
    /// name alone for those on the search path.
    types: Arc<PgMetadataCache>,
    /// `None` unless logging or deadlines need events (the hot path then
    /// builds none).
    instrumentation: Mutex<Option<Box<dyn Instrumentation>>>,
    /// What `instrumentation()` hands out while nothing watches.
    unwatched: Unwatched,
    /// Set when the connection's protocol state is no longer trusted.
    broken: AtomicBool,
}

/// Receives events nobody asked for.
struct Unwatched;

impl Instrumentation for Unwatched {
    fn on_connection_event(&mut self, _: InstrumentationEvent<'_>) {}
}

impl Drop for UnnamedConnection {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A statement rendered and its binds serialised: all a query future holds.
pub(super) struct Rendered {
    sql: String,
    params: Vec<(RawBind, Type)>,
}

impl UnnamedConnection {
    /// Takes over an open client and its connection (driven by a task of
    /// its own until this value is dropped) and learns the database's types.
    pub(super) async fn new<S, T>(
        client: tokio_postgres::Client,
        connection: tokio_postgres::Connection<S, T>,
    ) -> Result<Self, tokio_postgres::Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => {
                    if let Err(e) = ended {
                        tracing::debug!(target: "database::connection", error = %e, "connection ended");
                    }
                }
                // Dropping the connection closes the socket at once.
                _ = stop => {}
            }
        });
        let types = learn_types(&client).await?;
        Ok(Self {
            client,
            shutdown: Some(shutdown),
            serial: Arc::new(tokio::sync::Mutex::new(())),
            transaction: AnsiTransactionManager::default(),
            types: Arc::new(types),
            instrumentation: Mutex::new(None),
            unwatched: Unwatched,
            broken: AtomicBool::new(false),
        })
    }

    pub(super) fn transaction_state(&mut self) -> &mut AnsiTransactionManager {
        &mut self.transaction
    }

    pub(super) fn instrumentation(&mut self) -> &mut dyn Instrumentation {
        let slot = self
            .instrumentation
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match slot {
            Some(instrumentation) => &mut **instrumentation,
            None => &mut self.unwatched,
        }
    }

    pub(super) fn set_instrumentation(&mut self, instrumentation: impl Instrumentation) {
        *self
            .instrumentation
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Box::new(instrumentation));
    }

    /// Closed by the server, or failed in a way that leaves its protocol
    /// state unknown (the transaction manager's own check comes on top).
    pub(super) fn is_broken(&self) -> bool {
        self.client.is_closed() || self.broken.load(Ordering::Relaxed)
    }

    fn event(&self, event: InstrumentationEvent<'_>) {
        let mut slot = self
            .instrumentation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(instrumentation) = slot.as_mut() {
            instrumentation.on_connection_event(event);
        }
    }

    fn watched(&self) -> bool {
        self.instrumentation
            .lock()
            .map(|slot| slot.is_some())
            .unwrap_or(true)
    }

    /// Renders `query` and serialises its binds, before any `.await`: the
    /// future then holds only owned data.
    pub(super) fn render<T: QueryFragment<Pg>>(&self, query: &T) -> QueryResult<Rendered> {
        if self.watched() {
            self.event(InstrumentationEvent::start_query(&diesel::debug_query::<
                Pg,
                _,
            >(query)));
        }
        let mut builder = PgQueryBuilder::default();
        query.to_sql(&mut builder, &Pg)?;
        let sql = builder.finish();
        let mut binds = RawBytesBindCollector::<Pg>::new();
        let mut lookup = KnownTypes(Arc::clone(&self.types));
        query.collect_binds(&mut binds, &mut lookup as &mut dyn PgMetadataLookup, &Pg)?;
        let params = binds
            .metadata
            .into_iter()
            .zip(binds.binds)
            .map(|(metadata, value)| {
                let oid = metadata.oid().map_err(|e| self.unknown_type(&e))?;
                Ok((RawBind(value), bind_type(oid)))
            })
            .collect::<QueryResult<Vec<_>>>()?;
        Ok(Rendered { sql, params })
    }

    /// A bind of a type this connection did not see when it opened: found
    /// before anything was sent, so the call can simply be retried.
    fn unknown_type(&self, e: &dyn std::fmt::Display) -> DieselError {
        self.broken.store(true, Ordering::Relaxed);
        DieselError::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new(format!(
                "{e}: the type is newer than this DB_POOLER=transaction connection (they learn \
                 the database's types when they open); nothing was sent, the connection is \
                 discarded, retry"
            )),
        )
    }

    /// A result column of a type this connection did not see when it
    /// opened. Parse, Bind and Execute went out in one message, so the
    /// statement has run (and, outside a transaction, committed) by the time
    /// its result turns out unreadable: never report that as retryable.
    fn unreadable_result(&self, e: &dyn std::fmt::Display) -> DieselError {
        self.broken.store(true, Ordering::Relaxed);
        DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(format!(
                "{OUTCOME_UNKNOWN}pooler mode: the statement was sent and may have run, but its \
                 result has a type newer \
                 than this DB_POOLER=transaction connection (they learn the database's types \
                 when they open; a migration created it since): check before retrying; the \
                 connection is discarded ({e})"
            )),
        )
    }

    pub(super) async fn load(
        &self,
        rendered: QueryResult<Rendered>,
    ) -> QueryResult<BoxStream<'static, QueryResult<UnnamedRow>>> {
        let (sql, result) = match rendered {
            Ok(Rendered { sql, params }) => {
                // The whole result is read during the turn, and the turn
                // ends with it: a stream that held the turn until dropped
                // kept a second request on this connection (a second open
                // stream) waiting for ever. The server sends every row
                // before the pooler can move on anyway.
                let _turn = self.serial.lock().await;
                let result = async {
                    let rows = self
                        .client
                        .query_typed_raw(&sql, params)
                        .await
                        .map_err(|e| self.error(e))?;
                    rows.try_collect::<Vec<_>>()
                        .await
                        .map_err(|e| self.error(e))
                }
                .await;
                (sql, result)
            }
            Err(e) => (String::new(), Err(e)),
        };
        let result = result.map(|rows| {
            let oids: Option<Arc<[NonZeroU32]>> = rows.first().map(column_oids);
            futures::stream::iter(rows.into_iter().map(move |row| {
                Ok(UnnamedRow {
                    row,
                    oids: oids.clone().unwrap_or_else(|| Arc::from([])),
                })
            }))
            .boxed()
        });
        self.finish(&sql, result)
    }

    pub(super) async fn execute(&self, rendered: QueryResult<Rendered>) -> QueryResult<usize> {
        let (sql, result) = match rendered {
            Ok(Rendered { sql, params }) => {
                let _turn = self.serial.lock().await;
                let result = async {
                    let rows = self
                        .client
                        .query_typed_raw(&sql, params)
                        .await
                        .map_err(|e| self.error(e))?;
                    let mut rows = pin!(rows);
                    while rows.try_next().await.map_err(|e| self.error(e))?.is_some() {}
                    Ok(rows.rows_affected().unwrap_or(0) as usize)
                }
                .await;
                (sql, result)
            }
            Err(e) => (String::new(), Err(e)),
        };
        self.finish(&sql, result)
    }

    /// `rendered` in a transaction of its own, in one round trip: `begin`
    /// (`BEGIN` with the transaction's settings), the statement and `COMMIT`
    /// go out together and their answers are read in order (the pooler keeps
    /// the server connection from `BEGIN` on). The rows are read before the
    /// `COMMIT`'s answer. If the statement fails the server turns the
    /// `COMMIT` into a rollback.
    pub(super) async fn load_in_transaction(
        &self,
        begin: &str,
        rendered: Rendered,
    ) -> QueryResult<BoxStream<'static, QueryResult<UnnamedRow>>> {
        let Rendered { sql, params } = rendered;
        let _turn = self.serial.lock().await;
        let begun = self.client.batch_execute(begin);
        let rows = async {
            let rows = self
                .client
                .query_typed_raw(&sql, params)
                .await
                .map_err(|e| self.error(e))?;
            let rows: Vec<tokio_postgres::Row> =
                rows.try_collect().await.map_err(|e| self.error(e))?;
            Ok::<_, DieselError>(rows)
        };
        let committed = self.client.batch_execute("COMMIT");
        let (begun, rows, committed) = futures::join!(begun, rows, committed);
        begun.map_err(|e| self.error(e))?;
        let rows = rows?;
        committed.map_err(|e| self.error(e))?;
        let mut oids: Option<Arc<[NonZeroU32]>> = None;
        let rows: Vec<QueryResult<UnnamedRow>> = rows
            .into_iter()
            .map(|row| {
                let oids = oids.get_or_insert_with(|| column_oids(&row)).clone();
                Ok(UnnamedRow { row, oids })
            })
            .collect();
        Ok(futures::stream::iter(rows).boxed())
    }

    /// `execute` in a transaction of its own, in one round trip (see
    /// `load_in_transaction`).
    pub(super) async fn execute_in_transaction(
        &self,
        begin: &str,
        rendered: Rendered,
    ) -> QueryResult<usize> {
        let Rendered { sql, params } = rendered;
        let _turn = self.serial.lock().await;
        let begun = self.client.batch_execute(begin);
        let count = async {
            let rows = self
                .client
                .query_typed_raw(&sql, params)
                .await
                .map_err(|e| self.error(e))?;
            let mut rows = pin!(rows);
            while rows.try_next().await.map_err(|e| self.error(e))?.is_some() {}
            Ok::<_, DieselError>(rows.rows_affected().unwrap_or(0) as usize)
        };
        let committed = self.client.batch_execute("COMMIT");
        let (begun, count, committed) = futures::join!(begun, count, committed);
        begun.map_err(|e| self.error(e))?;
        let count = count?;
        committed.map_err(|e| self.error(e))?;
        Ok(count)
    }

    pub(super) async fn batch_execute(&self, sql: &str) -> QueryResult<()> {
        if self.watched() {
            self.event(InstrumentationEvent::start_query(&StrQueryHelper::new(sql)));
        }
        let result = {
            let _turn = self.serial.lock().await;
            self.client
                .batch_execute(sql)
                .await
                .map_err(|e| self.error(e))
        };
        self.finish(sql, result)
    }

    /// What every statement does when it ends: watchers hear of it.
    ///
    /// (diesel-async's connection also marks a transaction whose statement
    /// hit a serialization failure as needing a rollback up to the top
    /// level, which matters only to code that catches that error inside a
    /// nested transaction (savepoint) and carries on; that state is private
    /// to diesel-async. A caller that returns the error, as every repository
    /// function does, gets the same rollback and the same retryable error.)
    fn finish<T>(&self, sql: &str, result: QueryResult<T>) -> QueryResult<T> {
        if self.watched() {
            self.event(InstrumentationEvent::finish_query(
                &StrQueryHelper::new(sql),
                result.as_ref().err(),
            ));
        }
        result
    }

    /// A driver error; those that leave the protocol state unknown mark the
    /// connection broken so the pool discards it.
    fn error(&self, e: tokio_postgres::Error) -> DieselError {
        match e.code() {
            // "prepared statement does not exist": only tokio-postgres's
            // type lookup names statements here, and it does so only for a
            // result type created after this connection learned them, after
            // the statement itself has run.
            Some(code) if *code == tokio_postgres::error::SqlState::INVALID_SQL_STATEMENT_NAME => {
                self.unreadable_result(&e)
            }
            Some(_) => convert_error(e),
            None => {
                self.broken.store(true, Ordering::Relaxed);
                convert_error(e)
            }
        }
    }
}

/// Reads the catalog's non-built-in types and makes tokio-postgres cache
/// each, all in one transaction so that a pooler keeps every statement on
/// one server connection, and leaves no named statement behind: the server
/// connection's statements are deallocated first (another client's
/// leftovers would collide with tokio-postgres's names) and last, also when
/// the learning fails (prepared statements outlive a rollback).
///
/// PgBouncer 1.21+ with `max_prepared_statements` > 0 tracks named
/// statements itself and must not see `DEALLOCATE ALL`: pooler mode needs
/// that setting at 0 (its default), as it needs no named statements.
async fn learn_types(
    client: &tokio_postgres::Client,
) -> Result<PgMetadataCache, tokio_postgres::Error> {
    // Enums, domains, ranges and extension base types the role can use; not
    // arrays (`typelem`) nor row types (`typrelid`): their element types are
    // what matters, and there is one per table. information_schema's domains
    // (OIDs below 16384) are there in every database, so the lookup
    // statement is always prepared here, inside the transaction.
    const CATALOG: &str = "\
        SELECT n.nspname::text, t.typname::text, t.oid, t.typarray, \
               pg_catalog.pg_type_is_visible(t.oid), pg_catalog.format_type(t.oid, NULL) \
        FROM pg_catalog.pg_type t \
        JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
        WHERE t.typtype IN ('b', 'd', 'e', 'r', 'm') AND t.typelem = 0 AND t.typrelid = 0 \
          AND (t.oid >= 16384 OR n.nspname = 'information_schema') \
          AND n.nspname <> 'pg_catalog' \
          AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
          AND pg_catalog.has_schema_privilege(n.oid, 'USAGE') \
          AND pg_catalog.has_type_privilege(t.oid, 'USAGE')";
    /// PostgreSQL allows 1,664 result columns.
    const COLUMNS_PER_SELECT: usize = 500;
    client
        .batch_execute("BEGIN; DEALLOCATE ALL; SAVEPOINT learn_types")
        .await?;
    let learned = async {
        let rows = client.query_typed(CATALOG, &[]).await?;
        let mut cache = PgMetadataCache::new();
        let mut columns = Vec::with_capacity(rows.len() * 2);
        for row in &rows {
            let schema: String = row.get(0);
            let name: String = row.get(1);
            let oid: u32 = row.get(2);
            let array_oid: u32 = row.get(3);
            let visible: bool = row.get(4);
            let shown: String = row.get(5);
            cache.store_type(
                PgMetadataCacheKey::new(Some(schema.into()), name.clone().into()),
                (oid, array_oid),
            );
            if visible {
                cache.store_type(PgMetadataCacheKey::new(None, name.into()), (oid, array_oid));
            }
            // Each result column of a type tokio-postgres does not know
            // makes it look the type up (named statements) and cache it.
            columns.push(format!("NULL::{shown}"));
            if array_oid != 0 {
                columns.push(format!("NULL::{shown}[]"));
            }
        }
        for chunk in columns.chunks(COLUMNS_PER_SELECT) {
            client
                .query_typed(&format!("SELECT {}", chunk.join(", ")), &[])
                .await?;
        }
        Ok::<_, tokio_postgres::Error>(cache)
    }
    .await;
    match learned {
        Ok(cache) => {
            client.batch_execute("DEALLOCATE ALL; COMMIT").await?;
            Ok(cache)
        }
        Err(e) => {
            let _ = client
                .batch_execute("ROLLBACK TO SAVEPOINT learn_types; DEALLOCATE ALL; COMMIT")
                .await;
            Err(e)
        }
    }
}

/// The type OIDs of a result's columns, shared by its rows.
fn column_oids(row: &tokio_postgres::Row) -> Arc<[NonZeroU32]> {
    row.columns()
        .iter()
        .map(|c| NonZeroU32::new(c.type_().oid()).unwrap_or(NonZeroU32::MIN))
        .collect()
}

/// Custom types resolved from what the connection learned when it opened.
/// (Diesel's lookup is a `'static` trait object: it cannot borrow.)
struct KnownTypes(Arc<PgMetadataCache>);

impl PgMetadataLookup for KnownTypes {
    fn lookup_type(&mut self, type_name: &str, schema: Option<&str>) -> PgTypeMetadata {
        let key = PgMetadataCacheKey::new(schema.map(Into::into), type_name.into());
        self.0.lookup_type(&key).unwrap_or_else(|| {
            PgTypeMetadata::from_result(Err(FailedToLookupTypeError::new(key.into_owned())))
        })
    }
}

/// The parameter type sent with Parse: built in when tokio-postgres knows
/// the OID, else a placeholder that carries the OID (the server needs only it).
fn bind_type(oid: u32) -> Type {
    Type::from_oid(oid).unwrap_or_else(|| {
        Type::new(
            format!("oid_{oid}"),
            oid,
            tokio_postgres::types::Kind::Simple,
            String::new(),
        )
    })
}

/// A bind value Diesel has already serialised.
#[derive(Debug)]
struct RawBind(Option<Vec<u8>>);

impl ToSql for RawBind {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    // The type was chosen from Diesel's own metadata for this very value.
    tokio_postgres::types::to_sql_checked!();
}

/// A result row of the unnamed path.
pub struct UnnamedRow {
    row: tokio_postgres::Row,
    /// Column type OIDs, shared by the rows of one result.
    oids: Arc<[NonZeroU32]>,
}

impl RowSealed for UnnamedRow {}

impl<'a> Row<'a, Pg> for UnnamedRow {
    type InnerPartialRow = Self;
    type Field<'f>
        = UnnamedField<'f>
    where
        Self: 'f,
        'a: 'f;

    fn field_count(&self) -> usize {
        self.row.len()
    }

    fn get<'b, I>(&'b self, idx: I) -> Option<Self::Field<'b>>
    where
        'a: 'b,
        Self: RowIndex<I>,
    {
        let idx = self.idx(idx)?;
        Some(UnnamedField { row: self, idx })
    }

    fn partial_row(&self, range: std::ops::Range<usize>) -> PartialRow<'_, Self::InnerPartialRow> {
        PartialRow::new(self, range)
    }
}

impl RowIndex<usize> for UnnamedRow {
    fn idx(&self, idx: usize) -> Option<usize> {
        (idx < self.row.len()).then_some(idx)
    }
}

impl<'a> RowIndex<&'a str> for UnnamedRow {
    fn idx(&self, name: &'a str) -> Option<usize> {
        self.row.columns().iter().position(|c| c.name() == name)
    }
}

/// One column of an `UnnamedRow`.
pub struct UnnamedField<'a> {
    row: &'a UnnamedRow,
    idx: usize,
}

impl<'a> Field<'a, Pg> for UnnamedField<'a> {
    fn field_name(&self) -> Option<&str> {
        Some(self.row.row.columns()[self.idx].name())
    }

    fn value(&self) -> Option<PgValue<'_>> {
        let RawValue(bytes) = self.row.row.try_get(self.idx).ok()?;
        Some(PgValue::new(bytes?, &self.row.oids[self.idx]))
    }
}

/// A column's bytes as the server sent them (binary format).
struct RawValue<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(Some(raw)))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(None))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// A tokio-postgres error as Diesel reports it, the same way diesel-async
/// does for the direct path, so both modes produce the same `crate::Error`.
pub(super) fn convert_error(e: tokio_postgres::Error) -> DieselError {
    use tokio_postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        return DieselError::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new(e.to_string()),
        );
    };
    let code = db.code();
    let kind = if *code == SqlState::UNIQUE_VIOLATION {
        DatabaseErrorKind::UniqueViolation
    } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
        DatabaseErrorKind::ForeignKeyViolation
    } else if *code == SqlState::RESTRICT_VIOLATION {
        DatabaseErrorKind::RestrictViolation
    } else if *code == SqlState::EXCLUSION_VIOLATION {
        DatabaseErrorKind::ExclusionViolation
    } else if *code == SqlState::T_R_SERIALIZATION_FAILURE {
        DatabaseErrorKind::SerializationFailure
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        DatabaseErrorKind::ReadOnlyTransaction
    } else if *code == SqlState::NOT_NULL_VIOLATION {
        DatabaseErrorKind::NotNullViolation
    } else if *code == SqlState::CHECK_VIOLATION {
        DatabaseErrorKind::CheckViolation
    } else {
        DatabaseErrorKind::Unknown
    };
    DieselError::DatabaseError(kind, Box::new(ServerError(db.clone())))
}

struct ServerError(tokio_postgres::error::DbError);

impl diesel::result::DatabaseErrorInformation for ServerError {
    fn message(&self) -> &str {
        self.0.message()
    }

    fn details(&self) -> Option<&str> {
        self.0.detail()
    }

    fn hint(&self) -> Option<&str> {
        self.0.hint()
    }

    fn table_name(&self) -> Option<&str> {
        self.0.table()
    }

    fn column_name(&self) -> Option<&str> {
        self.0.column()
    }

    fn constraint_name(&self) -> Option<&str> {
        self.0.constraint()
    }

    fn statement_position(&self) -> Option<i32> {
        use tokio_postgres::error::ErrorPosition;
        match self.0.position()? {
            ErrorPosition::Original(position) | ErrorPosition::Internal { position, .. } => {
                (*position).try_into().ok()
            }
        }
    }
}
