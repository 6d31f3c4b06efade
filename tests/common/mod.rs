//! What the crate's own tests share beyond the public test support
//! (`database::testing`: `TestDb`, the template, the server, the pooler):
//! the server's maintenance connection, the tests' PgBouncer launched by
//! hand, skipping what a laptop may lack, and a few rows and assertions.
#![allow(dead_code, unused_imports)]

pub mod any;
pub mod clusters;
pub mod faults;
pub mod tenancy;
pub mod wire;
pub mod workflows;

use database::Conn;
use database::ops::cluster::TempPgBouncer;
pub use database::testing::{TestDb, count_rows, pooler};
use diesel_async::{AsyncConnection, RunQueryDsl};

/// The test server as a URL without a database name (`database::testing::server`).
pub fn server_url() -> url::Url {
    let mut url = url::Url::parse(&database::testing::server().url_of("postgres")).unwrap();
    url.set_path("");
    url
}

/// The URL of database `name` on the test server, as its owner.
pub fn url_of(name: &str) -> String {
    database::testing::server().url_of(name)
}

/// A connection to the `postgres` maintenance database.
pub async fn admin_conn() -> Conn {
    Conn::establish(&url_of("postgres"))
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {}: {e}", server_url()))
}

/// The role the tests log in to the test server as (the URL's user, else
/// `postgres`).
pub fn server_login() -> String {
    let user = server_url().username().to_owned();
    if user.is_empty() {
        "postgres".to_owned()
    } else {
        user
    }
}

/// Bounds the login role's statements in `t`'s database on the server, as
/// `db setup` bounds the service role's (`bound_service_role`): pooler mode
/// then sends a statement outside a transaction alone. Before the pooler
/// opens a server connection to the database: a connection takes its
/// role's defaults when it logs in.
pub async fn bound_login_role(t: &TestDb, query_timeout: std::time::Duration) {
    database::db::roles::bound_service_role(
        &mut *t.conn().await,
        &server_login(),
        &t.name,
        query_timeout,
    )
    .await
    .unwrap();
}

/// The URL of database `name` through `bouncer`, as the test server's owner.
pub fn through_bouncer(bouncer: &TempPgBouncer, name: &str) -> String {
    bouncer.url_of(&server_login(), name)
}

/// Server connections per database of the tests' PgBouncer.
pub const BOUNCER_POOL_SIZE: usize = database::testing::POOLER_POOL_SIZE;

/// A transaction-mode PgBouncer in front of the test server (owner and
/// service role), stopped when dropped.
pub fn start_bouncer() -> database::ops::OpsResult<TempPgBouncer> {
    database::testing::start_bouncer(BOUNCER_POOL_SIZE)
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
pub const SERVICE_ROLE: &str = database::db::local::SERVICE_ROLE;

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

/// Whether database `name` exists on the server `conn` is connected to.
pub async fn database_exists(conn: &mut Conn, name: &str) -> bool {
    database::testing::database_exists(conn, name)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
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

/// A `tracing` writer that keeps what it is given.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Captures, on this thread until the guard drops, the `tracing` events
    /// that `filter` (an `EnvFilter` directive) lets through, as plain text.
    pub fn install(filter: &str) -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
