//! The workloads and the data they run on. Each is written twice: through
//! the crate (`krate`) and as the SQL a careful engineer would write by hand
//! on tokio-postgres with prepared statements (`raw`). Both sides decode the
//! same columns, so neither gets away with doing less.

use std::sync::Arc;

use anyhow::Result;
use database::Db;
use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::{Ctx, Op, Workload};

/// How much data to seed.
#[derive(Clone, Copy)]
pub struct Scale {
    pub users: i64,
    /// Invites the measured runs may accept (each once); the service-mix
    /// child gets `SERVICE_INVITES` more after them.
    pub invites: i64,
    pub service_invites: i64,
}

impl Scale {
    // users × TENANTS bounds the distinct (tenant, user) pairs invites need.
    pub const FULL: Scale = Scale {
        users: 10_000,
        invites: 150_000,
        service_invites: 40_000,
    };
    pub const SMOKE: Scale = Scale {
        users: 300,
        invites: 3_000,
        service_invites: 2_000,
    };
}

const TENANTS: i64 = 20;

/// Ids the workloads pick from.
pub struct Data {
    pub user_ids: Vec<Uuid>,
    pub tenant_ids: Vec<Uuid>,
    /// Where this process starts in the invite sequence.
    pub invite_start: u64,
    pub invite_end: u64,
}

#[derive(diesel::QueryableByName)]
struct IdRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

impl Data {
    /// Reads the ids of data seeded earlier (by `seed`, in another process).
    pub async fn load(db: &Db) -> Result<Data> {
        let mut conn = db.conn().await?;
        let ids = async |conn: &mut database::Conn, sql: &str| -> Result<Vec<Uuid>> {
            Ok(diesel::sql_query(sql)
                .load::<IdRow>(conn)
                .await?
                .into_iter()
                .map(|r| r.id)
                .collect())
        };
        let user_ids = ids(&mut conn, "SELECT id FROM users ORDER BY id").await?;
        let tenant_ids = ids(&mut conn, "SELECT id FROM tenants ORDER BY slug").await?;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let invites = diesel::sql_query("SELECT count(*) AS n FROM tenant_invites")
            .get_result::<N>(&mut conn)
            .await?
            .n;
        let reserved = diesel::sql_query(
            "SELECT count(*) AS n FROM tenant_invites WHERE email LIKE 'service%'",
        )
        .get_result::<N>(&mut conn)
        .await?
        .n;
        // A child process (service mix) takes the reserved tail.
        let start = (invites - reserved).max(0) as u64;
        Ok(Data {
            user_ids,
            tenant_ids,
            invite_start: start,
            invite_end: invites as u64,
        })
    }

    /// The tenant, user and token of invite `k`: distinct (tenant, user)
    /// pairs, so every accept creates a new membership.
    fn invite(&self, k: u64) -> Result<(Uuid, Uuid, String)> {
        anyhow::ensure!(
            k < self.invite_end,
            "ran out of seeded invites at {k}: raise Scale::invites"
        );
        let users = self.user_ids.len() as u64;
        let user = self.user_ids[(k % users) as usize];
        let tenant = self.tenant_ids[((k / users) % self.tenant_ids.len() as u64) as usize];
        Ok((tenant, user, format!("bench-invite-{k}")))
    }
}

/// Seeds the scratch database in a few set-based statements.
pub async fn seed(db: &Db, scale: Scale) -> Result<Data> {
    let mut conn = db.conn().await?;
    diesel::sql_query(
        "INSERT INTO users (id, email, name, email_verified) \
         SELECT gen_random_uuid(), 'user' || g || '@bench.example', 'User ' || g, g % 2 = 0 \
         FROM generate_series(1, $1) AS g",
    )
    .bind::<diesel::sql_types::BigInt, _>(scale.users)
    .execute(&mut conn)
    .await?;
    diesel::sql_query(
        "INSERT INTO tenants (id, name, slug)          SELECT gen_random_uuid(), 'Tenant ' || g, 'bench-t' || lpad(g::text, 3, '0') FROM generate_series(1, $1) AS g",
    )
    .bind::<diesel::sql_types::BigInt, _>(TENANTS)
    .execute(&mut conn)
    .await?;
    // Invite k goes to user k % users of tenant (k / users) % tenants, with
    // the token `bench-invite-<k>` (stored as its SHA-256, as the crate does).
    diesel::sql_query(
        "WITH u AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM users),               t AS (SELECT id, row_number() OVER (ORDER BY slug) - 1 AS n FROM tenants),               uc AS (SELECT count(*) AS c FROM users)          INSERT INTO tenant_invites (id, tenant_id, email, role, token_hash, expires_at)          SELECT gen_random_uuid(), t.id, CASE WHEN k >= $3 THEN 'service' ELSE 'invitee' END || k || '@bench.example', 'member',                 sha256(convert_to('bench-invite-' || k, 'UTF8')), now() + interval '1 day'          FROM generate_series(0, $1 - 1) AS k, uc          JOIN u ON true JOIN t ON true          WHERE u.n = k % uc.c AND t.n = (k / uc.c) % $2",
    )
    .bind::<diesel::sql_types::BigInt, _>(scale.invites + scale.service_invites)
    .bind::<diesel::sql_types::BigInt, _>(TENANTS)
    .bind::<diesel::sql_types::BigInt, _>(scale.invites)
    .execute(&mut conn)
    .await?;
    diesel::sql_query("ANALYZE").execute(&mut conn).await?;
    drop(conn);
    let mut data = Data::load(db).await?;
    // The measuring process uses the head of the sequence.
    data.invite_end = data.invite_start;
    data.invite_start = 0;
    Ok(data)
}

/// Spreads `i` over `n` items without a visible pattern.
fn pick(i: u64, n: usize) -> usize {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n as u64) as usize
}

fn op<F, Fut>(ctx: &Arc<Ctx>, f: F) -> Op
where
    F: Fn(Arc<Ctx>, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let ctx = ctx.clone();
    Arc::new(move |i| Box::pin(f(ctx.clone(), i)))
}

/// Every workload, in report order.
pub fn all(ctx: &Arc<Ctx>) -> Vec<Workload> {
    vec![user_by_id(ctx), accept_invite(ctx)]
}

/// A sequence shared by both sides: every accept takes the next invite.
static NEXT_INVITE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn next_invite(data: &Data) -> u64 {
    // The first call of this process starts at its own range.
    let _ = NEXT_INVITE.compare_exchange(
        0,
        data.invite_start,
        std::sync::atomic::Ordering::Relaxed,
        std::sync::atomic::Ordering::Relaxed,
    );
    NEXT_INVITE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn accept_invite(ctx: &Arc<Ctx>) -> Workload {
    Workload {
        name: "accept_invite",
        krate: op(ctx, |ctx, _| async move {
            let (tenant, user, token) = ctx.data.invite(next_invite(&ctx.data))?;
            let mut conn = ctx.db.conn().await?;
            let member = database::tenancy::tenant_invites::accept(
                &mut conn,
                tenant.into(),
                &token,
                user.into(),
            )
            .await?;
            std::hint::black_box(member);
            Ok(())
        }),
        raw: op(ctx, |ctx, _| async move {
            let (tenant, user, token) = ctx.data.invite(next_invite(&ctx.data))?;
            let hash = database::token::hash(&token);
            let mut client = ctx.raw.get().await?;
            let tx = client.transaction().await?;
            let claim = tx
                .prepare_cached(
                    "UPDATE tenant_invites SET accepted_at = $1, accepted_by = $2 \
                     WHERE tenant_id = $3 AND token_hash = $4 AND accepted_at IS NULL \
                       AND revoked_at IS NULL AND expires_at > $1 \
                     RETURNING id, tenant_id, email, role::text, token_hash, invited_by, expires_at, \
                               accepted_at, accepted_by, revoked_at, created_at",
                )
                .await?;
            let now = chrono::Utc::now();
            let invite = tx.query_opt(&claim, &[&now, &user, &tenant, &hash]).await?;
            let invite = invite.ok_or_else(|| anyhow::anyhow!("invite refused"))?;
            let invite_id: Uuid = invite.get(0);
            let role: String = invite.get(3);
            let insert_member = tx
                .prepare_cached(
                    "INSERT INTO tenant_members (id, tenant_id, user_id, role) VALUES ($1, $2, $3, $4::text::tenant_role) \
                     RETURNING id, tenant_id, user_id, role::text, created_at, updated_at",
                )
                .await?;
            let member = tx
                .query_one(&insert_member, &[&Uuid::now_v7(), &tenant, &user, &role])
                .await?;
            let insert_activity = tx
                .prepare_cached(
                    "INSERT INTO tenant_activity (id, tenant_id, actor_id, action, subject, details) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at",
                )
                .await?;
            let details = serde_json::json!({ "role": role });
            tx.query_one(
                &insert_activity,
                &[
                    &Uuid::now_v7(),
                    &tenant,
                    &Some(user),
                    &"invite.accepted",
                    &Some(invite_id.to_string()),
                    &details,
                ],
            )
            .await?;
            tx.commit().await?;
            std::hint::black_box(member);
            Ok(())
        }),
    }
}

fn user_by_id(ctx: &Arc<Ctx>) -> Workload {
    Workload {
        name: "user_by_id",
        krate: op(ctx, |ctx, i| async move {
            let id = ctx.data.user_ids[pick(i, ctx.data.user_ids.len())];
            let mut conn = ctx.db.conn().await?;
            let user = database::auth::users::find_by_id(&mut conn, id.into()).await?;
            std::hint::black_box(user);
            Ok(())
        }),
        raw: op(ctx, |ctx, i| async move {
            let id = ctx.data.user_ids[pick(i, ctx.data.user_ids.len())];
            let client = ctx.raw.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT id, email, email_verified, name, image, created_at, updated_at FROM users WHERE id = $1",
                )
                .await?;
            let row = client.query_one(&stmt, &[&id]).await?;
            let user = (
                row.get::<_, Uuid>(0),
                row.get::<_, String>(1),
                row.get::<_, bool>(2),
                row.get::<_, Option<String>>(3),
                row.get::<_, Option<String>>(4),
                row.get::<_, chrono::DateTime<chrono::Utc>>(5),
                row.get::<_, chrono::DateTime<chrono::Utc>>(6),
            );
            std::hint::black_box(user);
            Ok(())
        }),
    }
}
