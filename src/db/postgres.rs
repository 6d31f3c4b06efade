//! `Db`: the handle of a PostgreSQL database. It owns the pools (the
//! primary, each replica, and the escape hatch's system pool, built on first
//! use), the configuration and one request context, and decides which pool
//! serves a call; a repository function never chooses.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use diesel_async::RunQueryDsl;

use super::config::{Config, Pooler};
use super::connection::ConnectionSettings;
use super::ctx::Ctx;
use super::pg_conn::{PgConn, Route, Scope};
use super::pool::{self, Health, PgPool, PoolStatus, PooledConn};
use super::replicas::{self, ReadSource, ReplicaStatus, Replicas, WalPosition};
use super::roles::RoleCheck;
use crate::error::{Error, Result};

/// The data layer's handle on PostgreSQL: the pools and the configuration,
/// and the context its calls run in (`with`). Cheap to clone; clones share
/// the pools.
#[derive(Clone)]
pub struct Db {
    shared: Arc<Shared>,
    ctx: Ctx,
    /// The context's settings (`SET LOCAL ROLE`, `set_config` of the tenant
    /// and the user), rendered once per `with`.
    settings: Option<Arc<str>>,
    /// The context's sqlcommenter comment, when `DB_SQLCOMMENTER` is on and
    /// it has a trace parent.
    comment: Option<Arc<str>>,
}

struct Shared {
    pool: PgPool,
    /// Read replicas and what is known of their lag (`None` without any).
    replicas: Option<Arc<Replicas>>,
    /// The escape hatch's pool (`Ctx::system`), opened on first use.
    system: OnceLock<PgPool>,
    config: Config,
    /// Whether the service's login would bypass row-level security, found
    /// out on the first call with a tenant.
    roles: tokio::sync::OnceCell<RoleCheck>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("config", &self.shared.config)
            .field("pool", &self.shared.pool.status())
            .field("ctx", &self.ctx)
            .finish()
    }
}

impl Db {
    /// Builds the pools. No connection is opened until one is needed, so
    /// this succeeds while the server is down; `migrate` or `health` will
    /// tell. A SQLite URL is refused: that is `SqliteDb` (or `AnyDb`, for a
    /// service whose every domain is portable).
    pub fn new(config: Config) -> Result<Self> {
        if super::sqlite::is_sqlite_url(&config.database_url) {
            return Err(Error::Unsupported(format!(
                "DATABASE_URL names a SQLite database ({}), and Db is PostgreSQL's handle: use \
                 database::SqliteDb (the auth and settings domains) or database::AnyDb (either, \
                 chosen by the URL)",
                config.database_url
            )));
        }
        config.validate()?;
        let settings = ConnectionSettings::from_config(&config);
        let pool = pool::build(
            &config,
            settings.clone(),
            &config.database_url,
            config.pool_size,
            "primary",
        )?;
        let mut replica_pools = Vec::with_capacity(config.replica_urls.len());
        for (i, url) in config.replica_urls.iter().enumerate() {
            // Named by position in DB_REPLICA_URLS: unique, low-cardinality,
            // and no host names in metric labels.
            let name = format!("replica-{}", i + 1);
            let replica = pool::build(&config, settings.clone(), url, config.pool_size, &name)?;
            replica_pools.push((url.clone(), replica));
        }
        let replicas = Replicas::start(&config, &pool, replica_pools);
        let settings = super::roles::settings_sql(&Ctx::default(), config.app_role.as_deref());
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                replicas,
                system: OnceLock::new(),
                config,
                roles: tokio::sync::OnceCell::new(),
            }),
            ctx: Ctx::default(),
            settings: settings.map(Arc::from),
            comment: None,
        })
    }

    /// `Config::from_env` then `Db::new`.
    pub fn from_env() -> Result<Self> {
        Self::new(Config::from_env()?)
    }

    /// The same pools, with every call made in `ctx`: its tenant and user
    /// set per transaction (row-level security), its deadline on every call,
    /// its span as the parent of the query spans. Cheap (a few reference
    /// counts); build one per request.
    pub fn with(&self, ctx: Ctx) -> Db {
        // The handler's span parents the query spans even when the calls
        // run outside it (a spawned task, a stream polled later).
        let ctx = match ctx.span() {
            None if !tracing::Span::current().is_none() => ctx.trace(tracing::Span::current()),
            _ => ctx,
        };
        let settings = super::roles::settings_sql(&ctx, self.shared.config.app_role.as_deref());
        let comment = ctx
            .trace_parent()
            .filter(|_| self.shared.config.sqlcommenter)
            .map(|tp| tp.comment());
        Db {
            shared: self.shared.clone(),
            ctx,
            settings: settings.map(Arc::from),
            comment,
        }
    }

    /// The context this handle's calls run in.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The configuration this `Db` was built with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The moment a call starts, and its deadline: one clock read.
    fn start(&self) -> (Instant, Instant) {
        let now = Instant::now();
        let own = now + self.shared.config.query_timeout;
        (now, self.ctx.deadline_at().map_or(own, |d| d.min(own)))
    }

    /// The scope a connection serving this handle's calls enters.
    fn scope(&self) -> Scope {
        let config = &self.shared.config;
        Scope {
            settings: self.settings.clone(),
            deadline: self.ctx.deadline_at(),
            per_statement: Some(config.query_timeout),
            local_timeouts: self.ctx.deadline_at().is_some()
                || config.pooler == Pooler::Transaction,
            read_only: false,
            parent: self.ctx.span().cloned(),
            route: Route::Requested,
            comment: self.comment.clone(),
            system_reason: self.ctx.system_reason(),
        }
    }

    /// The scope of a replica's connection: the same, read-only, and each
    /// statement bounded by `DB_REPLICA_READ_TIMEOUT_MS` too.
    fn replica_scope(&self, route: Route) -> Scope {
        let config = &self.shared.config;
        Scope {
            read_only: true,
            route,
            per_statement: Some(config.query_timeout.min(config.replica_read_timeout)),
            ..self.scope()
        }
    }

    /// Checks a connection out of the pool, in this handle's context. Waits
    /// at most the pool wait timeout and the call's deadline; a full pool, a
    /// refused connection or a server that is down give `Error::Unavailable`
    /// (nothing was sent: retryable).
    pub async fn conn(&self) -> Result<PooledConn> {
        let config = &self.shared.config;
        if let Some(reason) = self.ctx.system_reason() {
            tracing::info!(target: "database::system", reason, "cross-tenant access through the system pool");
            let pool = self.system_pool()?;
            return pool::checkout(
                pool,
                config,
                config.system_url(),
                self.start(),
                self.scope(),
            )
            .await;
        }
        self.check_roles().await?;
        pool::checkout(
            &self.shared.pool,
            config,
            &config.database_url,
            self.start(),
            self.scope(),
        )
        .await
    }

    /// Runs `f` in one transaction on a connection of this handle (see
    /// `conn`): committed when `f` returns `Ok`, rolled back otherwise.
    /// Failures follow the call contract (README, "What a failure means").
    ///
    /// ```no_run
    /// # async fn f(db: &database::Db, t: database::TenantId) -> database::Result<()> {
    /// use database::Ctx;
    /// use database::tenancy::{tenant_activity, tenants};
    /// let db = db.with(Ctx::tenant(t));
    /// let (tenant, activity) = db
    ///     .transaction(async |conn| {
    ///         let tenant = tenants::find(conn, t).await?;
    ///         let activity = tenant_activity::list(conn, t, None, 20).await?;
    ///         Ok((tenant, activity))
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T>(&self, f: impl AsyncFnOnce(&mut PgConn) -> Result<T>) -> Result<T> {
        let mut conn = self.conn().await?;
        super::any::in_transaction(&mut *conn, f).await
    }

    /// Runs `f` on a connection of this handle (see `conn`), without opening
    /// a transaction: a shorthand for `conn` and a call.
    pub async fn run<T>(&self, f: impl AsyncFnOnce(&mut PgConn) -> Result<T>) -> Result<T> {
        let mut conn = self.conn().await?;
        f(&mut conn).await
    }

    /// Runs the read `f` on a healthy replica within `DB_REPLICA_MAX_LAG_MS`
    /// when there is one, else on the primary. When the replica fails to
    /// answer (a statement longer than `DB_REPLICA_READ_TIMEOUT_MS`, a lost
    /// connection, a query cancelled by replay), `f` runs again on the
    /// primary and the replica leaves routing until the monitor sees it
    /// answer: a stalled replica costs a read at most that bound, never an
    /// error. `f` may therefore run twice; on a replica it cannot write.
    ///
    /// ```no_run
    /// # async fn f(db: &database::Db, id: database::UserId) -> database::Result<()> {
    /// use database::auth::users;
    /// let user = db.read_run(async |conn| users::find(conn, id).await).await?;
    /// # Ok(()) }
    /// ```
    pub async fn read_run<T>(&self, f: impl AsyncFn(&mut PgConn) -> Result<T>) -> Result<T> {
        self.read_run_on(None, f).await
    }

    /// `read_run` guaranteed to see everything committed before `position`
    /// (from `wal_position`): on a replica that has replayed it, else on the
    /// primary.
    pub async fn read_run_after<T>(
        &self,
        position: WalPosition,
        f: impl AsyncFn(&mut PgConn) -> Result<T>,
    ) -> Result<T> {
        self.read_run_on(Some(position), f).await
    }

    async fn read_run_on<T>(
        &self,
        after: Option<WalPosition>,
        f: impl AsyncFn(&mut PgConn) -> Result<T>,
    ) -> Result<T> {
        self.check_roles().await?;
        let mut why = self.primary_reason();
        if let Some(replicas) = &self.shared.replicas
            && why == Route::NoReplicaReady
        {
            let replica = match after {
                None => replicas.read().await,
                Some(position) => {
                    replicas
                        .read_after(position, self.shared.config.replica_read_timeout)
                        .await
                }
            };
            if let Some((conn, source)) = replica {
                let route = match after {
                    None => Route::ReplicaRead,
                    Some(_) => Route::ReplicaCaughtUp,
                };
                let mut conn = PooledConn::new(conn, self.replica_scope(route));
                match f(&mut conn).await {
                    Err(e) if replica_did_not_answer(&e) => {
                        // Nothing a replica runs commits: running the read
                        // again elsewhere is safe.
                        replicas.mark_down(&source, &e);
                        why = Route::ReplicaFailed;
                    }
                    done => return done,
                }
            }
        }
        let mut conn = self.primary_for_read(why).await?;
        f(&mut conn).await
    }

    /// Why a read would run on the primary if no replica serves it: none is
    /// configured, the context is `Ctx::system`, or (when a replica may
    /// serve it) none was ready.
    fn primary_reason(&self) -> Route {
        if self.shared.replicas.is_none() {
            Route::NoReplicas
        } else if self.ctx.system_reason().is_some() {
            Route::SystemContext
        } else {
            Route::NoReplicaReady
        }
    }

    /// A primary connection for a read, its spans saying why.
    async fn primary_for_read(&self, why: Route) -> Result<PooledConn> {
        let mut conn = self.conn().await?;
        conn.set_route(why);
        Ok(conn)
    }

    /// What the replica monitor knows of each replica now (empty without
    /// replicas): for health endpoints and operators.
    pub fn replica_status(&self) -> Vec<ReplicaStatus> {
        self.shared
            .replicas
            .as_ref()
            .map(|r| r.status())
            .unwrap_or_default()
    }

    /// A connection for reads: from a healthy replica within
    /// `DB_REPLICA_MAX_LAG_MS` when there is one, else from the primary.
    /// Reads on it may be up to that lag behind; use `read_after` to see a
    /// write of your own. Replicas are read-only: a repository function that
    /// writes fails there (`Error::Database` with `ReadOnlyTransaction`).
    /// Each statement on a replica must answer within
    /// `DB_REPLICA_READ_TIMEOUT_MS` (`Error::Timeout`, nothing written);
    /// `read_run` instead moves such a read to the primary.
    pub async fn read(&self) -> Result<PooledConn> {
        Ok(self.read_from().await?.0)
    }

    /// `read`, also saying where the connection came from.
    pub async fn read_from(&self) -> Result<(PooledConn, ReadSource)> {
        self.check_roles().await?;
        let why = self.primary_reason();
        if let Some(replicas) = &self.shared.replicas
            && why == Route::NoReplicaReady
            && let Some((conn, source)) = replicas.read().await
        {
            let conn = PooledConn::new(conn, self.replica_scope(Route::ReplicaRead));
            return Ok((conn, source));
        }
        Ok((self.primary_for_read(why).await?, ReadSource::Primary))
    }

    /// The primary's WAL position now. Taken after a write has committed, it
    /// is a read-your-writes token: `read_after(position)` sees that write.
    pub async fn wal_position(&self) -> Result<WalPosition> {
        let mut conn = self.conn().await?;
        replicas::insert_position(&mut conn, self.shared.replicas.as_deref()).await
    }

    /// A connection guaranteed to see everything committed before
    /// `position` (from `wal_position`): a replica that has replayed it, else
    /// the primary.
    pub async fn read_after(&self, position: WalPosition) -> Result<(PooledConn, ReadSource)> {
        self.check_roles().await?;
        let why = self.primary_reason();
        if let Some(replicas) = &self.shared.replicas
            && why == Route::NoReplicaReady
            && let Some((conn, source)) = replicas
                .read_after(position, self.shared.config.replica_read_timeout)
                .await
        {
            let conn = PooledConn::new(conn, self.replica_scope(Route::ReplicaCaughtUp));
            return Ok((conn, source));
        }
        Ok((self.primary_for_read(why).await?, ReadSource::Primary))
    }

    /// Opens a connection outside the pool, set up like pooled ones, to `url`.
    pub async fn connect_direct(&self, url: &str) -> Result<PgConn> {
        super::connect(&self.shared.config, url).await
    }

    /// Checks that the database answers, and measures how fast.
    pub async fn health(&self) -> Result<Health> {
        use diesel::IntoSql as _;
        let start = Instant::now();
        let mut conn = self.conn().await?;
        diesel::select(1.into_sql::<diesel::sql_types::Integer>())
            .execute(&mut conn)
            .await?;
        let latency = start.elapsed();
        drop(conn);
        Ok(Health {
            latency,
            pool: self.pool_status(),
        })
    }

    /// The primary pool's numbers now.
    pub fn pool_status(&self) -> PoolStatus {
        self.shared.pool.status().into()
    }

    /// Closes every idle connection and refuses new checkouts, on every pool.
    pub fn close(&self) {
        self.shared.pool.close();
        if let Some(system) = self.shared.system.get() {
            system.close();
        }
        if let Some(replicas) = &self.shared.replicas {
            replicas.close();
        }
    }

    /// The escape hatch's pool, built on first use (small: maintenance,
    /// seeding and the admin domain, not request traffic).
    fn system_pool(&self) -> Result<&PgPool> {
        if let Some(pool) = self.shared.system.get() {
            return Ok(pool);
        }
        let config = &self.shared.config;
        // Its own role bypasses row-level security: no role switch.
        let settings = ConnectionSettings::from_config(config);
        let pool = pool::build(config, settings, config.system_url(), 2, "system")?;
        Ok(self.shared.system.get_or_init(|| pool))
    }

    /// Refuses a tenant context when the service's login would bypass
    /// row-level security and no role switch is configured: on every path
    /// to a connection, the replicas' included (the primary's login is
    /// asked once; roles are the cluster's, so a streaming replica has the
    /// same). Nothing to check without a tenant, nor for the escape hatch,
    /// whose connections come from the system pool's own login.
    async fn check_roles(&self) -> Result<()> {
        if self.ctx.tenant_id().is_none() || self.ctx.system_reason().is_some() {
            return Ok(());
        }
        self.check_tenant_roles().await
    }

    /// Checks now what the first call with a tenant context checks: that
    /// the service's login (`DATABASE_URL`) cannot bypass row-level security
    /// (not a superuser, not `BYPASSRLS`, owner of no table with policies),
    /// or that `DB_APP_ROLE` switches to a role that cannot. `Error::Config`
    /// says what to change. Call it at start-up, after `migrate`, to fail
    /// there rather than on the first request; the answer is kept (roles
    /// are the cluster's), so later calls do not ask again.
    pub async fn check_tenant_roles(&self) -> Result<()> {
        let config = &self.shared.config;
        let check = self
            .shared
            .roles
            .get_or_try_init(|| async {
                let mut conn = pool::checkout(
                    &self.shared.pool,
                    config,
                    &config.database_url,
                    self.start(),
                    Scope {
                        per_statement: Some(config.query_timeout),
                        ..Scope::default()
                    },
                )
                .await?;
                let check = RoleCheck::of(&mut conn).await?;
                match &config.app_role {
                    Some(role) => check.with_app_role(&mut conn, role).await,
                    None => Ok(check),
                }
            })
            .await?;
        check.allows_tenants(config.app_role.as_deref())
    }
}

/// Whether a read on a replica failed for the replica's sake (no answer in
/// time, a lost connection, a query cancelled by a conflict with replay)
/// rather than for the read's (not found, a bad query).
fn replica_did_not_answer(e: &Error) -> bool {
    matches!(
        e,
        Error::Timeout { .. } | Error::Unavailable(_) | Error::RetryTransaction { .. }
    )
}
