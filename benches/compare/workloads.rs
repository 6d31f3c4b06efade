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
}

impl Scale {
    pub const FULL: Scale = Scale { users: 10_000 };
    pub const SMOKE: Scale = Scale { users: 300 };
}

/// Ids the workloads pick from.
pub struct Data {
    pub user_ids: Vec<Uuid>,
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
        let user_ids = diesel::sql_query("SELECT id FROM users ORDER BY id")
            .load::<IdRow>(&mut conn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        Ok(Data { user_ids })
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
    diesel::sql_query("ANALYZE").execute(&mut conn).await?;
    drop(conn);
    Data::load(db).await
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
    vec![user_by_id(ctx)]
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
