//! The call contract of one PostgreSQL connection (docs/design.md, "What a
//! failure means"): every statement is bounded, a statement whose future is
//! dropped half-way leaves the connection dirty (never pooled again), and a
//! failure is reported as what it means for the caller.
//!
//! tokio-postgres returns the same error whether or not a request left the
//! socket, so the connection remembers what kind of statement it sent: a
//! top-level `COMMIT` (recognised where the transaction manager sends it,
//! `PgConn::batch_execute`), a statement outside any transaction that may
//! write (read from its Diesel query type, only on the error path), or
//! anything else. A connection lost or a deadline passed while the first two
//! were in flight is `CommitOutcomeUnknown`; otherwise the server rolled the
//! work back (or it only read), and the error stays retryable.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::QueryResult;
use diesel::pg::{Pg, PgQueryBuilder};
use diesel::query_builder::{QueryBuilder, QueryFragment};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub(crate) use crate::error::{DEADLINE_PASSED, OUTCOME_UNKNOWN, READ_ONLY_SERVER};

/// How much later than the client's bound the server's own bound of a
/// statement falls (`statement_timeout`, `idle_in_transaction_session_timeout`):
/// the client reports the deadline it enforces (`Timeout { kind: Client }`),
/// and the server stops, a moment later, what the client could not cancel
/// (a stalled network path carries no cancel request).
pub(crate) const SERVER_BACKSTOP: Duration = Duration::from_millis(250);

/// What a connection knows about its own calls.
#[derive(Default)]
pub(super) struct Calls {
    /// The protocol or transaction state is no longer trusted: a statement's
    /// future was dropped half-way, the deadline passed, or the connection
    /// failed. The pool closes it instead of handing it out.
    broken: AtomicBool,
    /// The session asked for read-only work (a replica's connection, or a
    /// transaction it declared `READ ONLY`): a refused write is its own
    /// doing, not a sign that the connection reached the wrong server.
    read_only: AtomicBool,
    /// The timer that bounds this connection's statements, kept between
    /// them and moved to each statement's new bound: moving a registered
    /// timer later is a few atomic operations, while a timer per statement
    /// takes the timer wheel's lock twice (to register it on its first poll
    /// and to remove it when dropped). Empty while a statement holds it, or
    /// before the first; a statement pipelined beside another makes its own.
    timer: std::sync::Mutex<Option<Pin<Box<tokio::time::Sleep>>>>,
}

impl Calls {
    /// Marks the connection as not to be reused.
    pub(super) fn break_off(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }

    /// Whether the connection must be closed rather than pooled.
    pub(super) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// Says whether the session itself asked for read-only work from now on.
    pub(super) fn expect_read_only(&self, on: bool) {
        self.read_only.store(on, Ordering::Relaxed);
    }

    /// A statement starts: until `InFlight::settle`, dropping it breaks the
    /// connection (its answer may still be on the way, or a transaction the
    /// caller will never finish may be open on the server).
    pub(super) fn start(&self, sent: Sent, bound: Bound) -> InFlight<'_> {
        InFlight {
            calls: self,
            sent,
            bound,
            settled: false,
        }
    }

    /// The connection's timer set to `at`, or a new one when a statement
    /// pipelined beside this one holds it.
    fn timer(&self, at: Instant) -> Pin<Box<tokio::time::Sleep>> {
        let kept = self.timer.lock().ok().and_then(|mut slot| slot.take());
        match kept {
            Some(mut timer) => {
                timer.as_mut().reset(at.into());
                timer
            }
            None => Box::pin(tokio::time::sleep_until(at.into())),
        }
    }

    /// Keeps `timer` for the next statement.
    fn keep(&self, timer: Pin<Box<tokio::time::Sleep>>) {
        if let Ok(mut slot) = self.timer.lock() {
            *slot = Some(timer);
        }
    }
}

/// When a statement starting now must have its answer (`bound`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Bound {
    /// `None`: unbounded (only the migration session).
    pub(super) at: Option<Instant>,
    /// The context's deadline had already passed when the statement was to
    /// start: it is refused without being sent.
    pub(super) passed: bool,
}

impl Bound {
    /// The same bound, never refused up front: a `ROLLBACK` must still be
    /// tried after the deadline, or the connection is closed with its
    /// transaction open.
    pub(super) fn for_rollback(self) -> Bound {
        Bound {
            passed: false,
            ..self
        }
    }
}

/// Whether raw SQL only reads: a plain `SELECT`, `VALUES`, `SHOW` or
/// `TABLE` (a data-modifying `WITH`, `SELECT ... INTO` and anything else may
/// write). A function with side effects called from a `SELECT` is the
/// caller's to know.
fn reads_only(sql: &str) -> bool {
    let sql = sql.trim_start().to_ascii_uppercase();
    let first = sql
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    matches!(first, "SELECT" | "VALUES" | "SHOW" | "TABLE") && !sql.contains(" INTO ")
}

/// What kind of statement is in flight, for the meaning of its failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    /// Inside a transaction, or a read outside one: a failure commits nothing.
    Safe,
    /// The top-level `COMMIT`.
    Commit,
    /// A statement outside any transaction that may write (it commits by itself).
    AutocommitWrite,
}

impl Sent {
    /// A statement outside any transaction (`depth_zero`): whether it may
    /// write is read from its Diesel query type (a `SELECT`, boxed or not,
    /// and the crate's wrappers of one, only reads; inserts, updates and
    /// deletes write), and for raw SQL from its first keyword. Whatever is
    /// not recognised counts as a write: the safe side of the contract.
    pub(super) fn of_statement<T: QueryFragment<Pg>>(depth_zero: bool, query: &T) -> Sent {
        if !depth_zero {
            return Sent::Safe;
        }
        let mut name = std::any::type_name::<T>();
        // The crate's own wrappers say nothing about reading or writing.
        while let Some(inner) = [
            "database::render_once::RenderOnce<",
            "database::inline_limit::InlineLimit<",
            "database::cached::Cached<",
            "database::db::sqlcommenter::Commented<",
        ]
        .iter()
        .find_map(|w| name.strip_prefix(w))
        {
            name = inner;
        }
        if name.starts_with("diesel::query_builder::select_statement::") {
            return Sent::Safe;
        }
        if name.starts_with("diesel::query_builder::sql_query::") {
            let mut sql = PgQueryBuilder::default();
            if query.to_sql(&mut sql, &Pg).is_ok() && reads_only(&sql.finish()) {
                return Sent::Safe;
            }
        }
        Sent::AutocommitWrite
    }

    /// A batch of simple-protocol SQL: the transaction manager's `COMMIT`,
    /// its other control statements, or arbitrary SQL (which may write when
    /// no transaction is open).
    pub(super) fn of_batch(depth_zero: bool, sql: &str) -> Sent {
        if sql == "COMMIT" {
            return Sent::Commit;
        }
        let control = ["BEGIN", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT"]
            .iter()
            .any(|c| sql.starts_with(c));
        if depth_zero && !control {
            Sent::AutocommitWrite
        } else {
            Sent::Safe
        }
    }
}

/// One statement in flight (see `Calls::start`).
pub(super) struct InFlight<'a> {
    calls: &'a Calls,
    sent: Sent,
    bound: Bound,
    settled: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.calls.break_off();
        }
    }
}

impl InFlight<'_> {
    /// Awaits `work` within the statement's bound and reports its outcome
    /// by the contract. `cancel` runs when the deadline passes (the cancel
    /// request to the server).
    pub(super) async fn run<T>(
        mut self,
        work: impl Future<Output = QueryResult<T>>,
        cancel: impl FnOnce(),
    ) -> QueryResult<T> {
        if self.bound.passed {
            // Not sent: `work` is sent when first polled.
            self.settled = true;
            return Err(deadline_passed("the statement was sent"));
        }
        let outcome = match self.bound.at {
            Some(at) => {
                let mut timer = self.calls.timer(at);
                let outcome = Within {
                    work: std::pin::pin!(work),
                    timer: timer.as_mut(),
                }
                .await;
                self.calls.keep(timer);
                outcome
            }
            None => Some(work.await),
        };
        self.settled = true;
        match outcome {
            Some(Ok(value)) => Ok(value),
            Some(Err(e)) if is_connection_failure(&e) => {
                self.calls.break_off();
                Err(match self.sent {
                    Sent::Safe => e,
                    sent => outcome_unknown(sent, &format!("the connection failed ({e})")),
                })
            }
            // Refused, not lost: nothing was written, whatever was sent.
            Some(Err(e))
                if is_read_only_refusal(&e) && !self.calls.read_only.load(Ordering::Relaxed) =>
            {
                self.calls.break_off();
                Err(DieselError::DatabaseError(
                    DatabaseErrorKind::Unknown,
                    Box::new(format!(
                        "{READ_ONLY_SERVER}a write was refused as read-only (SQLSTATE 25006: {}); \
                         the server is a standby or a fenced old primary, so this connection was \
                         closed and nothing was written: run it again (a new connection goes to \
                         a server that accepts writes when the URL lists every host with \
                         target_session_attrs=read-write)",
                        error_message(&e)
                    )),
                ))
            }
            Some(Err(e)) => {
                if let DieselError::DatabaseError(_, info) = &e
                    && crate::error::is_pooler_collision(info.message())
                {
                    // Its named statements are scattered over a pooler's
                    // server connections: nothing it runs can be trusted.
                    self.calls.break_off();
                }
                Err(e)
            }
            None => {
                self.calls.break_off();
                cancel();
                Err(match self.sent {
                    Sent::Safe => DieselError::DatabaseError(
                        DatabaseErrorKind::Unknown,
                        Box::new(format!(
                            "{DEADLINE_PASSED}no answer within the call's deadline; the \
                             connection was closed and the server cancels the statement \
                             (anything of an open transaction is rolled back)"
                        )),
                    ),
                    sent => outcome_unknown(sent, "no answer within the call's deadline"),
                })
            }
        }
    }
}

/// The error of work refused because the call's deadline passed before
/// `before` (nothing was sent): `crate::Error::Timeout { kind: Client }`.
pub(super) fn deadline_passed(before: &str) -> DieselError {
    DieselError::DatabaseError(
        DatabaseErrorKind::Unknown,
        Box::new(format!(
            "{DEADLINE_PASSED}the call's deadline passed before {before}; nothing was sent"
        )),
    )
}

fn outcome_unknown(sent: Sent, why: &str) -> DieselError {
    let what = match sent {
        Sent::Commit => "COMMIT was sent",
        _ => "a statement that may write was sent outside a transaction",
    };
    DieselError::DatabaseError(
        DatabaseErrorKind::Unknown,
        Box::new(format!(
            "{OUTCOME_UNKNOWN}{what} but {why}: it may have committed; check before retrying"
        )),
    )
}

/// A statement wrapped in a transaction of its own was answered after that
/// transaction's `COMMIT`: it ran outside it, without the context's settings
/// (`PgConn`'s one-flight path; never expected). A read's rows are
/// discarded; a write may have committed.
pub(super) fn ran_outside_its_transaction(sent: Sent) -> DieselError {
    let why = "the statement ran after the COMMIT of the transaction it was wrapped in, \
               without the context's settings";
    match sent {
        Sent::Safe => DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(format!(
                "{why}; its rows were discarded and the connection closed: run it again"
            )),
        ),
        sent => outcome_unknown(sent, why),
    }
}

/// Whether `e` says the connection itself failed (closed, reset, the server
/// going away) rather than the server refusing the statement.
pub(super) fn is_connection_failure(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        DieselError::DatabaseError(_, info) => crate::error::is_outage_message(info.message()),
        _ => false,
    }
}

/// Whether `e` is a write refused because the transaction is read-only
/// (SQLSTATE 25006): on a session that did not ask for that, the server
/// accepts no writes (in recovery, or `default_transaction_read_only` set to
/// fence it), which after a failover means the connection is on the wrong
/// server. Not a connection failure: nothing was written.
pub(super) fn is_read_only_refusal(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _)
    )
}

/// Whether SQL sent by the caller declares read-only work (`SET TRANSACTION
/// READ ONLY`, `BEGIN READ ONLY`, `transaction_read_only`, ...): its refused
/// writes are then expected, not a sign of the wrong server.
pub(super) fn declares_read_only(sql: &str) -> bool {
    let sql = sql.to_ascii_uppercase();
    sql.contains("READ ONLY") || sql.contains("READ_ONLY")
}

fn error_message(e: &DieselError) -> String {
    match e {
        DieselError::DatabaseError(_, info) => info.message().to_owned(),
        other => other.to_string(),
    }
}

/// `work`, or `None` once `timer` has fired first: the work is polled
/// first, so a statement that answers at once never registers the timer.
struct Within<'t, W> {
    work: Pin<&'t mut W>,
    timer: Pin<&'t mut tokio::time::Sleep>,
}

impl<W: Future> Future for Within<'_, W> {
    type Output = Option<W::Output>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        if let Poll::Ready(done) = self.work.as_mut().poll(cx) {
            return Poll::Ready(Some(done));
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// When a statement starting now must have its answer: the context's
/// deadline, or `per_statement` from now, whichever comes first (`at:
/// None`: unbounded, only the migration session). The clock is read once.
pub(super) fn bound(deadline: Option<Instant>, per_statement: Option<Duration>) -> Bound {
    if deadline.is_none() && per_statement.is_none() {
        return Bound {
            at: None,
            passed: false,
        };
    }
    let now = Instant::now();
    let own = per_statement.map(|d| now + d);
    let at = match (deadline, own) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Bound {
        at,
        passed: deadline.is_some_and(|d| d <= now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_outside_a_transaction_are_sorted_by_their_query_type() {
        use crate::render_once::RenderOnceDsl;
        use crate::schema::users;
        use diesel::prelude::*;
        let kind = |q: &dyn Fn() -> Sent| q();
        assert_eq!(
            kind(&|| Sent::of_statement(true, &users::table.select(users::id))),
            Sent::Safe
        );
        assert_eq!(
            Sent::of_statement(true, &users::table.select(users::id).into_boxed::<Pg>()),
            Sent::Safe
        );
        assert_eq!(
            Sent::of_statement(
                true,
                &users::table
                    .find(crate::UserId::new())
                    .select(users::id)
                    .render_once()
            ),
            Sent::Safe
        );
        assert_eq!(
            Sent::of_statement(true, &diesel::delete(users::table)),
            Sent::AutocommitWrite
        );
        assert_eq!(
            Sent::of_statement(true, &diesel::update(users::table).set(users::name.eq("a"))),
            Sent::AutocommitWrite
        );
        assert_eq!(
            Sent::of_statement(true, &diesel::sql_query(" select 1")),
            Sent::Safe
        );
        assert_eq!(
            Sent::of_statement(
                true,
                &diesel::sql_query("WITH d AS (DELETE FROM t RETURNING *) SELECT 1")
            ),
            Sent::AutocommitWrite
        );
        assert_eq!(
            Sent::of_statement(true, &diesel::sql_query("SELECT * INTO t2 FROM t")),
            Sent::AutocommitWrite
        );
        assert_eq!(
            Sent::of_statement(true, &diesel::sql_query("UPDATE t SET a = 1")),
            Sent::AutocommitWrite
        );
        // Inside a transaction nothing commits by itself.
        assert_eq!(
            Sent::of_statement(false, &diesel::delete(users::table)),
            Sent::Safe
        );
    }

    #[test]
    fn batches_are_sorted_by_their_text() {
        assert_eq!(Sent::of_batch(false, "COMMIT"), Sent::Commit);
        assert_eq!(Sent::of_batch(true, "BEGIN"), Sent::Safe);
        assert_eq!(
            Sent::of_batch(false, "RELEASE SAVEPOINT diesel_savepoint_1"),
            Sent::Safe
        );
        assert_eq!(Sent::of_batch(true, "DELETE FROM t"), Sent::AutocommitWrite);
        assert_eq!(Sent::of_batch(false, "DELETE FROM t"), Sent::Safe);
    }

    #[test]
    fn a_server_going_away_is_a_connection_failure() {
        for message in [
            "terminating connection due to administrator command",
            "terminating connection due to unexpected postmaster exit",
        ] {
            let e = DieselError::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(message.to_owned()),
            );
            assert!(is_connection_failure(&e), "{message}");
        }
    }

    #[test]
    fn read_only_declarations_are_recognised() {
        assert!(declares_read_only(
            "SET TRANSACTION READ ONLY; SET LOCAL x = 1"
        ));
        assert!(declares_read_only("begin read only"));
        assert!(declares_read_only("SET transaction_read_only = on"));
        assert!(!declares_read_only("BEGIN"));
        assert!(!declares_read_only("COMMIT"));
    }

    #[tokio::test]
    async fn a_refused_write_on_a_read_write_session_breaks_it_and_is_unavailable() {
        let refused = || {
            DieselError::DatabaseError(
                DatabaseErrorKind::ReadOnlyTransaction,
                Box::new("cannot execute INSERT in a read-only transaction".to_owned()),
            )
        };
        for sent in [Sent::Safe, Sent::AutocommitWrite] {
            let calls = Calls::default();
            let e = calls
                .start(sent, bound(None, None))
                .run(async { Err::<(), _>(refused()) }, || {})
                .await
                .unwrap_err();
            assert!(calls.is_broken());
            let e = crate::Error::from(e);
            assert!(
                matches!(&e, crate::Error::Unavailable(m) if m.contains("25006")),
                "{e:?}"
            );
            assert!(e.is_retryable());
        }
        // A session that asked for read-only work (a replica, READ ONLY):
        // the refusal is its own, reported as the server said it.
        let calls = Calls::default();
        calls.expect_read_only(true);
        let e = calls
            .start(Sent::Safe, bound(None, None))
            .run(async { Err::<(), _>(refused()) }, || {})
            .await
            .unwrap_err();
        assert!(!calls.is_broken());
        assert!(matches!(
            crate::Error::from(e),
            crate::Error::Database(DieselError::DatabaseError(
                DatabaseErrorKind::ReadOnlyTransaction,
                _
            ))
        ));
    }

    #[test]
    fn the_earlier_bound_wins() {
        let soon = Instant::now() + Duration::from_millis(5);
        assert_eq!(
            bound(Some(soon), Some(Duration::from_secs(30))).at,
            Some(soon)
        );
        assert!(!bound(Some(soon), Some(Duration::from_secs(30))).passed);
        assert_eq!(bound(None, None).at, None);
        assert!(bound(None, Some(Duration::from_secs(1))).at.is_some());
        let gone = Instant::now() - Duration::from_millis(1);
        assert!(bound(Some(gone), Some(Duration::from_secs(30))).passed);
        assert!(!bound(Some(gone), None).for_rollback().passed);
    }
}
