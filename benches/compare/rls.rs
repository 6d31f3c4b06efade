//! The RLS pass (`scripts/bench --rls`): what row-level security and the
//! request context cost the tenant-scoped workloads. Three sides in one run,
//! alternating rounds as everywhere in this benchmark:
//!
//! - *rls*: the crate under the request's context (`Db::with(Ctx::tenant(..)
//!   .user(..))`) on a login the policies apply to (a role that owns
//!   nothing and cannot bypass them);
//! - *off*: the same crate calls on the benchmark's superuser login without
//!   a context (policies not applied, no settings sent): the crate as it ran
//!   before row-level security;
//! - *raw*: the hand-written SQL of the main pass, filtering by tenant by
//!   hand.
//!
//! Beside each row, the round trips per operation of each side, counted by
//! a loopback proxy over a separate sequential run: a round trip is the
//! client sending after the server has answered (what it sent together,
//! pipelined, is one).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{Context, Result};
use database::{Config, Db};
use diesel_async::SimpleAsyncConnection;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::workloads::{self, RawStatements, op};
use super::{Ctx, Mode, Workload};

/// The workloads whose tables have policies.
const TENANT_WORKLOADS: [&str; 5] = [
    "create_todo",
    "workflow_tree",
    "accept_invite",
    "claim_execution",
    "tenant_todo_page",
];

/// The login the policies apply to, created for the run (cluster-wide, so
/// dropped at the end).
pub const ROLE: &str = "database_bench_rls";
const ROLE_PASSWORD: &str = "bench-rls";
/// Tenant todos seeded for the page workload.
const TENANT_TODOS: i64 = 2_000;
/// Operations per side counted through the proxy (after a warm-up).
const COUNTED_OPS: u64 = 200;

#[derive(Serialize)]
struct RlsRow {
    workload: &'static str,
    concurrency: usize,
    rls_ops_per_sec: f64,
    off_ops_per_sec: f64,
    raw_ops_per_sec: f64,
    /// rls ÷ off, measured side by side.
    rls_vs_off: f64,
    /// rls ÷ raw, measured side by side.
    rls_vs_raw: f64,
    rls_round_trips_per_op: f64,
    off_round_trips_per_op: f64,
    raw_round_trips_per_op: f64,
}

/// Runs the pass on the scratch database `url` (migrated, empty).
pub async fn run(mode: Mode, url: &url::Url) -> Result<()> {
    let mut config = Config::new(url.as_str());
    config.pool_size = super::POOL_SIZE;
    let off_db = Db::new(config)?;
    off_db.migrate().await?;
    eprintln!("seeding ({} mode)...", mode.name);
    let data = workloads::seed(&off_db, mode.scale).await?;
    let mut admin = database::db::connect(off_db.config(), url.as_str()).await?;
    admin
        .batch_execute(&format!(
            "INSERT INTO todos (id, user_id, tenant_id, title, created_at, updated_at)
             SELECT gen_random_uuid(), (ARRAY['{users}']::uuid[])[1 + g % {n}], '{tenant}',
                    'Tenant todo ' || g, now() - g * interval '1 second', now()
             FROM generate_series(1, {TENANT_TODOS}) g;
             -- Statistics as autovacuum would soon leave them: with none
             -- for this tenant the planner expects one row, and under the
             -- policies (two permissive ones, OR-ed) it then picks a bitmap
             -- OR of both branches and a sort of all 2,000 rows.
             ANALYZE todos",
            users = data.user_ids[..data.user_ids.len().min(100)]
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join("','"),
            n = data.user_ids.len().min(100),
            tenant = data.tenant_ids[0],
        ))
        .await?;
    database::db::roles::grant_service_role(&mut admin, ROLE, Some(ROLE_PASSWORD)).await?;
    let outcome = measure_all(mode, url, data).await;
    // The role owns nothing; its privileges went with the database, which
    // the caller drops, but the grants must go before the role can.
    admin
        .batch_execute(&format!(
            "DROP OWNED BY {ROLE}; REVOKE ALL ON SCHEMA public FROM {ROLE}"
        ))
        .await?;
    drop(admin);
    outcome
}

/// The role's URL: `url` logged in as `ROLE`.
fn as_role(url: &url::Url) -> url::Url {
    let mut url = url.clone();
    let _ = url.set_username(ROLE);
    let _ = url.set_password(Some(ROLE_PASSWORD));
    url
}

fn sides(url: &url::Url, data: &workloads::Data) -> Result<(Arc<Ctx>, Arc<Ctx>)> {
    let mut config = Config::new(url.as_str());
    config.pool_size = super::POOL_SIZE;
    let off = Arc::new(Ctx {
        db: Db::new(config.clone())?,
        raw: super::raw_pool(url.as_str())?,
        data: data.clone(),
        unnamed: false,
        in_context: false,
    });
    config.database_url = as_role(url).to_string();
    // Migrations (none pending) and the system pool stay on the owner.
    config.migration_url = Some(url.to_string());
    let rls = Arc::new(Ctx {
        db: Db::new(config)?,
        raw: super::raw_pool(url.as_str())?,
        data: data.clone(),
        unnamed: false,
        in_context: true,
    });
    Ok((off, rls))
}

/// Each workload of `ctx`'s set, by name.
fn by_name(ctx: &Arc<Ctx>) -> Vec<Workload> {
    let mut all = workloads::all(ctx);
    all.push(tenant_todo_page(ctx));
    all.retain(|w| TENANT_WORKLOADS.contains(&w.name));
    all
}

async fn measure_all(mode: Mode, url: &url::Url, data: workloads::Data) -> Result<()> {
    let (off, rls) = sides(url, &data)?;
    let (off_set, rls_set) = (by_name(&off), by_name(&rls));
    let mut rows = Vec::new();
    for (o, r) in off_set.iter().zip(&rls_set) {
        let against_off = Workload {
            name: r.name,
            krate: r.krate.clone(),
            raw: o.krate.clone(),
        };
        let against_raw = Workload {
            name: r.name,
            krate: r.krate.clone(),
            raw: o.raw.clone(),
        };
        for concurrency in super::CONCURRENCY {
            let a = super::measure(&against_off, concurrency, mode)
                .await
                .with_context(|| format!("{} (rls vs off)", r.name))?;
            let c = super::measure(&against_raw, concurrency, mode)
                .await
                .with_context(|| format!("{} (rls vs raw)", r.name))?;
            eprintln!(
                "  {:<18} c={:<3} rls/off {:.2} rls/raw {:.2}",
                r.name, concurrency, a.ratio, c.ratio
            );
            rows.push(RlsRow {
                workload: r.name,
                concurrency,
                rls_ops_per_sec: (a.ops_per_sec + c.ops_per_sec) / 2.0,
                off_ops_per_sec: a.raw_ops_per_sec,
                raw_ops_per_sec: c.raw_ops_per_sec,
                rls_vs_off: a.ratio,
                rls_vs_raw: c.ratio,
                rls_round_trips_per_op: 0.0,
                off_round_trips_per_op: 0.0,
                raw_round_trips_per_op: 0.0,
            });
        }
    }
    drop((off_set, rls_set, off, rls));

    // Round trips, through the counting proxy.
    let proxy = CountingProxy::start(url).await?;
    let (off, rls) = sides(&proxy.url_to(url), &data)?;
    let (off_set, rls_set) = (by_name(&off), by_name(&rls));
    for (o, r) in off_set.iter().zip(&rls_set) {
        let turns = [
            proxy.round_trips_per_op(&r.krate).await?,
            proxy.round_trips_per_op(&o.krate).await?,
            proxy.round_trips_per_op(&o.raw).await?,
        ];
        for row in rows.iter_mut().filter(|row| row.workload == r.name) {
            [
                row.rls_round_trips_per_op,
                row.off_round_trips_per_op,
                row.raw_round_trips_per_op,
            ] = turns;
        }
    }

    println!(
        "\n{:<18} {:>4} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>10} {:>10}",
        "workload",
        "conc",
        "rls op/s",
        "off op/s",
        "raw op/s",
        "rls/off",
        "rls/raw",
        "rls trips",
        "off trips",
        "raw trips"
    );
    for row in &rows {
        println!(
            "{:<18} {:>4} {:>10.0} {:>10.0} {:>10.0} {:>8.2} {:>8.2} {:>10.1} {:>10.1} {:>10.1}",
            row.workload,
            row.concurrency,
            row.rls_ops_per_sec,
            row.off_ops_per_sec,
            row.raw_ops_per_sec,
            row.rls_vs_off,
            row.rls_vs_raw,
            row.rls_round_trips_per_op,
            row.off_round_trips_per_op,
            row.raw_round_trips_per_op
        );
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let file = if mode.name == "smoke" {
        "rls.smoke.json"
    } else {
        "rls.json"
    };
    std::fs::write(dir.join(file), serde_json::to_string_pretty(&rows)?)?;
    println!("\nwrote target/bench/{file}");
    Ok(())
}

/// A page of 50 of a tenant's todos, newest first (the indexed keyset
/// list a handler pages with).
fn tenant_todo_page(ctx: &Arc<Ctx>) -> Workload {
    Workload {
        name: "tenant_todo_page",
        krate: op(ctx, |ctx, _| async move {
            let tenant = ctx.data.tenant_ids[0];
            let mut conn = ctx.conn_in(Some(tenant), None).await?;
            let page =
                database::features::todos::list_for_tenant(&mut conn, tenant.into(), None, 50)
                    .await?;
            anyhow::ensure!(page.items.len() == 50, "page shape");
            std::hint::black_box(page);
            Ok(())
        }),
        raw: op(ctx, |ctx, _| async move {
            let tenant = ctx.data.tenant_ids[0];
            let client = ctx.raw.get().await?;
            let rows = client
                .rows(
                    ctx.unnamed,
                    "SELECT id, user_id, tenant_id, title, description, completed, created_at, updated_at \
                     FROM todos WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 51",
                    &[Type::UUID],
                    &[&tenant],
                )
                .await?;
            anyhow::ensure!(rows.len() == 51, "page shape");
            let page: Vec<_> = rows[..50].iter().map(workloads::decode_todo).collect();
            std::hint::black_box(page);
            Ok(())
        }),
    }
}

/// A loopback proxy that counts round trips: each time a client sends
/// after its server has answered.
struct CountingProxy {
    port: u16,
    round_trips: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl CountingProxy {
    async fn start(url: &url::Url) -> Result<CountingProxy> {
        let upstream = (
            url.host_str().context("a host")?.to_owned(),
            url.port().unwrap_or(5432),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let round_trips = Arc::new(AtomicU64::new(0));
        let counter = round_trips.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream.clone()).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                // Whether the server spoke since the client last sent.
                let answered = Arc::new(AtomicBool::new(false));
                tokio::spawn(pump(cr, sw, answered.clone(), Some(counter.clone())));
                tokio::spawn(pump(sr, cw, answered, None));
            }
        });
        Ok(CountingProxy {
            port,
            round_trips,
            accept,
        })
    }

    fn url_to(&self, url: &url::Url) -> url::Url {
        let mut url = url.clone();
        let _ = url.set_host(Some("127.0.0.1"));
        let _ = url.set_port(Some(self.port));
        url
    }

    /// Round trips per operation of `op`, run one at a time after a
    /// warm-up (connections opened, statements prepared).
    async fn round_trips_per_op(&self, op: &super::Op) -> Result<f64> {
        for i in 0..20 {
            op(i).await?;
        }
        let before = self.round_trips.load(Ordering::Relaxed);
        for i in 20..20 + COUNTED_OPS {
            op(i).await?;
        }
        let trips = self.round_trips.load(Ordering::Relaxed) - before;
        Ok(trips as f64 / COUNTED_OPS as f64)
    }
}

/// Forwards one direction. The client's side (`counter` set) counts a
/// round trip when it sends after the server answered; the server's side
/// records that it answered.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    answered: Arc<AtomicBool>,
    counter: Option<Arc<AtomicU64>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match &counter {
            Some(counter) => {
                if answered.swap(false, Ordering::Relaxed) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => answered.store(true, Ordering::Relaxed),
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
