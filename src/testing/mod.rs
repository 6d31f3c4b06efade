//! Test support for services on this crate (feature `testing`): every test
//! gets its own database, cloned in milliseconds from a template that is
//! migrated once per set of migrations, so tests run in parallel against a
//! real PostgreSQL and never see each other's rows.
//!
//! ```no_run
//! use database::Db;
//! use database::auth::{NewUser, users};
//!
//! #[database::test]
//! async fn a_new_user_can_be_found_by_email(db: Db) -> Result<(), database::Error> {
//!     let mut conn = db.conn().await?;
//!     let new = NewUser { email: "ann@example.com".into(), ..Default::default() };
//!     let ann = users::create(&mut conn, &new).await?;
//!     assert_eq!(users::find_by_email(&mut conn, "ann@example.com").await?.id, ann.id);
//!     Ok(())
//! }
//! ```
//!
//! - **The server**: `TEST_DATABASE_URL`, else the project's own cluster
//!   (`.db/`, created and started as `db up` would), else an error saying
//!   how to get one (`server`).
//! - **The template**: `database_tpl_<fingerprint>`, built once among all
//!   the processes that want it (an advisory lock), migrated as the owner,
//!   with the service's role granted; then closed to connections and marked
//!   a template, so cloning never waits for another test's session.
//! - **A test's database**: `database_test_<tag>_<pid>_<n>`, cloned from the
//!   template, commented with the process that made it. It is dropped
//!   (`WITH (FORCE)`) when the test passes, in the background (the process
//!   waits for its drops when it exits), and kept when it fails: the test
//!   prints its name and URL. The clerk's sessions commit without waiting
//!   for the disk (`synchronous_commit = off`): a test's database needs no
//!   durability. `db test-db clean` drops what failed or
//!   crashed tests left, and the templates of old migration sets; it leaves
//!   the databases of tests still running alone.
//! - **The role**: `Db` (what `#[database::test]` hands a test) logs in as
//!   the service's role (`app`: no superuser, no BYPASSRLS), so row-level
//!   security applies exactly as in production; `TestDb::owner` is the
//!   template's owner, for setting up rows across tenants.
//! - **Pooler mode**: with `DB_POOLER=transaction` (or `DB_TEST_POOLER=1`)
//!   every test's `Db` goes through a throwaway transaction-mode PgBouncer,
//!   in pooler mode.
//! - **SQLite**: `SqliteTestDb`, a file copied from a migrated template
//!   file with `VACUUM INTO`.
//! - **Rows**: `fixtures` builds users, tenants with members, workflows with
//!   executions and chats with messages through the domains' own functions.
//!
//! One file, though long: `TestDb`, the template it is cloned from and the
//! clerk that drops finished databases share one life cycle (created under
//! the template lock, dropped in the background, waited for at exit), read in
//! the order a test meets them.

mod clean;
pub mod fixtures;
mod server;
mod sqlite;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use diesel_async::{AsyncConnection, SimpleAsyncConnection};

pub use clean::{CleanReport, clean};

/// Removes this OS user's SQLite test files of processes that no longer
/// run (what `clean` also does); their paths.
pub fn clean_sqlite() -> Vec<String> {
    sqlite::remove_leftovers()
}
pub use server::{
    POOLER_POOL_SIZE, SERVICE_PASSWORD, Server, existing_server, pooler, pooler_mode, server,
    start_bouncer, try_server,
};
pub use sqlite::SqliteTestDb;

use crate::db::Pooler;
use crate::db::local::SERVICE_ROLE;
use crate::migrate::MigrationSet;
use crate::{Config, Conn, Ctx, Db, PooledConn};

/// The prefix of every test database's name (what `db test-db clean` looks for).
pub const TEST_PREFIX: &str = "database_test_";
/// The prefix of every template's name.
pub const TEMPLATE_PREFIX: &str = "database_tpl_";
/// What the comment of a test database starts with (`pid=... host=... template=...` follows).
const COMMENT_MARK: &str = "database::testing";

/// How a test's database is made.
#[derive(Clone, Copy)]
pub struct Options {
    set: &'static MigrationSet,
    expect_panic: bool,
}

impl Default for Options {
    /// The crate's embedded migrations.
    fn default() -> Self {
        Options {
            set: MigrationSet::embedded(),
            expect_panic: false,
        }
    }
}

impl Options {
    /// A service's own set (the crate's migrations and its own): the
    /// template is named by its fingerprint, so each set has its own.
    pub fn migrations(set: &'static MigrationSet) -> Options {
        Options {
            set,
            ..Options::default()
        }
    }

    /// A `#[should_panic]` test: its panic is the pass, so its database is
    /// dropped then (and kept when it returns normally, its failure).
    pub fn expect_panic(mut self) -> Options {
        self.expect_panic = true;
        self
    }
}

/// What a test function may return: `()`, or a `Result` whose error is shown.
pub trait Outcome {
    /// Whether the test failed (without consuming the outcome).
    fn is_failure(&self) -> bool;
    /// `None` when the test passed, else why it failed.
    fn failure(self) -> Option<String>;
}

impl Outcome for () {
    fn is_failure(&self) -> bool {
        false
    }

    fn failure(self) -> Option<String> {
        None
    }
}

impl<E: std::fmt::Debug> Outcome for Result<(), E> {
    fn is_failure(&self) -> bool {
        self.is_err()
    }

    fn failure(self) -> Option<String> {
        self.err()
            .map(|e| format!("the test returned an error: {e:?}"))
    }
}

/// What `#[database::test]` expands to: builds a runtime, gives `test` a
/// fresh database, and keeps the database (printing where it is) when the
/// test panics or returns an error; drops it otherwise.
pub fn run<R: Outcome>(name: &str, options: Options, test: impl AsyncFnOnce(&TestDb) -> R) {
    runtime().block_on(async {
        let t = TestDb::create(Some(options.set), &tag_of(name)).await;
        judge(t, options, test).await
    })
}

/// `run` for a test that needs SQLite only (no PostgreSQL server).
pub fn run_sqlite<R: Outcome>(
    name: &str,
    options: Options,
    test: impl AsyncFnOnce(&SqliteTestDb) -> R,
) {
    let _ = name;
    runtime().block_on(async { judge(SqliteTestDb::new().await, options, test).await })
}

/// A test's database of either backend, which a failed test keeps.
trait Keep {
    fn keep(&self);
}

impl Keep for TestDb {
    fn keep(&self) {
        TestDb::keep(self)
    }
}

impl Keep for SqliteTestDb {
    fn keep(&self) {
        SqliteTestDb::keep(self)
    }
}

/// Runs `test` on `t`, keeps `t` when the test failed (a panic, unless one
/// was expected; an error returned; no panic where one was expected), and
/// fails the test the same way.
async fn judge<T: Keep, R: Outcome>(t: T, options: Options, test: impl AsyncFnOnce(&T) -> R) {
    let failure =
        match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(test(&t))).await {
            Ok(outcome) => outcome.failure(),
            Err(panic) => {
                if !options.expect_panic {
                    t.keep();
                }
                drop(t);
                std::panic::resume_unwind(panic);
            }
        };
    if failure.is_some() || options.expect_panic {
        t.keep();
    }
    if let Some(failure) = failure {
        panic!("{failure}");
    }
}

/// One worker, but the multi-threaded kind: a SQLite call cut off by its
/// deadline waits for its running statement with `block_in_place`, which
/// panics on a current-thread runtime.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the test")
}

/// A short tag for a database's name from a test's path: its last segment,
/// in the characters an unquoted identifier allows, at most 24.
fn tag_of(name: &str) -> String {
    let last = name.rsplit("::").next().unwrap_or(name);
    last.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(24)
        .collect()
}

/// The database of one test, dropped when the value is dropped, unless the
/// test failed (see `keep`).
pub struct TestDb {
    /// The database's name.
    pub name: String,
    /// Its URL as the owner.
    pub url: String,
    /// A `Db` (pool of 8) on it as the owner of the tables: it bypasses
    /// row-level security, for setting up rows across tenants. Tests of what
    /// the service sees use `service_db`.
    pub owner: Db,
    service: OnceLock<Db>,
    kept: std::sync::atomic::AtomicBool,
    /// The rows of `tenant_ctx` (their own seed: a test's `Fixtures` never
    /// collide with them).
    rows: fixtures::Fixtures,
}

/// The seed of the tenants `tenant_ctx` makes.
const CTX_SEED: u64 = 0x7e57;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    /// A fresh database with the crate's migrations applied.
    pub async fn new() -> TestDb {
        Self::create(Some(MigrationSet::embedded()), "").await
    }

    /// A fresh database with `set` applied (a service's own migrations).
    pub async fn with_migrations(set: &'static MigrationSet) -> TestDb {
        Self::create(Some(set), "").await
    }

    /// Like `new`, with `tag` in the database's name (`database_test_<tag>_...`).
    pub async fn new_tagged(tag: &str) -> TestDb {
        Self::create(Some(MigrationSet::embedded()), &tag_of(tag)).await
    }

    /// A fresh, empty database (no migrations).
    pub async fn empty() -> TestDb {
        Self::create(None, "").await
    }

    async fn create(set: Option<&'static MigrationSet>, tag: &str) -> TestDb {
        let server = server();
        // The process id tells `db test-db clean` whose it is; the random
        // part keeps a name from an earlier run with the same process id
        // (containers) from colliding with a kept database.
        let name = format!(
            "{TEST_PREFIX}{tag}{}{:04x}_{}_{}",
            if tag.is_empty() { "" } else { "_" },
            rand::random::<u16>(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut attempt = 0;
        loop {
            let template = match set {
                Some(set) => Some(template(set).await),
                None => None,
            };
            match create_database(&name, template.as_deref()).await {
                Ok(()) => break,
                // The template vanished meanwhile (another checkout's
                // `db test-db clean`): build it again, once.
                Err(e) if template.is_some() && e.contains("does not exist") && attempt == 0 => {
                    forget_templates();
                    attempt += 1;
                }
                Err(e) => panic!("creating the test's database: {e}"),
            }
        }
        let url = server.url_of(&name);
        let mut config = Config::new(url.clone());
        config.pool_size = 8;
        // Pooler mode: the `Db` goes through the tests' PgBouncer; `url`
        // (direct connections, migrations) still names the server itself.
        if let Some(bouncer) = pooler() {
            config.database_url = bouncer.url_of(server.owner(), &name);
            config.migration_url = Some(url.clone());
            config.pooler = Pooler::Transaction;
        }
        let owner = Db::new(config).unwrap_or_else(|e| panic!("a Db on {name}: {e}"));
        TestDb {
            name,
            url,
            owner,
            service: OnceLock::new(),
            kept: false.into(),
            rows: fixtures::Fixtures::new(CTX_SEED),
        }
    }

    /// A `Db` (pool of 8) on this database logging in as the service's role
    /// (`app`: no superuser, no BYPASSRLS), which row-level security applies
    /// to: what a service's pool is. Through the tests' PgBouncer in pooler
    /// mode, as `owner` is. Clones share one pool.
    pub fn service_db(&self) -> Db {
        self.service
            .get_or_init(|| {
                let server = server();
                let mut config = Config::new(server.service_url_of(&self.name));
                config.pool_size = 8;
                config.migration_url = Some(self.url.clone());
                if let Some(bouncer) = pooler() {
                    config.database_url = bouncer.url_of(SERVICE_ROLE, &self.name);
                    config.pooler = Pooler::Transaction;
                }
                Db::new(config).unwrap_or_else(|e| panic!("a service Db on {}: {e}", self.name))
            })
            .clone()
    }

    /// The URL of this database as the service's role.
    pub fn service_url(&self) -> String {
        server().service_url_of(&self.name)
    }

    /// A pooled connection as the owner.
    pub async fn conn(&self) -> PooledConn {
        self.owner.conn().await.expect("pooled connection")
    }

    /// How many rows `table` holds, counted as the owner (to prove that
    /// nothing was written).
    pub async fn count(&self, table: &str) -> i64 {
        count_rows(&mut *self.conn().await, table).await
    }

    /// The context of a new tenant (`fixtures::tenant()`) acting as its owner.
    pub async fn tenant_ctx(&self) -> Ctx {
        self.rows.tenant().create(self).await.ctx()
    }

    /// Keeps the database after this value is dropped, and prints its name
    /// and URL: what a failing test does, so that its rows can be looked at.
    pub fn keep(&self) {
        if !self.kept.swap(true, Ordering::Relaxed) {
            // The URL without its password (test output lands in CI logs):
            // it is TEST_DATABASE_URL's, or the project cluster's
            // (.db/secrets.toml, in the URL `db up --print-url` prints).
            eprintln!(
                "database::testing: kept the failed test's database {name}\n  \
                 URL: {url} (the password: TEST_DATABASE_URL's, or `db up --print-url`'s)\n  \
                 look at it: DATABASE_URL=<that URL> db studio\n  \
                 drop it and the other leftovers: db test-db clean",
                name = self.name,
                url = crate::db::redact_url(&self.url)
            );
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // A panic unwinding through a test that holds the value: keep it.
        if std::thread::panicking() {
            self.keep();
        }
        self.owner.close();
        if let Some(service) = self.service.get() {
            service.close();
        }
        if self.kept.load(Ordering::Relaxed) {
            return;
        }
        // The clerk drops it while the test's thread goes on (its runtime
        // and connections end meanwhile); the process waits for every
        // pending drop when it exits, so a passing test leaves nothing.
        let name = self.name.clone();
        drops::started();
        drop(server::clerk(async move {
            let result = admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            if let Err(e) = result {
                eprintln!("warning: could not drop test database {name}: {e}");
            }
            drops::finished();
        }));
    }
}

/// The drops the clerk has not finished, waited for at exit.
mod drops {
    use std::sync::{Condvar, Mutex, Once};
    use std::time::{Duration, Instant};

    static PENDING: Mutex<usize> = Mutex::new(0);
    static DONE: Condvar = Condvar::new();

    pub(super) fn started() {
        static AT_EXIT: Once = Once::new();
        // SAFETY: registers a plain function without captures.
        AT_EXIT.call_once(|| unsafe {
            libc::atexit(wait);
        });
        *PENDING.lock().unwrap() += 1;
    }

    pub(super) fn finished() {
        *PENDING.lock().unwrap() -= 1;
        DONE.notify_all();
    }

    /// At exit: until every drop is done (at most a minute: a server that
    /// went away leaves the databases to `db test-db clean`).
    extern "C" fn wait() {
        if !wait_for(Duration::from_secs(60)) {
            eprintln!(
                "warning: {} test database(s) not dropped yet: `db test-db clean` drops them",
                *PENDING.lock().unwrap_or_else(|e| e.into_inner())
            );
        }
    }

    /// Waits until no drop is pending, at most `limit`; whether none is.
    pub(super) fn wait_for(limit: Duration) -> bool {
        let until = Instant::now() + limit;
        let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        while *pending > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pending = DONE
                .wait_timeout(pending, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Waits (blocking the thread, at most `limit`) until the databases of the
/// tests that passed so far are dropped; whether they are. A process waits
/// for them at exit anyway: this is for a test that counts databases.
pub fn wait_for_drops(limit: std::time::Duration) -> bool {
    drops::wait_for(limit)
}

/// `SELECT count(*) FROM table`.
pub async fn count_rows<C>(conn: &mut C, table: &str) -> i64
where
    C: AsyncConnection<Backend = diesel::pg::Pg>,
{
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
        .get_result::<Count>(conn)
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e}"))
        .n
}

/// The owner's connections to the `postgres` database that the clerk keeps
/// (a free list: creates and drops of parallel tests run side by side).
static ADMIN: tokio::sync::Mutex<Vec<Conn>> = tokio::sync::Mutex::const_new(Vec::new());

/// Runs `work` on one of the clerk's connections (opened when none is free;
/// one that failed is not kept).
async fn with_admin<T>(
    work: impl AsyncFnOnce(&mut Conn) -> Result<T, String>,
) -> Result<T, String> {
    let free = ADMIN.lock().await.pop();
    let mut conn = match free {
        Some(conn) => conn,
        None => {
            let server = server();
            let mut conn = Conn::establish(&server.url_of("postgres"))
                .await
                .map_err(|e| format!("cannot reach the test server at {}: {e}", server.url))?;
            // A test's database needs no durability: its CREATE and
            // COMMENT need not wait for the WAL to reach the disk.
            conn.batch_execute("SET synchronous_commit = off")
                .await
                .map_err(|e| e.to_string())?;
            conn
        }
    };
    let result = work(&mut conn).await;
    if result.is_ok() {
        ADMIN.lock().await.push(conn);
    }
    result
}

/// Runs `sql` on one of the clerk's connections to the maintenance database.
async fn admin(sql: String) -> Result<(), String> {
    with_admin(async |conn| {
        conn.batch_execute(&sql)
            .await
            .map_err(|e| format!("{sql}: {e}"))
    })
    .await
}

/// Runs `work` on the clerk and waits for it from the caller's runtime.
async fn on_clerk<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    server::clerk(work)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Creates the test's database from `template` (or empty), commented with
/// the process that owns it (`db test-db clean` reads it). A template that
/// vanished meanwhile (another checkout's `db test-db clean`) is built again.
async fn create_database(name: &str, template: Option<&str>) -> Result<(), String> {
    let name = name.to_owned();
    let template = template.map(str::to_owned);
    on_clerk(async move {
        let from = template
            .as_deref()
            .map_or(String::new(), |t| format!(" TEMPLATE {t}"));
        admin(format!("CREATE DATABASE {name}{from}")).await?;
        let comment = clean::Owner::mine(template.as_deref()).comment();
        admin(format!("COMMENT ON DATABASE {name} IS '{comment}'")).await
    })
    .await
}

/// The advisory lock held while templates are built (and dropped by `clean`).
pub(crate) const TEMPLATE_LOCK: i64 = 7364892;

/// What the harness does to a template besides migrating it (the service
/// role's grants): part of the template's name, so that a change to it
/// builds new templates instead of reusing stale ones.
const TEMPLATE_RECIPE: &str = "v1: migrations, then grant_service_role";

/// The name of the template of `set`: from the migrations' fingerprint, the
/// recipe above and the service role.
pub fn template_name(set: &MigrationSet) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(set.fingerprint());
    digest.update(TEMPLATE_RECIPE);
    digest.update(SERVICE_ROLE);
    format!("{TEMPLATE_PREFIX}{}", &hex::encode(digest.finalize())[..16])
}

/// The templates this process has seen, by fingerprint.
fn templates() -> &'static Mutex<HashMap<String, String>> {
    static TEMPLATES: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    TEMPLATES.get_or_init(Default::default)
}

fn forget_templates() {
    templates().lock().unwrap().clear();
}

/// The name of the migrated template of `set`, built when missing: one
/// process builds it (an advisory lock) while the others wait.
async fn template(set: &'static MigrationSet) -> String {
    // One build at a time in this process (the advisory lock below is
    // re-entrant for a session, and the clerk's sessions are reused).
    static BUILDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let fingerprint = set.fingerprint();
    if let Some(name) = templates().lock().unwrap().get(&fingerprint) {
        return name.clone();
    }
    let _building = BUILDING.lock().await;
    if let Some(name) = templates().lock().unwrap().get(&fingerprint) {
        return name.clone();
    }
    let name = template_name(set);
    let built = name.clone();
    on_clerk(async move {
        build_template(set, &built)
            .await
            .unwrap_or_else(|e| panic!("building the test template {built}: {e}"))
    })
    .await;
    templates()
        .lock()
        .unwrap()
        .insert(fingerprint, name.clone());
    name
}

async fn build_template(set: &'static MigrationSet, name: &str) -> Result<(), String> {
    let server = server();
    with_admin(async |admin| {
        let sql = async |admin: &mut Conn, sql: String| {
            admin
                .batch_execute(&sql)
                .await
                .map_err(|e| format!("{sql}: {e}"))
        };
        // Several test processes may start at once: one builds, the rest
        // wait (and `db test-db clean` waits before it drops templates).
        sql(admin, format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})")).await?;
        let result = async {
            if !database_exists(admin, name).await? {
                let building = format!("{name}_building");
                sql(
                    admin,
                    format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
                )
                .await?;
                sql(admin, format!("CREATE DATABASE {building}")).await?;
                {
                    let mut conn = Conn::establish(&server.url_of(&building))
                        .await
                        .map_err(|e| e.to_string())?;
                    crate::migrate::run(&mut conn, set)
                        .await
                        .map_err(|e| format!("migrating: {e}"))?;
                    // The service's own role, granted in the template so every
                    // clone has it; its password is set only on a server whose
                    // record does not know it.
                    let password =
                        (!server.password_is_the_clusters).then_some(&*server.service_password);
                    crate::db::roles::grant_service_role(&mut conn, SERVICE_ROLE, password)
                        .await
                        .map_err(|e| format!("granting the service role: {e}"))?;
                }
                // Renaming last makes the template appear only when complete.
                sql(admin, format!("ALTER DATABASE {building} RENAME TO {name}")).await?;
            }
            // Closed to connections: cloning fails while anyone is connected
            // to the source, and nobody needs to be.
            sql(
                admin,
                format!("ALTER DATABASE {name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"),
            )
            .await
        }
        .await;
        sql(admin, format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})")).await?;
        result
    })
    .await
}

/// Whether database `name` exists on the server `conn` is connected to.
pub async fn database_exists(conn: &mut Conn, name: &str) -> Result<bool, String> {
    use diesel::sql_types::{BigInt, Text};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Count = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(name)
        .get_result(conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.n > 0)
}
