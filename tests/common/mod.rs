//! TestDb: every test gets its own database, cloned from a template that is
//! migrated once per set of migrations (named by the set's fingerprint), so
//! tests run in parallel against a real PostgreSQL and never see each other's
//! rows. The server is the one `scripts/test` chose (`TEST_DATABASE_URL`;
//! see `server_url`); its database name is ignored.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod any;
pub mod clusters;
pub mod faults;
pub mod tenancy;
pub mod wire;
pub mod workflows;

use database::Conn;
use database::migrate::{self, MigrationSet};
use database::ops::cluster::{BouncerOptions, TempPgBouncer};
use database::{Config, Db, PooledConn};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use tokio::sync::OnceCell;

/// The server the tests use, as a URL without a database name: the one
/// `scripts/test` chose (`TEST_DATABASE_URL`), else `DATABASE_URL`, else the
/// project's own cluster when `db up` started it.
pub fn server_url() -> url::Url {
    let raw = std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| database::db::local::service_url().ok().flatten())
        .expect(
            "no PostgreSQL for the tests: run them with scripts/test (which finds or starts one), \
             or set TEST_DATABASE_URL",
        );
    let mut url = url::Url::parse(&raw).expect("TEST_DATABASE_URL/DATABASE_URL is a URL");
    url.set_path("");
    url
}

/// The URL of database `name` on the test server.
pub fn url_of(name: &str) -> String {
    let mut url = server_url();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A connection to the `postgres` maintenance database.
pub async fn admin_conn() -> Conn {
    Conn::establish(&url_of("postgres"))
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {}: {e}", server_url()))
}

/// The PgBouncer of this test process when `DB_TEST_POOLER=1` (started on
/// first use, in transaction mode in front of the test server, stopped when
/// the process exits).
pub fn pooler() -> Option<&'static TempPgBouncer> {
    static BOUNCER: OnceLock<Option<TempPgBouncer>> = OnceLock::new();
    static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    // Statics are never dropped: stop it when the process exits.
    extern "C" fn stop() {
        let pid = std::sync::atomic::AtomicU32::load(&PID, Ordering::Relaxed);
        if pid != 0 {
            // SAFETY: kill(2) on the PgBouncer this process started, which
            // lives until exit (nothing else reaps it).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
    BOUNCER
        .get_or_init(|| {
            if std::env::var("DB_TEST_POOLER").map_or(true, |v| v != "1") {
                return None;
            }
            let bouncer = start_bouncer().unwrap_or_else(|e| panic!("DB_TEST_POOLER=1: {e}"));
            PID.store(bouncer.pid(), Ordering::Relaxed);
            // SAFETY: registers a plain function without captures.
            unsafe { libc::atexit(stop) };
            Some(bouncer)
        })
        .as_ref()
}

/// The URL of database `name` through `bouncer`, as the test server's user.
pub fn through_bouncer(bouncer: &TempPgBouncer, name: &str) -> String {
    let user = server_url().username().to_owned();
    let user = if user.is_empty() { "postgres" } else { &user };
    bouncer.url_of(user, name)
}

/// Server connections per database of the tests' PgBouncer: fewer than a
/// TestDb's pool (8), so that clients really take turns on them; enough for
/// the widest forced race of the suite (six callers waiting on one lock,
/// plus the watcher).
pub const BOUNCER_POOL_SIZE: usize = 7;

/// A transaction-mode PgBouncer in front of the test server, stopped when
/// dropped.
pub fn start_bouncer() -> database::ops::OpsResult<TempPgBouncer> {
    let server = server_url();
    let mut options = BouncerOptions::transaction_mode(
        server.host_str().unwrap_or("127.0.0.1"),
        server.port().unwrap_or(5432),
    );
    options.users.push(SERVICE_ROLE.to_owned());
    options
        .server_passwords
        .push((SERVICE_ROLE.to_owned(), SERVICE_PASSWORD.to_owned()));
    if let Some(password) = server.password() {
        let user = if server.username().is_empty() {
            "postgres"
        } else {
            server.username()
        };
        options
            .server_passwords
            .push((user.to_owned(), password.to_owned()));
    }
    options.pool_size = BOUNCER_POOL_SIZE as u32;
    TempPgBouncer::start(&options)
}

/// Whether a test that needs `what` should skip (printing why) rather than
/// fail: it fails instead under `DB_TEST_REQUIRE_ALL=1` (CI).
pub fn skip_without(what: &str, why: &dyn std::fmt::Display) -> bool {
    assert!(
        std::env::var("DB_TEST_REQUIRE_ALL").is_err(),
        "{what} is required (DB_TEST_REQUIRE_ALL=1): {why}"
    );
    eprintln!("skipped: {what} is not available here ({why})");
    true
}

/// The role a service logs in as: not a superuser, no BYPASSRLS, owns
/// nothing, so row-level security applies to it (`db setup` creates it).
pub const SERVICE_ROLE: &str = "app";
/// Its password on the test server: set when the template is built, for a
/// server that asks for one (a throwaway cluster of `scripts/test`); a test
/// server is never a cluster whose `app` logs in elsewhere.
pub const SERVICE_PASSWORD: &str = "app-test-password";

/// Polls `check` every 50 ms until it holds, failing the test (naming
/// `what`) after `limit`; returns how long it took.
pub async fn wait_until(
    what: &str,
    limit: std::time::Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    start.elapsed()
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Creates (once, across processes) the migrated template database.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let set = MigrationSet::embedded();
            let name = format!("database_tpl_{}", &set.fingerprint()[..16]);
            let mut admin = admin_conn().await;
            // Several test binaries may start at once: one builds, the rest wait.
            admin
                .batch_execute("SELECT pg_advisory_lock(7364892)")
                .await
                .unwrap();
            if !database_exists(&mut admin, &name).await {
                let building = format!("{name}_building");
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                    .await
                    .unwrap();
                admin
                    .batch_execute(&format!("CREATE DATABASE {building}"))
                    .await
                    .unwrap();
                {
                    let mut conn = Conn::establish(&url_of(&building)).await.unwrap();
                    migrate::run(&mut conn, set)
                        .await
                        .expect("migrating the template");
                    // The service's own role (row-level security applies to
                    // it), granted in the template so every clone has it.
                    database::db::roles::grant_service_role(
                        &mut conn,
                        SERVICE_ROLE,
                        Some(SERVICE_PASSWORD),
                    )
                    .await
                    .expect("granting the service role");
                }
                // Renaming last makes the template appear only when complete.
                admin
                    .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .await
                    .unwrap();
            }
            admin
                .batch_execute("SELECT pg_advisory_unlock(7364892)")
                .await
                .unwrap();
            name
        })
        .await
}

/// Whether database `name` exists on the server `conn` is connected to.
pub async fn database_exists(conn: &mut Conn, name: &str) -> bool {
    use diesel::sql_types::{BigInt, Text};
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Count = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(name)
        .get_result(conn)
        .await
        .unwrap();
    row.n > 0
}

/// A database of one test, dropped when the value is dropped.
pub struct TestDb {
    /// The database's name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// A `Db` (pool of 8) on it.
    pub db: Db,
}

impl TestDb {
    /// A fresh database with every migration applied.
    pub async fn new() -> TestDb {
        let template = template().await;
        Self::create(Some(template), "").await
    }

    /// Like `new`, with `tag` in the database's name (`database_test_<tag>_...`).
    pub async fn new_tagged(tag: &str) -> TestDb {
        let template = template().await;
        Self::create(Some(template), tag).await
    }

    /// A fresh, empty database (no migrations).
    pub async fn empty() -> TestDb {
        Self::create(None, "").await
    }

    async fn create(template: Option<&str>, tag: &str) -> TestDb {
        let name = format!(
            "database_test_{tag}{}{}_{}",
            if tag.is_empty() { "" } else { "_" },
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = admin_conn().await;
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        admin
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let url = url_of(&name);
        let mut config = Config::new(url.clone());
        config.pool_size = 8;
        // DB_TEST_POOLER=1: the test's `Db` goes through a transaction-mode
        // PgBouncer in pooler mode; `url` (direct connections, migrations)
        // still names the server itself.
        if let Some(bouncer) = pooler() {
            config.database_url = through_bouncer(bouncer, &name);
            config.migration_url = Some(url.clone());
            config.pooler = database::db::Pooler::Transaction;
        }
        let db = Db::new(config).unwrap();
        TestDb { name, url, db }
    }

    /// A `Db` (pool of 8) on this database logging in as the service's role
    /// (`SERVICE_ROLE`): what row-level security applies to. Through the test
    /// PgBouncer under `DB_TEST_POOLER=1`, as `db` is.
    pub fn service_db(&self) -> Db {
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_username(SERVICE_ROLE).unwrap();
        url.set_password(Some(SERVICE_PASSWORD)).unwrap();
        let mut config = Config::new(url.to_string());
        config.pool_size = 8;
        config.migration_url = Some(self.url.clone());
        if let Some(bouncer) = pooler() {
            config.database_url = bouncer.url_of(SERVICE_ROLE, &self.name);
            config.pooler = database::db::Pooler::Transaction;
        }
        Db::new(config).unwrap()
    }

    /// A pooled connection.
    pub async fn conn(&self) -> PooledConn {
        self.db.conn().await.expect("pooled connection")
    }

    /// How many rows `table` holds (to prove that nothing was written).
    pub async fn count(&self, table: &str) -> i64 {
        count_rows(&mut *self.conn().await, table).await
    }
}

/// `SELECT count(*) FROM table`.
pub async fn count_rows<C>(conn: &mut C, table: &str) -> i64
where
    C: diesel_async::AsyncConnection<Backend = diesel::pg::Pg>,
{
    use diesel::sql_types::BigInt;
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

impl Drop for TestDb {
    fn drop(&mut self) {
        self.db.close();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which can't block on itself:
        // drop the database from a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut admin = admin_conn().await;
                    admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A new user with this address (and defaults for the rest).
pub async fn user(t: &TestDb, email: &str) -> database::UserId {
    use database::auth::{NewUser, users};
    users::create(
        &mut *t.conn().await,
        &NewUser {
            email: email.to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("creating user {email}: {e}"))
    .id
}

/// A bare tenant row (no members), for tests of tenant-owned data.
pub async fn bare_tenant(conn: &mut database::Conn, slug: &str) -> database::TenantId {
    use database::schema::tenants;
    use diesel::ExpressionMethods;
    let id = database::TenantId::new();
    diesel::insert_into(tenants::table)
        .values((
            tenants::id.eq(id),
            tenants::name.eq(slug),
            tenants::slug.eq(slug),
        ))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("creating tenant {slug}: {e}"));
    id
}

/// The constraint a `Conflict` names; panics on any other result.
pub fn conflict_on(err: &database::Error) -> &str {
    match err {
        database::Error::Conflict { constraint, .. } => constraint,
        other => panic!("expected a conflict, got {other:?}"),
    }
}
