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

use tokio_postgres::types::{ToSql, Type};

use super::rows::{
    EXECUTION_COLUMNS, ExecutionRow, STEP_COLUMNS, StepRow, Ts, decode_execution, decode_step,
};
use super::{Ctx, Op, Workload};

/// How much data to seed.
#[derive(Clone, Copy)]
pub struct Scale {
    pub users: i64,
    /// Invites the measured runs may accept (each once); the service-mix
    /// child gets `service_invites` more after them.
    pub invites: i64,
    pub service_invites: i64,
    /// Messages of the one big chat.
    pub messages: i64,
    /// Pending executions the claim workload works through.
    pub pending: i64,
}

impl Scale {
    // users × TENANTS bounds the distinct (tenant, user) pairs invites need.
    // Every accept uses one up: a full run took about 150,000 on the
    // development machine in direct mode and fewer through the pooler. The
    // invites and the service mix's together must not exceed the distinct
    // pairs (10,000 users x 40 tenants).
    pub const FULL: Scale = Scale {
        users: 10_000,
        invites: 360_000,
        service_invites: 40_000,
        messages: 100_000,
        pending: 400_000,
    };
    /// The full data with fewer invites: a quick run accepts about 20,000,
    /// and seeding the full number would take a tenth of its minute.
    pub const QUICK: Scale = Scale {
        invites: 60_000,
        ..Scale::FULL
    };
    pub const SMOKE: Scale = Scale {
        users: 300,
        invites: 3_000,
        service_invites: 2_000,
        messages: 3_000,
        pending: 20_000,
    };
}

/// Nodes of the workflow whose execution inserts 1,000 steps.
const BATCH_NODES: usize = 1_000;

const TENANTS: i64 = 40;

// Each invite is a distinct (tenant, user) pair: more would collide.
const _: () = {
    let full = Scale::FULL;
    assert!(full.invites + full.service_invites <= full.users * TENANTS);
    let smoke = Scale::SMOKE;
    assert!(smoke.invites + smoke.service_invites <= smoke.users * TENANTS);
};

/// Ids the workloads pick from.
#[derive(Clone)]
pub struct Data {
    pub user_ids: Vec<Uuid>,
    pub tenant_ids: Vec<Uuid>,
    /// Where this process starts in the invite sequence.
    pub invite_start: u64,
    pub invite_end: u64,
    /// The big chat and its owner.
    pub chat: (Uuid, Uuid),
    /// Cursors (created_at, id) deep inside the big chat.
    pub cursors: Vec<(chrono::DateTime<chrono::Utc>, Uuid)>,
    /// Tenant and workflow of the nested load (tenants[0]).
    pub tree_workflow: Uuid,
    /// Tenant whose pending executions are claimed (tenants[1]).
    pub claim_tenant: Uuid,
    /// Workflow with BATCH_NODES nodes (tenants[2]).
    pub batch_workflow: Uuid,
}

#[derive(diesel::QueryableByName)]
struct PairRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
}

#[derive(diesel::QueryableByName)]
struct CursorRow {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created_at: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
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
        let chat = diesel::sql_query("SELECT id, user_id FROM chats ORDER BY id LIMIT 1")
            .get_result::<PairRow>(&mut conn)
            .await?;
        // Pages from 30% to 70% deep: neither end of the index is cheap to reach.
        let cursors = diesel::sql_query(
            "SELECT created_at, id FROM (SELECT created_at, id, row_number() OVER (ORDER BY created_at DESC, id DESC) AS n, \
             count(*) OVER () AS total FROM messages WHERE chat_id = $1) m \
             WHERE n BETWEEN total * 3 / 10 AND total * 7 / 10 AND n % 37 = 0",
        )
        .bind::<SqlUuid, _>(chat.id)
        .load::<CursorRow>(&mut conn)
        .await?
        .into_iter()
        .map(|r| (r.created_at, r.id))
        .collect();
        let workflow_of = async |conn: &mut database::Conn, name: &str| -> Result<Uuid> {
            Ok(
                diesel::sql_query("SELECT id FROM workflows WHERE name = $1")
                    .bind::<diesel::sql_types::Text, _>(name)
                    .get_result::<IdRow>(conn)
                    .await?
                    .id,
            )
        };
        let tree_workflow = workflow_of(&mut conn, "bench tree").await?;
        let batch_workflow = workflow_of(&mut conn, "bench batch").await?;
        Ok(Data {
            claim_tenant: tenant_ids[1],
            user_ids,
            tenant_ids,
            invite_start: start,
            invite_end: invites as u64,
            chat: (chat.id, chat.user_id),
            cursors,
            tree_workflow,
            batch_workflow,
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
        // Ids spread like random ones, but computable: pgbench's lookup
        // (`pgbench_rows`) finds user n as md5('user' || n).
        "INSERT INTO users (id, email, name, email_verified) \
         SELECT md5('user' || g)::uuid, 'user' || g || '@bench.example', 'User ' || g, g % 2 = 0 \
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
    // One chat with many messages, one per second so that timestamps differ
    // and some ties exist (every 10th pair shares its second).
    diesel::sql_query(
        "WITH owner AS (SELECT id FROM users ORDER BY id LIMIT 1), \
              chat AS (INSERT INTO chats (id, user_id, title, visibility) \
                       SELECT gen_random_uuid(), id, 'Benchmark chat', 'private' FROM owner RETURNING id) \
         INSERT INTO messages (id, chat_id, role, parts, created_at) \
         SELECT gen_random_uuid(), chat.id, CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END::message_role, \
                jsonb_build_array(jsonb_build_object('type', 'text', 'text', 'message number ' || g)), \
                timestamptz '2026-01-01' + (g - g % 10 / 9) * interval '1 second' \
         FROM chat, generate_series(1, $1) AS g",
    )
    .bind::<diesel::sql_types::BigInt, _>(scale.messages)
    .execute(&mut conn)
    .await?;

    // Workflows through the crate (validated graphs).
    let tenants: Vec<Uuid> = diesel::sql_query("SELECT id FROM tenants ORDER BY slug LIMIT 3")
        .load::<IdRow>(&mut conn)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let graph = |n: usize| {
        let nodes: Vec<_> = (0..n)
            .map(|i| serde_json::json!({"id": format!("n{i}"), "type": "task", "data": {}}))
            .collect();
        let edges: Vec<_> = (1..n)
            .map(
                |i| serde_json::json!({"source": format!("n{}", i - 1), "target": format!("n{i}")}),
            )
            .collect();
        serde_json::from_value::<database::workflows::WorkflowGraph>(
            serde_json::json!({"nodes": nodes, "edges": edges}),
        )
    };
    let new_workflow = |name: &str, n: usize| -> Result<database::workflows::NewWorkflow> {
        Ok(database::workflows::NewWorkflow {
            name: name.into(),
            description: None,
            graph: graph(n)?,
        })
    };
    let tree = database::workflows::workflows::create(
        &mut conn,
        tenants[0].into(),
        None,
        &new_workflow("bench tree", 5)?,
    )
    .await?;
    let claim = database::workflows::workflows::create(
        &mut conn,
        tenants[1].into(),
        None,
        &new_workflow("bench claim", 3)?,
    )
    .await?;
    database::workflows::workflows::create(
        &mut conn,
        tenants[2].into(),
        None,
        &new_workflow("bench batch", BATCH_NODES)?,
    )
    .await?;
    // The tree: 40 finished executions of 5 steps each.
    for _ in 0..40 {
        database::workflows::executions::start(
            &mut conn,
            tenants[0].into(),
            tree.id,
            &Default::default(),
        )
        .await?;
    }
    // The claim queue: many pending executions, set-based.
    diesel::sql_query(
        "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version, status, input, created_at) \
         SELECT gen_random_uuid(), $1, $2, 1, 'pending', '{}'::jsonb, timestamptz '2026-01-01' + g * interval '1 millisecond' \
         FROM generate_series(1, $3) AS g",
    )
    .bind::<SqlUuid, _>(tenants[1])
    .bind::<SqlUuid, _>(claim.id.into_uuid())
    .bind::<diesel::sql_types::BigInt, _>(scale.pending)
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

/// How the raw side sends a statement: prepared and cached by name (direct,
/// what a careful engineer does against the server), or unnamed with its
/// parameter types, Parse/Bind/Execute/Sync in one round trip (through a
/// transaction-mode pooler: tokio-postgres `query_typed`, what postgres.js
/// does with `prepare: false`). `Ctx::unnamed` chooses.
pub trait RawStatements {
    async fn rows(
        &self,
        unnamed: bool,
        sql: &str,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>>;

    async fn one(
        &self,
        unnamed: bool,
        sql: &str,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<tokio_postgres::Row> {
        self.opt(unnamed, sql, types, params)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row"))
    }

    async fn opt(
        &self,
        unnamed: bool,
        sql: &str,
        types: &[Type],
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>> {
        let mut rows = self.rows(unnamed, sql, types, params).await?;
        anyhow::ensure!(rows.len() <= 1, "more than one row");
        Ok(rows.pop())
    }
}

fn typed<'a>(
    params: &'a [&'a (dyn ToSql + Sync)],
    types: &[Type],
) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params.iter().copied().zip(types.iter().cloned()).collect()
}

// The same body for a pooled client and a transaction: both have
// `query_typed` (tokio-postgres) and `prepare_cached` (deadpool-postgres).
macro_rules! raw_statements_for {
    ($($client:ty),+) => {$(
        impl RawStatements for $client {
            async fn rows(
                &self,
                unnamed: bool,
                sql: &str,
                types: &[Type],
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<tokio_postgres::Row>> {
                if unnamed {
                    return Ok(self.query_typed(sql, &typed(params, types)).await?);
                }
                let stmt = self.prepare_cached(sql).await?;
                Ok(self.query(&stmt, params).await?)
            }
        }
    )+};
}

raw_statements_for!(
    deadpool_postgres::Object,
    deadpool_postgres::Transaction<'_>
);

pub fn op<F, Fut>(ctx: &Arc<Ctx>, f: F) -> Op
where
    F: Fn(Arc<Ctx>, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let ctx = ctx.clone();
    Arc::new(move |i| Box::pin(f(ctx.clone(), i)))
}

/// Every workload, in report order.
pub fn all(ctx: &Arc<Ctx>) -> Vec<Workload> {
    vec![
        user_by_id(ctx),
        create_todo(ctx),
        messages_page(ctx),
        workflow_tree(ctx),
        steps_batch(ctx),
        accept_invite(ctx),
        claim_execution(ctx),
    ]
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
            let mut conn = ctx.conn_in(Some(tenant), Some(user)).await?;
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
            let now = chrono::Utc::now();
            let invite = tx
                .opt(
                    ctx.unnamed,
                    "UPDATE tenant_invites SET accepted_at = $1, accepted_by = $2 \
                     WHERE tenant_id = $3 AND token_hash = $4 AND accepted_at IS NULL \
                       AND revoked_at IS NULL AND expires_at > $1 \
                     RETURNING id, tenant_id, email, role::text, token_hash, invited_by, expires_at, \
                               accepted_at, accepted_by, revoked_at, created_at",
                    &[Type::TIMESTAMPTZ, Type::UUID, Type::UUID, Type::BYTEA],
                    &[&now, &user, &tenant, &hash],
                )
                .await?;
            let invite = invite.ok_or_else(|| anyhow::anyhow!("invite refused"))?;
            let invite_id: Uuid = invite.get(0);
            let role: String = invite.get(3);
            let member = tx
                .one(
                    ctx.unnamed,
                    "INSERT INTO tenant_members (id, tenant_id, user_id, role) VALUES ($1, $2, $3, $4::text::tenant_role) \
                     RETURNING id, tenant_id, user_id, role::text, created_at, updated_at",
                    &[Type::UUID, Type::UUID, Type::UUID, Type::TEXT],
                    &[&Uuid::now_v7(), &tenant, &user, &role],
                )
                .await?;
            let details = serde_json::json!({ "role": role });
            tx.one(
                ctx.unnamed,
                "INSERT INTO tenant_activity (id, tenant_id, actor_id, action, subject, details) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at",
                &[
                    Type::UUID,
                    Type::UUID,
                    Type::UUID,
                    Type::TEXT,
                    Type::TEXT,
                    Type::JSONB,
                ],
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
            let user = database::auth::users::find(&mut conn, id.into()).await?;
            std::hint::black_box(user);
            Ok(())
        }),
        raw: op(ctx, |ctx, i| async move {
            let id = ctx.data.user_ids[pick(i, ctx.data.user_ids.len())];
            let client = ctx.raw.get().await?;
            let row = client
                .one(
                    ctx.unnamed,
                    "SELECT id, email, email_verified, name, image, created_at, updated_at FROM users WHERE id = $1",
                    &[Type::UUID],
                    &[&id],
                )
                .await?;
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

fn create_todo(ctx: &Arc<Ctx>) -> Workload {
    Workload {
        name: "create_todo",
        krate: op(ctx, |ctx, i| async move {
            let user = ctx.data.user_ids[pick(i, ctx.data.user_ids.len())];
            let input = database::features::todos::CreateTodo {
                title: format!("Todo {i}"),
                description: (i % 2 == 0).then(|| "Write the benchmark report".to_owned()),
                tenant_id: None,
            };
            let mut conn = ctx.conn_in(None, Some(user)).await?;
            let todo = database::features::todos::create(&mut conn, user.into(), &input).await?;
            std::hint::black_box(todo);
            Ok(())
        }),
        raw: op(ctx, |ctx, i| async move {
            let user = ctx.data.user_ids[pick(i, ctx.data.user_ids.len())];
            let title = format!("Todo {i}");
            let description = (i % 2 == 0).then(|| "Write the benchmark report".to_owned());
            // The same validation, by hand.
            anyhow::ensure!((1..=255).contains(&title.chars().count()), "title");
            anyhow::ensure!(
                description
                    .as_ref()
                    .is_none_or(|d| d.chars().count() <= 1000),
                "description"
            );
            let client = ctx.raw.get().await?;
            let row = client
                .one(
                    ctx.unnamed,
                    "INSERT INTO todos (id, user_id, tenant_id, title, description) VALUES ($1, $2, $3, $4, $5) \
                     RETURNING id, user_id, tenant_id, title, description, completed, created_at, updated_at",
                    &[Type::UUID, Type::UUID, Type::UUID, Type::TEXT, Type::TEXT],
                    &[&Uuid::now_v7(), &user, &None::<Uuid>, &title, &description],
                )
                .await?;
            std::hint::black_box(decode_todo(&row));
            Ok(())
        }),
    }
}

/// Every column of a `todos` row, as the crate's `Todo` holds them.
pub type TodoRow = (
    Uuid,
    Uuid,
    Option<Uuid>,
    String,
    Option<String>,
    bool,
    Ts,
    Ts,
);

pub fn decode_todo(row: &tokio_postgres::Row) -> TodoRow {
    (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
        row.get(7),
    )
}

const PAGE: i64 = 50;

fn messages_page(ctx: &Arc<Ctx>) -> Workload {
    Workload {
        name: "messages_page",
        krate: op(ctx, |ctx, i| async move {
            let (chat, owner) = ctx.data.chat;
            let (created_at, id) = ctx.data.cursors[pick(i, ctx.data.cursors.len())];
            let cursor = database::keyset::Cursor {
                created_at,
                id: id.into(),
            };
            let mut conn = ctx.db.conn().await?;
            let page = database::chat::messages::list_for_chat(
                &mut conn,
                owner.into(),
                chat.into(),
                Some(cursor),
                PAGE,
            )
            .await?;
            anyhow::ensure!(page.items.len() == PAGE as usize, "short page");
            std::hint::black_box(page);
            Ok(())
        }),
        raw: op(ctx, |ctx, i| async move {
            let (chat, owner) = ctx.data.chat;
            let (created_at, id) = ctx.data.cursors[pick(i, ctx.data.cursors.len())];
            let client = ctx.raw.get().await?;
            // The same two steps: the chat must be the caller's, then the page.
            client
                .opt(
                    ctx.unnamed,
                    "SELECT id FROM chats WHERE id = $1 AND user_id = $2",
                    &[Type::UUID, Type::UUID],
                    &[&chat, &owner],
                )
                .await?
                .ok_or_else(|| anyhow::anyhow!("not found"))?;
            let rows = client
                .rows(
                    ctx.unnamed,
                    "SELECT id, chat_id, role::text, parts, created_at FROM messages \
                     WHERE chat_id = $1 AND created_at <= $2 AND (created_at < $2 OR id < $3) \
                     ORDER BY created_at DESC, id DESC LIMIT $4",
                    &[Type::UUID, Type::TIMESTAMPTZ, Type::UUID, Type::INT8],
                    &[&chat, &created_at, &id, &(PAGE + 1)],
                )
                .await?;
            let items: Vec<_> = rows
                .iter()
                .take(PAGE as usize)
                .map(|r| {
                    (
                        r.get::<_, Uuid>(0),
                        r.get::<_, Uuid>(1),
                        r.get::<_, String>(2),
                        r.get::<_, serde_json::Value>(3),
                        r.get::<_, chrono::DateTime<chrono::Utc>>(4),
                    )
                })
                .collect();
            anyhow::ensure!(items.len() == PAGE as usize, "short page");
            std::hint::black_box(items);
            Ok(())
        }),
    }
}

fn workflow_tree(ctx: &Arc<Ctx>) -> Workload {
    Workload {
        name: "workflow_tree",
        krate: op(ctx, |ctx, _| async move {
            let tenant = ctx.data.tenant_ids[0];
            let mut conn = ctx.conn_in(Some(tenant), None).await?;
            let tree = database::workflows::workflows::find_with_recent_executions(
                &mut conn,
                tenant.into(),
                ctx.data.tree_workflow.into(),
                10,
            )
            .await?;
            anyhow::ensure!(
                tree.executions.len() == 10 && tree.executions[0].steps.len() == 5,
                "tree shape: {} executions, the first with {} steps",
                tree.executions.len(),
                <[_]>::first(&tree.executions).map_or(0, |e| e.steps.len())
            );
            std::hint::black_box(tree);
            Ok(())
        }),
        raw: op(ctx, |ctx, _| async move {
            let tenant = ctx.data.tenant_ids[0];
            let workflow_id = ctx.data.tree_workflow;
            let client = ctx.raw.get().await?;
            let w = client
                .one(
                    ctx.unnamed,
                    "SELECT id, tenant_id, owner_id, name, description, nodes, edges, version, created_at, updated_at \
                     FROM workflows WHERE id = $1 AND tenant_id = $2",
                    &[Type::UUID, Type::UUID],
                    &[&workflow_id, &tenant],
                )
                .await?;
            let workflow = (
                w.get::<_, Uuid>(0),
                w.get::<_, Uuid>(1),
                w.get::<_, Option<Uuid>>(2),
                w.get::<_, String>(3),
                w.get::<_, Option<String>>(4),
                w.get::<_, serde_json::Value>(5),
                w.get::<_, serde_json::Value>(6),
                w.get::<_, i64>(7),
                w.get::<_, Ts>(8),
                w.get::<_, Ts>(9),
            );
            let executions = client
                .rows(
                    ctx.unnamed,
                    "SELECT id, tenant_id, workflow_id, user_id, workflow_version, status::text, input, output, error, \
                     worker_id, started_at, finished_at, created_at, updated_at FROM executions \
                     WHERE workflow_id = $1 AND tenant_id = $2 ORDER BY created_at DESC, id DESC LIMIT 10",
                    &[Type::UUID, Type::UUID],
                    &[&workflow_id, &tenant],
                )
                .await?;
            let ids: Vec<Uuid> = executions.iter().map(|r| r.get(0)).collect();
            let steps = client
                .rows(
                    ctx.unnamed,
                    "SELECT id, execution_id, node_id, position, status::text, input, output, validation, attempts, \
                     max_attempts, error, started_at, finished_at, created_at, updated_at FROM execution_steps \
                     WHERE execution_id = ANY($1) ORDER BY execution_id, position, id",
                    &[Type::UUID_ARRAY],
                    &[&ids],
                )
                .await?;
            let mut by_execution: std::collections::HashMap<Uuid, Vec<StepRow>> =
                std::collections::HashMap::new();
            for s in &steps {
                let step = decode_step(s);
                by_execution.entry(step.1).or_default().push(step);
            }
            let tree: Vec<(ExecutionRow, Vec<StepRow>)> = executions
                .iter()
                .map(|e| {
                    let execution = decode_execution(e);
                    let steps = by_execution.remove(&execution.0).unwrap_or_default();
                    (execution, steps)
                })
                .collect();
            anyhow::ensure!(tree.len() == 10 && tree[0].1.len() == 5, "tree shape");
            std::hint::black_box((workflow, tree));
            Ok(())
        }),
    }
}

fn steps_batch(ctx: &Arc<Ctx>) -> Workload {
    Workload {
        name: "steps_batch",
        krate: op(ctx, |ctx, _| async move {
            let tenant = ctx.data.tenant_ids[2];
            let mut conn = ctx.db.conn().await?;
            let started = database::workflows::executions::start(
                &mut conn,
                tenant.into(),
                ctx.data.batch_workflow.into(),
                &Default::default(),
            )
            .await?;
            anyhow::ensure!(started.steps.len() == BATCH_NODES, "steps");
            std::hint::black_box(started);
            Ok(())
        }),
        raw: op(ctx, |ctx, _| async move {
            let tenant = ctx.data.tenant_ids[2];
            let workflow_id = ctx.data.batch_workflow;
            let mut client = ctx.raw.get().await?;
            let tx = client.transaction().await?;
            let w = tx
                .one(
                    ctx.unnamed,
                    "SELECT nodes, version FROM workflows WHERE id = $1 AND tenant_id = $2 FOR SHARE",
                    &[Type::UUID, Type::UUID],
                    &[&workflow_id, &tenant],
                )
                .await?;
            let nodes: serde_json::Value = w.get(0);
            let version: i64 = w.get(1);
            let node_ids: Vec<String> = nodes
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.get("id").and_then(|v| v.as_str()).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let execution_id = Uuid::now_v7();
            let input = serde_json::json!({});
            let execution = tx
                .one(
                    ctx.unnamed,
                    &format!(
                        "INSERT INTO executions (id, tenant_id, workflow_id, user_id, workflow_version, input) \
                         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {EXECUTION_COLUMNS}"
                    ),
                    &[Type::UUID, Type::UUID, Type::UUID, Type::UUID, Type::INT8, Type::JSONB],
                    &[
                        &execution_id,
                        &tenant,
                        &workflow_id,
                        &None::<Uuid>,
                        &version,
                        &input,
                    ],
                )
                .await?;
            std::hint::black_box(decode_execution(&execution));
            // One statement for the whole batch: arrays, unnested server-side.
            let n = node_ids.len();
            let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
            let executions = vec![execution_id; n];
            let positions: Vec<i32> = (0..n as i32).collect();
            let attempts = vec![3i32; n];
            let rows = tx
                .rows(
                    ctx.unnamed,
                    &format!(
                        "INSERT INTO execution_steps (id, execution_id, node_id, position, max_attempts) \
                         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int4[], $5::int4[]) \
                         RETURNING {STEP_COLUMNS}"
                    ),
                    &[
                        Type::UUID_ARRAY,
                        Type::UUID_ARRAY,
                        Type::TEXT_ARRAY,
                        Type::INT4_ARRAY,
                        Type::INT4_ARRAY,
                    ],
                    &[&ids, &executions, &node_ids, &positions, &attempts],
                )
                .await?;
            tx.commit().await?;
            anyhow::ensure!(rows.len() == BATCH_NODES, "steps");
            let decoded: Vec<StepRow> = rows.iter().map(decode_step).collect();
            std::hint::black_box(decoded);
            Ok(())
        }),
    }
}

fn claim_execution(ctx: &Arc<Ctx>) -> Workload {
    Workload {
        name: "claim_execution",
        krate: op(ctx, |ctx, i| async move {
            let mut conn = ctx.conn_in(Some(ctx.data.claim_tenant), None).await?;
            let worker = format!("worker-{}", i % 16);
            let claimed = database::workflows::executions::claim_next(
                &mut conn,
                ctx.data.claim_tenant.into(),
                &worker,
            )
            .await?;
            anyhow::ensure!(
                claimed.is_some(),
                "the claim queue ran dry: raise Scale::pending"
            );
            std::hint::black_box(claimed);
            Ok(())
        }),
        raw: op(ctx, |ctx, i| async move {
            let client = ctx.raw.get().await?;
            let worker = format!("worker-{}", i % 16);
            // The hand-written form: one statement claims and starts.
            let row = client
                .opt(
                    ctx.unnamed,
                    &format!(
                        "UPDATE executions SET status = 'running', worker_id = $2, \
                                started_at = coalesce(started_at, now()), updated_at = now() \
                         WHERE id = (SELECT id FROM executions WHERE tenant_id = $1 AND status = 'pending' \
                                     ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                         RETURNING {EXECUTION_COLUMNS}"
                    ),
                    &[Type::UUID, Type::TEXT],
                    &[&ctx.data.claim_tenant, &worker],
                )
                .await?;
            let row = row
                .ok_or_else(|| anyhow::anyhow!("the claim queue ran dry: raise Scale::pending"))?;
            std::hint::black_box(decode_execution(&row));
            Ok(())
        }),
    }
}
