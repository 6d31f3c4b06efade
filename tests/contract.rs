//! The call contract (README, "What a failure means"), on every entry point
//! (`db.conn()` and a transaction on it, `Db::run`, `Db::transaction`,
//! repository functions called directly, a replica-configured `Db`) in
//! direct and pooler mode, under real network faults injected by a loopback
//! proxy (`common::faults`):
//! - a write whose connection dies after the server got it reports
//!   `CommitOutcomeUnknown` (never a retryable error), and the write is
//!   indeed there;
//! - every call is bounded by its deadline, waiting for the pool and
//!   connecting included, and the server stops the statement too;
//! - a call cancelled at any await point leaves no open transaction, no
//!   dirty connection in the pool and nothing half-written.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::faults::FaultProxy;
use common::{TestDb, skip_without, start_bouncer, wait_until};
use database::auth::{NewUser, users};
use database::db::{PooledConn, Pooler};
use database::features::todos::{self, CreateTodo};
use database::ops::cluster::TempPgBouncer;
use database::tenancy::{NewTenant, tenants};
use database::{Config, Db, Error};
use diesel::sql_types::{BigInt, Integer, Text};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

/// How a test's `Db` reaches the server: directly or through PgBouncer in
/// pooler mode, with the fault proxy in front of either.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Path {
    Direct,
    Pooler,
    /// Through PgBouncer, with the login role's statements bounded by the
    /// server as `db setup` bounds the service role's: pooler mode then
    /// sends a statement outside a transaction alone, not in a transaction
    /// of its own that carries its timeouts.
    PoolerRoleBounded,
}

struct Setup {
    t: TestDb,
    proxy: FaultProxy,
    db: Db,
    _bouncer: Option<TempPgBouncer>,
}

/// `t`'s database through the proxy (and PgBouncer for the pooler paths),
/// with `configure` applied to the `Db`'s configuration. `None` (skipped)
/// when PgBouncer is missing.
async fn setup(path: Path, configure: impl FnOnce(&mut Config)) -> Option<Setup> {
    let t = TestDb::new().await;
    let (target, bouncer) = match path {
        Path::Direct => (t.url.clone(), None),
        Path::Pooler | Path::PoolerRoleBounded => match start_bouncer() {
            Ok(b) => (common::through_bouncer(&b, &t.name), Some(b)),
            Err(e) => {
                skip_without("pgbouncer", &e);
                return None;
            }
        },
    };
    let proxy = FaultProxy::in_front_of(&target).await;
    let mut config = Config::new(proxy.url_through(&target));
    config.pool_size = 2;
    if path != Path::Direct {
        config.pooler = Pooler::Transaction;
        config.migration_url = Some(t.url.clone());
    }
    configure(&mut config);
    if path == Path::PoolerRoleBounded {
        common::bound_login_role(&t, config.query_timeout).await;
    }
    let db = Db::new(config).unwrap();
    Some(Setup {
        t,
        proxy,
        db,
        _bouncer: bouncer,
    })
}

fn user(email: &str) -> NewUser {
    NewUser {
        email: email.to_owned(),
        ..Default::default()
    }
}

async fn user_exists(t: &TestDb, email: &str) -> bool {
    users::find_by_email(&mut *t.conn().await, email)
        .await
        .is_ok()
}

/// After a cut: on a direct path the write reached the server and
/// committed (which is why "retry" would have been wrong). Through a pooler
/// the pooler may still have dropped its server connection before the
/// COMMIT ran: the outcome is genuinely unknown, and only the error is
/// asserted.
/// The server may read the COMMIT a moment after the client saw the cut, so
/// the check waits (bounded) for the commit to become visible.
async fn committed_if_direct(path: Path, t: &TestDb, email: &str) {
    if path == Path::Direct {
        wait_until(
            &format!("the cut write {email} commits"),
            Duration::from_secs(5),
            async || user_exists(t, email).await,
        )
        .await;
    }
}

fn assert_outcome_unknown<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) {
    match result {
        Err(e @ Error::CommitOutcomeUnknown(_)) => {
            assert!(
                !e.is_retryable(),
                "{what}: an unknown outcome is never retryable"
            )
        }
        other => panic!("{what}: expected CommitOutcomeUnknown, got {other:?}"),
    }
}

// 1. A write in flight when the connection dies -------------------------------

async fn writes_whose_answer_is_lost_report_an_unknown_outcome(path: Path) {
    let Some(s) = setup(path, |_| {}).await else {
        return;
    };
    let Setup { t, proxy, db, .. } = &s;
    let tag = format!("{path:?}").to_lowercase();

    // An autocommit INSERT, from a repository function on `db.conn()`.
    let email = format!("autocommit-{tag}@example.com");
    let mut conn = db.conn().await.unwrap();
    proxy.cut_after(&email);
    assert_outcome_unknown(
        "autocommit insert",
        users::create(&mut conn, &user(&email)).await,
    );
    drop(conn);
    committed_if_direct(path, t, &email).await;

    // A COMMIT of `conn.transaction` on `db.conn()`.
    let email = format!("commit-{tag}@example.com");
    let mut conn = db.conn().await.unwrap();
    proxy.cut_after("COMMIT");
    let result = conn
        .transaction::<_, Error, _>(async |conn| {
            let u = users::create(conn, &user(&email)).await?;
            todos::create(
                conn,
                u.id,
                &CreateTodo {
                    title: "t".into(),
                    ..Default::default()
                },
            )
            .await?;
            Ok(())
        })
        .await;
    assert_outcome_unknown("conn.transaction", result);
    drop(conn);
    committed_if_direct(path, t, &email).await;

    // `Db::transaction` and `Db::run`, on an idle pooled connection (a new
    // one sends a COMMIT of its own while it opens, behind a pooler).
    drop(db.conn().await.unwrap());
    let email = format!("db-transaction-{tag}@example.com");
    proxy.cut_after("COMMIT");
    let result = db
        .transaction(async |conn| users::create(conn, &user(&email)).await)
        .await;
    assert_outcome_unknown("Db::transaction", result);
    committed_if_direct(path, t, &email).await;
    let email = format!("db-run-{tag}@example.com");
    proxy.cut_after(&email);
    let result = db
        .run(async |conn| users::create(conn, &user(&email)).await)
        .await;
    assert_outcome_unknown("Db::run", result);
    committed_if_direct(path, t, &email).await;

    // An autocommit INSERT under a context runs in a transaction of its own
    // that carries the settings; once the statement is prepared, BEGIN, the
    // statement and COMMIT go out in one flight.
    let as_user = db.with(database::Ctx::default().user(database::UserId::new()));
    let warm = format!("warm-{tag}@example.com");
    users::create(&mut as_user.conn().await.unwrap(), &user(&warm))
        .await
        .unwrap();
    let email = format!("context-{tag}@example.com");
    let mut conn = as_user.conn().await.unwrap();
    // After the COMMIT: the flight may leave the client in several writes.
    proxy.cut_after("COMMIT");
    assert_outcome_unknown(
        "autocommit insert under a context",
        users::create(&mut conn, &user(&email)).await,
    );
    drop(conn);
    committed_if_direct(path, t, &email).await;

    // A repository function that opens its own transaction.
    let owner = users::create(
        &mut db.conn().await.unwrap(),
        &user(&format!("owner-{tag}@example.com")),
    )
    .await
    .unwrap();
    let slug = format!("cut-{tag}");
    let mut conn = db.conn().await.unwrap();
    proxy.cut_after("COMMIT");
    let result = tenants::create_with_owner(
        &mut conn,
        &NewTenant {
            name: "Cut".into(),
            slug: slug.clone(),
        },
        owner.id,
    )
    .await;
    assert_outcome_unknown("tenants::create_with_owner", result);
    drop(conn);
    if path == Path::Direct {
        wait_until(
            "the cut tenant commits",
            Duration::from_secs(5),
            async || {
                tenants::find_by_slug(&mut *t.conn().await, &slug)
                    .await
                    .is_ok()
            },
        )
        .await;
    }
    assert_eq!(proxy.cuts(), 6);

    // A read whose answer is lost is simply retryable: nothing committed.
    let mut conn = db.conn().await.unwrap();
    proxy.cut_after("nobody@example.com");
    match users::find_by_email(&mut conn, "nobody@example.com").await {
        Err(e @ Error::Unavailable(_)) => assert!(e.is_retryable()),
        other => panic!("a lost read: {other:?}"),
    }
    drop(conn);
    // After every cut the pool serves again.
    assert!(db.health().await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_whose_answer_is_lost_report_an_unknown_outcome_direct() {
    writes_whose_answer_is_lost_report_an_unknown_outcome(Path::Direct).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_whose_answer_is_lost_report_an_unknown_outcome_through_a_pooler() {
    writes_whose_answer_is_lost_report_an_unknown_outcome(Path::Pooler).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_whose_answer_is_lost_report_an_unknown_outcome_through_a_pooler_role_bounded() {
    writes_whose_answer_is_lost_report_an_unknown_outcome(Path::PoolerRoleBounded).await;
}

/// With replicas configured (none usable here: every read falls back to the
/// primary), a write through what `read()` handed out keeps the contract.
#[tokio::test(flavor = "multi_thread")]
async fn a_primary_connection_from_the_read_path_keeps_the_contract() {
    let Some(s) = setup(Path::Direct, |c| {
        c.replica_urls = vec!["postgres://postgres@127.0.0.1:1/nowhere".into()];
    })
    .await
    else {
        return;
    };
    let (mut conn, source) = s.db.read_from().await.unwrap();
    assert_eq!(source, database::db::ReadSource::Primary);
    s.proxy.cut_after("read-path@example.com");
    assert_outcome_unknown(
        "write on the read path's primary connection",
        users::create(&mut conn, &user("read-path@example.com")).await,
    );
    assert!(user_exists(&s.t, "read-path@example.com").await);
}

// 2. Every call bounded, on the client and on the server ---------------------

const DEADLINE: Duration = Duration::from_secs(1);
/// What the bound may be exceeded by on a loaded two-core machine.
const MARGIN: Duration = Duration::from_millis(1500);

/// Runs `call`, which must fail within the deadline; a safety net of 30 s
/// keeps a regression from hanging the suite.
async fn bounded<T: std::fmt::Debug>(
    what: &str,
    call: impl Future<Output = Result<T, Error>>,
) -> Error {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in 30 s"));
    let took = started.elapsed();
    assert!(took < DEADLINE + MARGIN, "{what} took {took:?}");
    match result {
        Err(e) => e,
        Ok(v) => panic!("{what}: expected a failure, got {v:?}"),
    }
}

async fn active_statements(t: &TestDb, like: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut admin = common::admin_conn().await;
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND state = 'active' \
         AND query LIKE $2 AND pid <> pg_backend_pid()",
    )
    .bind::<Text, _>(&t.name)
    .bind::<Text, _>(like)
    .get_result::<N>(&mut admin)
    .await
    .unwrap()
    .n
}

async fn every_call_is_bounded_and_the_server_stops_too(path: Path) {
    let Some(s) = setup(path, |c| c.query_timeout = DEADLINE).await else {
        return;
    };
    let Setup { t, proxy, db, .. } = &s;

    // No connection yet, and the path to the server stalls: waiting for the
    // pool and connecting are bounded too.
    proxy.stall(true);
    let e = bounded("checkout through a stalled path", db.conn()).await;
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    proxy.stall(false);

    // Warm connections, then a stall: each entry point is bounded.
    {
        let _a = db.conn().await.unwrap();
        let _b = db.conn().await.unwrap();
    }
    proxy.stall(true);
    let mut conn = db.conn().await.unwrap();
    let e = bounded(
        "a repository function on db.conn()",
        users::find_by_email(&mut conn, "a@b.c"),
    )
    .await;
    assert!(
        matches!(
            e,
            Error::Timeout {
                kind: database::TimeoutKind::Client,
                ..
            }
        ),
        "{e:?}"
    );
    drop(conn);
    let e = bounded(
        "Db::run",
        db.run(async |conn| users::find_by_email(conn, "a@b.c").await),
    )
    .await;
    assert!(
        matches!(e, Error::Timeout { .. } | Error::Unavailable(_)),
        "{e:?}"
    );
    let e = bounded(
        "Db::transaction",
        db.transaction(async |conn| users::find_by_email(conn, "a@b.c").await),
    )
    .await;
    assert!(
        matches!(e, Error::Timeout { .. } | Error::Unavailable(_)),
        "{e:?}"
    );
    proxy.stall(false);

    // A long statement, then the path stalls while it runs: the client
    // gives up at the deadline and the server stops it (the cancel request
    // cannot pass the stalled path: the server's own timeout does it).
    let mut conn = db.conn().await.unwrap();
    let sleeping = async {
        diesel::sql_query("SELECT pg_sleep(20) /* contract-sleep */")
            .execute(&mut conn)
            .await
            .map_err(Error::from)
    };
    let stall_soon = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy.stall(true);
    };
    let (result, ()) = tokio::join!(
        bounded("a statement on a stalled path", sleeping),
        stall_soon
    );
    assert!(matches!(result, Error::Timeout { .. }), "{result:?}");
    drop(conn);
    let gone_by = Instant::now() + Duration::from_secs(3);
    while active_statements(t, "%contract-sleep%").await > 0 {
        assert!(
            Instant::now() < gone_by,
            "the server still runs the statement 3 s later"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.stall(false);
    assert!(db.health().await.is_ok(), "fresh connections work");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_is_bounded_and_the_server_stops_too_direct() {
    every_call_is_bounded_and_the_server_stops_too(Path::Direct).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_is_bounded_and_the_server_stops_too_through_a_pooler() {
    every_call_is_bounded_and_the_server_stops_too(Path::Pooler).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_is_bounded_and_the_server_stops_too_through_a_pooler_role_bounded() {
    every_call_is_bounded_and_the_server_stops_too(Path::PoolerRoleBounded).await;
}

/// A context's deadline is shared by everything the request does.
#[tokio::test(flavor = "multi_thread")]
async fn a_context_deadline_bounds_the_whole_request() {
    let Some(s) = setup(Path::Direct, |_| {}).await else {
        return;
    };
    let db =
        s.db.with(database::Ctx::new().timeout(Duration::from_millis(800)));
    let started = Instant::now();
    let e = db
        .transaction(async |conn| {
            // Each statement alone is within the default bound; together
            // they pass the request's deadline.
            for _ in 0..10 {
                diesel::sql_query("SELECT pg_sleep(0.2)")
                    .execute(conn)
                    .await?;
            }
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_millis(800) + MARGIN,
        "{:?}",
        started.elapsed()
    );
}

/// A call that starts after its context's deadline sends nothing: not a
/// read, not a write, not a transaction. `nextval` is the witness: a
/// sequence advances even when the statement that called it is cancelled
/// or rolled back, so any statement that reached the server shows.
async fn a_call_past_its_deadline_sends_nothing(path: Path) {
    let Some(s) = setup(path, |_| {}).await else {
        return;
    };
    diesel::sql_query("CREATE SEQUENCE contract_witness")
        .execute(&mut *s.t.conn().await)
        .await
        .unwrap();
    let late = database::Ctx::new().deadline(Instant::now() - Duration::from_millis(1));
    let db = s.db.with(late);
    let nextval = || diesel::sql_query("SELECT nextval('contract_witness')");
    let e = db
        .run(async |conn| Ok(nextval().execute(conn).await?))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "run: {e:?}");
    let e = db
        .transaction(async |conn| Ok(nextval().execute(conn).await?))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "transaction: {e:?}");
    let e = db.conn().await.err().unwrap();
    assert!(matches!(e, Error::Timeout { .. }), "conn: {e:?}");
    // A connection checked out in time, its statements started after the
    // deadline: the statement, and a transaction's BEGIN, are not sent.
    let soon =
        s.db.with(database::Ctx::new().timeout(Duration::from_millis(300)));
    let mut conn = soon.conn().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let e = database::Error::from(nextval().execute(&mut *conn).await.unwrap_err());
    assert!(matches!(e, Error::Timeout { .. }), "a statement: {e:?}");
    let e = conn
        .transaction(async |conn| nextval().execute(conn).await)
        .await
        .unwrap_err();
    let e = database::Error::from(e);
    assert!(matches!(e, Error::Timeout { .. }), "a transaction: {e:?}");
    drop(conn);
    #[derive(diesel::QueryableByName)]
    struct Called {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        is_called: bool,
    }
    let witness: Called = diesel::sql_query("SELECT is_called FROM contract_witness")
        .get_result(&mut *s.t.conn().await)
        .await
        .unwrap();
    assert!(
        !witness.is_called,
        "a statement past its deadline reached the server"
    );
    // The connections are still good for a call with time left.
    assert!(s.db.health().await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_past_its_deadline_sends_nothing_direct() {
    a_call_past_its_deadline_sends_nothing(Path::Direct).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_past_its_deadline_sends_nothing_through_a_pooler() {
    a_call_past_its_deadline_sends_nothing(Path::Pooler).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_past_its_deadline_sends_nothing_through_a_pooler_role_bounded() {
    a_call_past_its_deadline_sends_nothing(Path::PoolerRoleBounded).await;
}

// 3. Cancelled at any await point --------------------------------------------

/// Polls `fut` at most `polls` times, then drops it (what a client
/// disconnect or a `timeout` around a call does to a handler's future).
struct CancelAfter<F> {
    fut: Pin<Box<F>>,
    polls: usize,
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polls == 0 {
            return Poll::Ready(None);
        }
        self.polls -= 1;
        match self.fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A connection of `db`, checked to be outside any transaction: `SAVEPOINT`
/// is refused there ("can only be used in transaction blocks"), and
/// accepted inside one.
async fn clean_checkout(db: &Db) -> PooledConn {
    let mut conn = db.conn().await.unwrap();
    let probe = conn.batch_execute("SAVEPOINT contract_probe").await;
    match probe {
        Err(e)
            if e.to_string()
                .contains("can only be used in transaction blocks") =>
        {
            conn
        }
        other => {
            panic!("a checked-out connection is inside a transaction: SAVEPOINT gave {other:?}")
        }
    }
}

async fn idle_in_transaction(t: &TestDb) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut admin = common::admin_conn().await;
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 \
         AND state LIKE 'idle in transaction%'",
    )
    .bind::<Text, _>(&t.name)
    .get_result::<N>(&mut admin)
    .await
    .unwrap()
    .n
}

/// Runs `call(attempt)` for attempt 1, 2, ..., dropping attempt n after n
/// polls, until one completes (it must succeed). After each dropped
/// attempt, before anything else checks a connection out, no backend of the
/// pool sits in the abandoned transaction holding its locks, and a normal
/// call succeeds between (on a pool of two). Returns the dropped attempts.
async fn cancel_after_every_poll<Fut>(t: &TestDb, db: &Db, call: impl Fn(i32) -> Fut) -> Vec<i32>
where
    Fut: Future<Output = Result<(), Error>>,
{
    let mut cancelled = Vec::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match (CancelAfter {
            fut: Box::pin(call(attempt)),
            polls: attempt as usize,
        })
        .await
        {
            None => cancelled.push(attempt),
            Some(result) => {
                result.unwrap();
                return cancelled;
            }
        }
        let settled_by = Instant::now() + Duration::from_secs(1);
        while idle_in_transaction(t).await > 0 {
            assert!(
                Instant::now() < settled_by,
                "attempt {attempt}: a backend stays idle in transaction after the call was dropped"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(clean_checkout(db).await);
        assert!(attempt < 500, "the call never completes");
    }
}

async fn a_call_cancelled_at_any_await_point_leaves_nothing_behind(path: Path) {
    let Some(s) = setup(path, |_| {}).await else {
        return;
    };
    let Setup { t, db, .. } = &s;
    t.conn()
        .await
        .batch_execute("CREATE TABLE probe (attempt int NOT NULL, step int NOT NULL)")
        .await
        .unwrap();
    let insert = async |conn: &mut database::Conn, attempt: i32, step: i32| {
        diesel::sql_query("INSERT INTO probe VALUES ($1, $2)")
            .bind::<Integer, _>(attempt)
            .bind::<Integer, _>(step)
            .execute(conn)
            .await
            .map_err(Error::from)
    };
    drop(clean_checkout(db).await);
    let cancelled = cancel_after_every_poll(t, db, |attempt| {
        let insert = &insert;
        async move {
            db.transaction(async |conn| {
                insert(conn, attempt, 1).await?;
                insert(conn, attempt, 2).await?;
                insert(conn, attempt, 3).await
            })
            .await
            .map(|_| ())
        }
    })
    .await;
    assert!(
        cancelled.len() >= 3,
        "cancelled at {} points only",
        cancelled.len()
    );
    #[derive(diesel::QueryableByName)]
    struct Rows {
        #[diesel(sql_type = Integer)]
        attempt: i32,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<Rows> =
        diesel::sql_query("SELECT attempt, count(*) AS n FROM probe GROUP BY attempt")
            .load(&mut *t.conn().await)
            .await
            .unwrap();
    for r in &rows {
        assert_eq!(r.n, 3, "attempt {} is half-written", r.attempt);
    }
    // Every later call works, on every connection of the pool.
    for _ in 0..4 {
        drop(clean_checkout(db).await);
    }

    // A statement outside a transaction under a context runs in one of its
    // own (BEGIN with the settings, the statement, COMMIT: one flight once
    // prepared), cancelled at every poll in turn: no connection is left
    // inside that transaction.
    let as_user = db.with(database::Ctx::default().user(database::UserId::new()));
    let cancelled = cancel_after_every_poll(t, db, |attempt| {
        let (insert, as_user) = (&insert, &as_user);
        async move {
            let mut conn = as_user.conn().await?;
            insert(&mut conn, 1000 + attempt, 1).await.map(|_| ())
        }
    })
    .await;
    // How many polls the statement takes depends on how soon its answer
    // comes; the first attempt is dropped with its flight sent.
    assert!(!cancelled.is_empty(), "never cancelled");
    for _ in 0..4 {
        drop(clean_checkout(db).await);
        let mut conn = as_user.conn().await.unwrap();
        insert(&mut conn, 2000, 1).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_cancelled_at_any_await_point_leaves_nothing_behind_direct() {
    a_call_cancelled_at_any_await_point_leaves_nothing_behind(Path::Direct).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_cancelled_at_any_await_point_leaves_nothing_behind_through_a_pooler() {
    a_call_cancelled_at_any_await_point_leaves_nothing_behind(Path::Pooler).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_cancelled_at_any_await_point_leaves_nothing_behind_through_a_pooler_role_bounded() {
    a_call_cancelled_at_any_await_point_leaves_nothing_behind(Path::PoolerRoleBounded).await;
}
