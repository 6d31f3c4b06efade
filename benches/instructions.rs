//! Instructions per operation, the client's own cost counted by callgrind
//! (`scripts/bench --instructions`): unlike throughput, the count repeats
//! on a busy 2-core machine, so a change that adds per-call work shows.
//!
//! One process per side: `instructions <server url> crate|raw <n>` runs `n`
//! primary-key lookups of one user on a current-thread runtime (the
//! connection's tasks run on the same thread, so they are counted), the
//! crate's `users::find` through a pooled `Db` with its defaults on
//! (deadlines, commit tracking, metrics to the no-op recorder, no tracing
//! subscriber), or tokio-postgres through deadpool with the same SQL,
//! prepared and cached. The `crate-recorded` side is the crate's with a
//! `tracing` subscriber that keeps every span's fields (the layer of
//! `scripts/bench --telemetry`) and `metrics-util`'s debugging recorder
//! installed first: the client's cost of observability, in instructions.
//! The `crate-tree` and `raw-tree` sides read a workflow with its 10 most
//! recent executions and their 5 steps each (`workflow_tree` of the
//! side-by-side benchmark: three statements, about 70 rows with JSON) instead
//! of a lookup: `find_with_recent_executions` against the same three
//! statements prepared and cached on tokio-postgres, decoding every column.
//! The `crate-todo` and `raw-todo` sides insert a todo (`create_todo`: the
//! crate's `todos::create` with its input checks, against the same INSERT
//! ... RETURNING with the same checks by hand), and `crate-claim` and
//! `raw-claim` claim the oldest pending execution of a queue seeded for the
//! run (`claim_execution`: `executions::claim_next` against the one-statement
//! claim written by hand).
//! The script runs it under
//! `valgrind --tool=callgrind --toggle-collect=*measured*`, so only the
//! lookups are counted, not start-up or the warm-up. Its scratch database
//! (`database_bench_instructions` on the server) is created by the first run
//! and dropped by `instructions <server url> drop`.

#[path = "compare/rows.rs"]
mod rows;

#[path = "compare/recording.rs"]
#[allow(dead_code, reason = "shared with the side-by-side benchmark")]
mod recording;

use database::auth::users::{self, NewUser};
use database::db::{Config, Db};

const SQL: &str = "SELECT id, email, email_verified, name, image, created_at, updated_at FROM users WHERE id = $1";

const SCRATCH: &str = "database_bench_instructions";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (server, side, n) = match args.as_slice() {
        [server, side, n] => (
            server,
            side,
            n.parse::<usize>().expect("a number of lookups"),
        ),
        [server, drop] if drop == "drop" => {
            runtime.block_on(scratch(server, "DROP DATABASE IF EXISTS"));
            return;
        }
        _ => {
            eprintln!(
                "usage: instructions <server url> crate|crate-recorded|raw|crate-tree|raw-tree|crate-todo|raw-todo|crate-claim|raw-claim <operations> | <server url> drop"
            );
            std::process::exit(2);
        }
    };
    if side == "crate-recorded" {
        use tracing_subscriber::layer::SubscriberExt;
        let spans = recording::Spans::default();
        spans.1.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(spans))
            .expect("the only subscriber");
        metrics_util::debugging::DebuggingRecorder::new()
            .install()
            .expect("the only recorder");
    }
    runtime.block_on(scratch(server, "CREATE DATABASE"));
    let mut url = database::db::with_dbname(server, SCRATCH);
    // Both sides in plain text, as in the side-by-side benchmark (the raw
    // side has no TLS).
    if !url.contains("sslmode=") {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("sslmode=disable");
    }
    let db = Db::new(Config::new(url.clone())).expect("a Db");
    let (id, tree) = runtime.block_on(async {
        db.migrate().await.expect("migrated");
        let mut conn = db.conn().await.expect("a connection");
        let email = "instructions@example.com";
        let id = match users::find_by_email(&mut conn, email).await {
            Ok(user) => user.id,
            Err(_) => {
                let input = NewUser {
                    email: email.to_owned(),
                    ..NewUser::default()
                };
                users::create(&mut conn, &input).await.expect("a user").id
            }
        };
        (id, tree::seed(&mut conn, id).await)
    });
    match side.as_str() {
        "crate-tree" => {
            runtime.block_on(tree::crate_reads(&db, tree, 50));
            measured_crate_tree(&runtime, &db, tree, n);
        }
        "raw-tree" => {
            let pool = raw_pool(&url);
            let tree = (tree.0.into_uuid(), tree.1.into_uuid());
            runtime.block_on(tree::raw_reads(&pool, tree, 50));
            measured_raw_tree(&runtime, &pool, tree, n);
        }
        "crate-todo" => {
            runtime.block_on(writes::crate_todos(&db, id, 200));
            measured_crate_todos(&runtime, &db, id, n);
        }
        "raw-todo" => {
            let pool = raw_pool(&url);
            runtime.block_on(writes::raw_todos(&pool, id.into_uuid(), 200));
            measured_raw_todos(&runtime, &pool, id.into_uuid(), n);
        }
        "crate-claim" => {
            runtime.block_on(writes::queue(&db, tree.0, n + 200));
            runtime.block_on(writes::crate_claims(&db, tree.0, 200));
            measured_crate_claims(&runtime, &db, tree.0, n);
        }
        "raw-claim" => {
            runtime.block_on(writes::queue(&db, tree.0, n + 200));
            let pool = raw_pool(&url);
            runtime.block_on(writes::raw_claims(&pool, tree.0.into_uuid(), 200));
            measured_raw_claims(&runtime, &pool, tree.0.into_uuid(), n);
        }
        "crate" | "crate-recorded" => {
            runtime.block_on(crate_lookups(&db, id, 200));
            measured_crate(&runtime, &db, id, n);
        }
        "raw" => {
            let pool = raw_pool(&url);
            let id = id.into_uuid();
            runtime.block_on(raw_lookups(&pool, id, 200));
            measured_raw(&runtime, &pool, id, n);
        }
        other => panic!(
            "side {other}: crate, crate-recorded, raw, crate-tree, raw-tree, crate-todo, raw-todo, crate-claim or raw-claim"
        ),
    }
}

/// The raw side's pool: deadpool-postgres with its defaults, 10 connections.
fn raw_pool(url: &str) -> deadpool_postgres::Pool {
    let config: tokio_postgres::Config = url.parse().expect("a URL");
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(10)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .expect("a pool")
}

/// `verb` the scratch database on the server (an existing one is kept).
async fn scratch(server: &str, verb: &str) {
    use diesel_async::SimpleAsyncConnection;
    let config = Config::new(server.to_owned());
    let mut conn = database::db::connect(&config, server)
        .await
        .expect("the server answers");
    if let Err(e) = conn.batch_execute(&format!("{verb} {SCRATCH}")).await
        && !e.to_string().contains("already exists")
    {
        panic!("{verb} {SCRATCH}: {e}");
    }
}

async fn crate_lookups(db: &Db, id: database::UserId, n: usize) {
    for _ in 0..n {
        let mut conn = db.conn().await.expect("a connection");
        std::hint::black_box(users::find(&mut conn, id).await.expect("the user"));
    }
}

async fn raw_lookups(pool: &deadpool_postgres::Pool, id: uuid::Uuid, n: usize) {
    for _ in 0..n {
        let client = pool.get().await.expect("a connection");
        let statement = client.prepare_cached(SQL).await.expect("prepared");
        let row = client
            .query_one(&statement, &[&id])
            .await
            .expect("the user");
        std::hint::black_box((
            row.get::<_, uuid::Uuid>(0),
            row.get::<_, String>(1),
            row.get::<_, bool>(2),
            row.get::<_, Option<String>>(3),
            row.get::<_, Option<String>>(4),
            row.get::<_, chrono::DateTime<chrono::Utc>>(5),
            row.get::<_, chrono::DateTime<chrono::Utc>>(6),
        ));
    }
}

// The counted regions (callgrind's --toggle-collect matches these names).
#[inline(never)]
fn measured_crate(runtime: &tokio::runtime::Runtime, db: &Db, id: database::UserId, n: usize) {
    runtime.block_on(crate_lookups(db, id, n));
}

#[inline(never)]
fn measured_raw(
    runtime: &tokio::runtime::Runtime,
    pool: &deadpool_postgres::Pool,
    id: uuid::Uuid,
    n: usize,
) {
    runtime.block_on(raw_lookups(pool, id, n));
}

#[inline(never)]
fn measured_crate_tree(
    runtime: &tokio::runtime::Runtime,
    db: &Db,
    tree: (database::TenantId, database::WorkflowId),
    n: usize,
) {
    runtime.block_on(tree::crate_reads(db, tree, n));
}

#[inline(never)]
fn measured_raw_tree(
    runtime: &tokio::runtime::Runtime,
    pool: &deadpool_postgres::Pool,
    tree: (uuid::Uuid, uuid::Uuid),
    n: usize,
) {
    runtime.block_on(tree::raw_reads(pool, tree, n));
}

#[inline(never)]
fn measured_crate_todos(
    runtime: &tokio::runtime::Runtime,
    db: &Db,
    user: database::UserId,
    n: usize,
) {
    runtime.block_on(writes::crate_todos(db, user, n));
}

#[inline(never)]
fn measured_raw_todos(
    runtime: &tokio::runtime::Runtime,
    pool: &deadpool_postgres::Pool,
    user: uuid::Uuid,
    n: usize,
) {
    runtime.block_on(writes::raw_todos(pool, user, n));
}

#[inline(never)]
fn measured_crate_claims(
    runtime: &tokio::runtime::Runtime,
    db: &Db,
    tenant: database::TenantId,
    n: usize,
) {
    runtime.block_on(writes::crate_claims(db, tenant, n));
}

#[inline(never)]
fn measured_raw_claims(
    runtime: &tokio::runtime::Runtime,
    pool: &deadpool_postgres::Pool,
    tenant: uuid::Uuid,
    n: usize,
) {
    runtime.block_on(writes::raw_claims(pool, tenant, n));
}

/// The `create_todo` and `claim_execution` operations on both sides, as the
/// side-by-side benchmark writes them.
mod writes {
    use super::rows::{EXECUTION_COLUMNS, decode_execution};
    use database::db::Db;
    use database::features::todos;
    use database::workflows::{NewWorkflow, WorkflowGraph, executions, workflows};
    use database::{TenantId, UserId};
    use diesel_async::RunQueryDsl;
    use uuid::Uuid;

    const TODO: &str = "INSERT INTO todos (id, user_id, tenant_id, title, description) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, user_id, tenant_id, title, description, completed, created_at, updated_at";

    pub async fn crate_todos(db: &Db, user: UserId, n: usize) {
        for i in 0..n {
            let input = todos::CreateTodo {
                title: format!("Todo {i}"),
                description: (i % 2 == 0).then(|| "Write the benchmark report".to_owned()),
                tenant_id: None,
            };
            let mut conn = db.conn().await.expect("a connection");
            std::hint::black_box(
                todos::create(&mut conn, user, &input)
                    .await
                    .expect("a todo"),
            );
        }
    }

    pub async fn raw_todos(pool: &deadpool_postgres::Pool, user: Uuid, n: usize) {
        for i in 0..n {
            let title = format!("Todo {i}");
            let description = (i % 2 == 0).then(|| "Write the benchmark report".to_owned());
            assert!((1..=255).contains(&title.chars().count()), "title");
            assert!(
                description
                    .as_ref()
                    .is_none_or(|d| d.chars().count() <= 1000),
                "description"
            );
            let client = pool.get().await.expect("a connection");
            let statement = client.prepare_cached(TODO).await.expect("prepared");
            let row = client
                .query_one(
                    &statement,
                    &[&Uuid::now_v7(), &user, &None::<Uuid>, &title, &description],
                )
                .await
                .expect("a todo");
            std::hint::black_box((
                row.get::<_, Uuid>(0),
                row.get::<_, Uuid>(1),
                row.get::<_, Option<Uuid>>(2),
                row.get::<_, String>(3),
                row.get::<_, Option<String>>(4),
                row.get::<_, bool>(5),
                row.get::<_, super::rows::Ts>(6),
                row.get::<_, super::rows::Ts>(7),
            ));
        }
    }

    /// `n` pending executions of a workflow of the tenant's made for this
    /// run (the tree's workflow keeps its own ten).
    pub async fn queue(db: &Db, tenant: TenantId, n: usize) {
        let mut conn = db.conn().await.expect("a connection");
        let graph: WorkflowGraph = serde_json::from_value(serde_json::json!({
            "nodes": [{"id": "n0", "type": "task", "data": {}}],
            "edges": [],
        }))
        .expect("a graph");
        let input = NewWorkflow {
            name: "claims".into(),
            description: None,
            graph,
        };
        let workflow = workflows::create(&mut conn, tenant, None, &input)
            .await
            .expect("a workflow");
        diesel::sql_query(
            "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version, status, input) \
             SELECT gen_random_uuid(), $1, $2, 1, 'pending', '{}'::jsonb FROM generate_series(1, $3)",
        )
        .bind::<diesel::sql_types::Uuid, _>(tenant)
        .bind::<diesel::sql_types::Uuid, _>(workflow.id)
        .bind::<diesel::sql_types::BigInt, _>(n as i64)
        .execute(&mut conn)
        .await
        .expect("a queue");
    }

    pub async fn crate_claims(db: &Db, tenant: TenantId, n: usize) {
        for i in 0..n {
            let worker = format!("worker-{}", i % 16);
            let mut conn = db.conn().await.expect("a connection");
            let claimed = executions::claim_next(&mut conn, tenant, &worker)
                .await
                .expect("a claim");
            std::hint::black_box(claimed.expect("the queue ran dry"));
        }
    }

    pub async fn raw_claims(pool: &deadpool_postgres::Pool, tenant: Uuid, n: usize) {
        let sql = format!(
            "UPDATE executions SET status = 'running', worker_id = $2, \
                    started_at = coalesce(started_at, now()), updated_at = now() \
             WHERE id = (SELECT id FROM executions WHERE tenant_id = $1 AND status = 'pending' \
                         ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {EXECUTION_COLUMNS}"
        );
        for i in 0..n {
            let worker = format!("worker-{}", i % 16);
            let client = pool.get().await.expect("a connection");
            let statement = client.prepare_cached(&sql).await.expect("prepared");
            let row = client
                .query_opt(&statement, &[&tenant, &worker])
                .await
                .expect("a claim")
                .expect("the queue ran dry");
            std::hint::black_box(decode_execution(&row));
        }
    }
}

/// The `workflow_tree` operation on both sides.
mod tree {
    use super::rows::{
        EXECUTION_COLUMNS, STEP_COLUMNS, StepRow, Ts, decode_execution, decode_step,
    };
    use database::db::Db;
    use database::tenancy::{NewTenant, tenants};
    use database::workflows::{NewWorkflow, WorkflowGraph, executions, workflows};
    use database::{TenantId, UserId, WorkflowId};
    use serde_json::Value;
    use uuid::Uuid;

    const WORKFLOW: &str = "SELECT id, tenant_id, owner_id, name, description, nodes, edges, version, \
         created_at, updated_at FROM workflows WHERE id = $1 AND tenant_id = $2";

    /// A tenant of `owner`'s with a 5-node workflow and 10 executions of it
    /// (kept from an earlier run of the same scratch database).
    pub async fn seed(conn: &mut database::Conn, owner: UserId) -> (TenantId, WorkflowId) {
        let slug = "instructions";
        let tenant = match tenants::find_by_slug(conn, slug).await {
            Ok(t) => t.id,
            Err(_) => {
                let input = NewTenant {
                    name: "Instructions".into(),
                    slug: slug.into(),
                };
                tenants::create_with_owner(conn, &input, owner)
                    .await
                    .expect("a tenant")
                    .id
            }
        };
        if let Some(w) = workflows::list(conn, tenant, None, 1)
            .await
            .expect("workflows")
            .items
            .first()
        {
            return (tenant, w.id);
        }
        let nodes: Vec<_> = (0..5)
            .map(|i| serde_json::json!({"id": format!("n{i}"), "type": "task", "data": {}}))
            .collect();
        let edges: Vec<_> = (1..5)
            .map(
                |i| serde_json::json!({"source": format!("n{}", i - 1), "target": format!("n{i}")}),
            )
            .collect();
        let graph: WorkflowGraph =
            serde_json::from_value(serde_json::json!({"nodes": nodes, "edges": edges}))
                .expect("a graph");
        let input = NewWorkflow {
            name: "tree".into(),
            description: None,
            graph,
        };
        let workflow = workflows::create(conn, tenant, None, &input)
            .await
            .expect("a workflow")
            .id;
        for _ in 0..10 {
            executions::start(conn, tenant, workflow, &Default::default())
                .await
                .expect("an execution");
        }
        (tenant, workflow)
    }

    pub async fn crate_reads(db: &Db, (tenant, workflow): (TenantId, WorkflowId), n: usize) {
        for _ in 0..n {
            let mut conn = db.conn().await.expect("a connection");
            let tree = workflows::find_with_recent_executions(&mut conn, tenant, workflow, 10)
                .await
                .expect("the tree");
            assert_eq!(tree.executions.len(), 10);
            std::hint::black_box(tree);
        }
    }

    pub async fn raw_reads(
        pool: &deadpool_postgres::Pool,
        (tenant, workflow): (Uuid, Uuid),
        n: usize,
    ) {
        let executions = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE workflow_id = $1 AND tenant_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT 10"
        );
        let steps = format!(
            "SELECT {STEP_COLUMNS} FROM execution_steps WHERE execution_id = ANY($1) \
             ORDER BY execution_id, position, id"
        );
        for _ in 0..n {
            let client = pool.get().await.expect("a connection");
            let statement = client.prepare_cached(WORKFLOW).await.expect("prepared");
            let w = client
                .query_one(&statement, &[&workflow, &tenant])
                .await
                .expect("the workflow");
            let head = (
                w.get::<_, Uuid>(0),
                w.get::<_, Uuid>(1),
                w.get::<_, Option<Uuid>>(2),
                w.get::<_, String>(3),
                w.get::<_, Option<String>>(4),
                w.get::<_, Value>(5),
                w.get::<_, Value>(6),
                w.get::<_, i64>(7),
                w.get::<_, Ts>(8),
                w.get::<_, Ts>(9),
            );
            let statement = client.prepare_cached(&executions).await.expect("prepared");
            let rows = client
                .query(&statement, &[&workflow, &tenant])
                .await
                .expect("executions");
            let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
            let statement = client.prepare_cached(&steps).await.expect("prepared");
            let steps = client.query(&statement, &[&ids]).await.expect("steps");
            let mut by_execution: std::collections::HashMap<Uuid, Vec<StepRow>> =
                std::collections::HashMap::new();
            for s in &steps {
                let step = decode_step(s);
                by_execution.entry(step.1).or_default().push(step);
            }
            let tree: Vec<_> = rows
                .iter()
                .map(|e| {
                    let execution = decode_execution(e);
                    let steps = by_execution.remove(&execution.0).unwrap_or_default();
                    (execution, steps)
                })
                .collect();
            assert_eq!(tree.len(), 10);
            std::hint::black_box((head, tree));
        }
    }
}
