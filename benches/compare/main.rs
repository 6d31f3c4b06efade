//! The side-by-side benchmark: each workload through the crate's repository
//! functions on its pool, and as hand-written SQL with prepared statements on
//! tokio-postgres through deadpool-postgres with the same pool size, in
//! alternating rounds so that machine noise hits both sides alike.
//!
//!   scripts/bench            # full run (release), writes target/bench/report.json
//!   scripts/bench --quick    # under a minute
//!   cargo test --bench compare   # seconds-long smoke run (what CI does)
//!   scripts/bench --baseline # the capacity plan's inputs (baseline.rs)
//!
//! It creates and drops its own scratch database on the server of
//! `DATABASE_URL` (else the project's own cluster, when `db up` started it).

mod baseline;
mod recording;
mod rls;
mod rows;
mod server_watch;
mod sqlite;
mod telemetry;
mod workloads;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use database::{Config, Db};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde::Serialize;

/// One operation of one side; `i` varies the input.
pub type Op = Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

/// A workload: the same operation written both ways.
pub struct Workload {
    pub name: &'static str,
    pub krate: Op,
    pub raw: Op,
}

/// Everything the workloads share.
pub struct Ctx {
    pub db: Db,
    pub raw: deadpool_postgres::Pool,
    pub data: workloads::Data,
    /// The raw side sends unnamed statements (`query_typed`), as it must
    /// through a transaction-mode pooler; else prepared, cached ones.
    pub unnamed: bool,
    /// The RLS pass (`rls.rs`): tenant-scoped operations run under the
    /// request context (`Db::with`), on a login that row-level security
    /// applies to.
    pub in_context: bool,
}

impl Ctx {
    /// The connection of a tenant-scoped operation: under the request's
    /// context in the RLS pass, else a plain one (the policies do not apply
    /// to the benchmark's superuser login).
    pub async fn conn_in(
        &self,
        tenant: Option<uuid::Uuid>,
        user: Option<uuid::Uuid>,
    ) -> database::Result<database::PooledConn> {
        if !self.in_context {
            return self.db.conn().await;
        }
        let mut request = database::Ctx::new();
        if let Some(t) = tenant {
            request = request.in_tenant(t.into());
        }
        if let Some(u) = user {
            request = request.user(u.into());
        }
        self.db.with(request).conn().await
    }
}

#[derive(Clone, Copy)]
struct Mode {
    name: &'static str,
    rounds: usize,
    round: Duration,
    scale: workloads::Scale,
}

const FULL: Mode = Mode {
    name: "full",
    rounds: 6,
    round: Duration::from_millis(1500),
    scale: workloads::Scale::FULL,
};
const QUICK: Mode = Mode {
    name: "quick",
    rounds: 2,
    round: Duration::from_millis(400),
    scale: workloads::Scale::QUICK,
};
const SMOKE: Mode = Mode {
    name: "smoke",
    rounds: 1,
    round: Duration::from_millis(60),
    scale: workloads::Scale::SMOKE,
};

/// Every workload, in report order: a run must produce a row for each at
/// each concurrency (see `check_results`).
const WORKLOADS: [&str; 7] = [
    "user_by_id",
    "create_todo",
    "messages_page",
    "workflow_tree",
    "steps_batch",
    "accept_invite",
    "claim_execution",
];

/// The pool size of both sides.
const POOL_SIZE: usize = 10;
const CONCURRENCY: [usize; 2] = [1, 16];

#[derive(Serialize)]
struct Row {
    workload: &'static str,
    concurrency: usize,
    ops_per_sec: f64,
    raw_ops_per_sec: f64,
    ratio: f64,
    p50_us: u64,
    p99_us: u64,
    raw_p50_us: u64,
    raw_p99_us: u64,
    /// CPU time (user + system) this process spent per operation: the
    /// client's own cost, which the server's time does not hide.
    cpu_us_per_op: f64,
    raw_cpu_us_per_op: f64,
    /// CPU time of another process (PgBouncer in the pooler pass) per
    /// operation of each side, when one was watched.
    #[serde(skip_serializing_if = "Option::is_none")]
    watched_cpu_us_per_op: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_watched_cpu_us_per_op: Option<f64>,
    /// The share of the measured time during which some task on the machine
    /// was waiting for a CPU (`/proc/pressure/cpu`, "some"), in percent:
    /// client, server and PgBouncer share two cores, and a high figure
    /// says a latency includes waiting for a turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_wait_pct: Option<f64>,
    /// What the server's backends waited on, and the WAL flush time per
    /// operation, during the row (`server_watch.rs`), when watched.
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<server_watch::ServerRow>,
}

/// A workload through PgBouncer (transaction mode): the crate in pooler
/// mode against the raw driver's unnamed statements through the same
/// PgBouncer, and against the crate's own direct figure of the same run.
#[derive(Serialize)]
struct PoolerRow {
    workload: &'static str,
    concurrency: usize,
    ops_per_sec: f64,
    raw_ops_per_sec: f64,
    /// Crate in pooler mode / raw unnamed statements, both through PgBouncer.
    ratio: f64,
    /// Crate in pooler mode through PgBouncer / crate direct (same run).
    vs_direct: f64,
    /// Raw unnamed statements through PgBouncer / raw prepared statements
    /// direct (same run): what the extra hop costs the driver itself.
    raw_vs_direct: f64,
    p50_us: u64,
    raw_p50_us: u64,
    /// PgBouncer's own CPU time (user + system) per operation of each side.
    bouncer_cpu_us_per_op: f64,
    raw_bouncer_cpu_us_per_op: f64,
    /// See `Row::cpu_wait_pct`.
    cpu_wait_pct: Option<f64>,
    /// See `Row::server`.
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<server_watch::ServerRow>,
    /// At concurrency 1: crate in pooler mode through PgBouncer / crate
    /// direct with its statement cache off (the same parse-and-plan work on
    /// the server), measured side by side after the pooler rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    vs_direct_uncached: Option<f64>,
}

/// pgbench (C, libpq, `-M extended`: unnamed statements, as pooler mode
/// sends) running `user_by_id`'s lookup on the same users table, direct and
/// through the same PgBouncer, in the same run: what the hop costs a client
/// with almost no cost of its own.
#[derive(Serialize)]
struct PgbenchRow {
    concurrency: usize,
    direct_tps: f64,
    pooled_tps: f64,
    /// Through PgBouncer / direct.
    pooled_vs_direct: f64,
    direct_latency_ms: f64,
    pooled_latency_ms: f64,
    bouncer_cpu_us_per_tx: f64,
    /// The crate's user_by_id in pooler mode through PgBouncer / pgbench
    /// through PgBouncer (same run).
    crate_vs_pgbench_pooled: f64,
}

#[derive(Serialize)]
struct Report {
    mode: &'static str,
    machine: String,
    pool_size: usize,
    results: Vec<Row>,
    /// The same workloads through PgBouncer in transaction mode.
    pooler: Vec<PoolerRow>,
    /// Why there is no pooler column (PgBouncer missing), if there is none.
    pooler_skipped: Option<String>,
    /// pgbench's lookup direct and through the same PgBouncer.
    pgbench: Vec<PgbenchRow>,
    /// Why there are no pgbench rows (pgbench or PgBouncer missing).
    pgbench_skipped: Option<String>,
    /// Peak resident memory of this whole process (both sides and the data).
    bench_peak_rss_mib: f64,
    /// Peak resident memory of a separate process that only runs the crate
    /// side, pool of 10, at concurrency 16 over every workload.
    service_peak_rss_mib: f64,
    migrate_up_to_date_statements: usize,
    migrate_up_to_date_ms: f64,
}

fn main() -> std::process::ExitCode {
    // A plain message, never a backtrace: the usual failure is a missing
    // server, which the message says how to fix.
    match bench_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn bench_main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test` passes neither flag.
    let mode = if args.iter().any(|a| a == "--quick") {
        QUICK
    } else if args.iter().any(|a| a == "--bench" || a == "--full") {
        FULL
    } else {
        SMOKE
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if args.iter().any(|a| a == "--baseline") {
        return runtime.block_on(baseline::run());
    }
    if args.iter().any(|a| a == "--rls") {
        return runtime.block_on(rls_main(mode));
    }
    if args.iter().any(|a| a == "--telemetry") {
        return runtime.block_on(telemetry_main(mode));
    }
    if args.iter().any(|a| a == "--service-mix") {
        let url = args
            .iter()
            .find_map(|a| a.strip_prefix("--url="))
            .context("--service-mix needs --url=")?;
        return runtime.block_on(service_mix(url.to_owned(), mode));
    }
    // `--only=a,b`: just these workloads (for chasing one gap); the report
    // then holds only them, and the memory figures are skipped.
    let only: Option<Vec<String>> = args
        .iter()
        .find_map(|a| a.strip_prefix("--only="))
        .map(|v| v.split(',').map(str::to_owned).collect());
    runtime.block_on(run(mode, only))
}

fn server_url() -> Result<url::Url> {
    // What scripts/bench chose (the rule of scripts/test), else
    // DATABASE_URL, else the project's own cluster when `db up` started it.
    let raw = std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| database::db::local::service_url().ok().flatten())
        .context(
            "no PostgreSQL for the benchmark: run it with scripts/bench (which finds or starts \
             one, as scripts/test does), or set DATABASE_URL",
        )?;
    let mut url = url::Url::parse(&raw).context("DATABASE_URL is not a URL")?;
    url.set_path("");
    // Both sides on the same transport: the raw side connects without TLS,
    // so the crate is told to as well (its default, like libpq's, is
    // `prefer`: encrypted whenever the server offers it).
    if !url.query_pairs().any(|(k, _)| k == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
    Ok(url)
}

/// Runs `f` on a scratch database created for it (and dropped after,
/// whatever `f` returns) on the benchmark's server. Also returns a
/// connection to the server's `postgres` database, for what must happen
/// after the drop.
async fn on_scratch_database<T>(
    f: impl AsyncFnOnce(&url::Url) -> Result<T>,
) -> Result<(Result<T>, AsyncPgConnection)> {
    let name = format!("database_bench_{}", std::process::id());
    let mut db_url = server_url()?;
    db_url.set_path(&format!("/{name}"));
    let mut admin_url = server_url()?;
    admin_url.set_path("/postgres");
    let mut admin = AsyncPgConnection::establish(admin_url.as_str()).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let outcome = f(&db_url).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    Ok((outcome, admin))
}

/// `scripts/bench --telemetry`: spans and metrics on and off (`telemetry.rs`).
async fn telemetry_main(mode: Mode) -> Result<()> {
    let (rows, _) =
        on_scratch_database(async |url| telemetry::run(mode, url.as_str()).await).await?;
    let rows = rows?;
    println!(
        "\n{:<14} {:>4} {:>9} {:>8} {:>9} {:>9} {:>9} {:>10} {:>9} {:>10} {:>9}",
        "workload",
        "conc",
        "ratio off",
        "spans",
        "+metrics",
        "ratio on",
        "building",
        "+metrics",
        "overhead",
        "commented",
        "its cost"
    );
    for r in &rows {
        println!(
            "{:<14} {:>4} {:>9.3} {:>8.3} {:>9.3} {:>9.3} {:>8.1}% {:>9.1}% {:>8.1}% {:>10.3} {:>8.1}%",
            r.workload,
            r.concurrency,
            r.ratio_without,
            r.ratio_spans_built,
            r.ratio_metrics_recorded,
            r.ratio_with,
            r.spans_built_pct,
            r.metrics_recorded_pct,
            r.overhead_pct,
            r.ratio_sqlcommenter,
            r.sqlcommenter_pct
        );
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("telemetry.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;
    println!("\nwrote target/bench/telemetry.json");
    Ok(())
}

/// `scripts/bench --rls`: the RLS pass alone (see `rls.rs`).
async fn rls_main(mode: Mode) -> Result<()> {
    let (outcome, mut admin) = on_scratch_database(async |url| rls::run(mode, url).await).await?;
    // The pass's login is cluster-wide: it goes once its database has.
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {}", rls::ROLE))
        .await?;
    outcome
}

async fn run(mode: Mode, only: Option<Vec<String>>) -> Result<()> {
    let (report, _) =
        on_scratch_database(async |url| bench(mode, url.as_str(), only.as_deref()).await).await?;
    let report = report?;

    print_table(&report);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let file = if mode.name == "smoke" {
        "report.smoke.json"
    } else if only.is_some() {
        "report.only.json"
    } else {
        "report.json"
    };
    std::fs::write(dir.join(file), serde_json::to_string_pretty(&report)?)?;
    println!("\nwrote target/bench/{file}");
    Ok(())
}

async fn bench(mode: Mode, url: &str, only: Option<&[String]>) -> Result<Report> {
    // First: the WAL timing it turns on reaches only sessions opened after.
    let server = server_watch::ServerWatch::start(url).await?;
    let mut config = Config::new(url);
    config.pool_size = POOL_SIZE;
    let db = Db::new(config)?;
    db.migrate().await?;
    let (migrate_up_to_date_statements, migrate_up_to_date_ms) = migrate_cost(url).await?;

    let raw = raw_pool(url)?;

    eprintln!("seeding ({} mode)...", mode.name);
    let data = workloads::seed(&db, mode.scale).await?;
    let ctx = Arc::new(Ctx {
        db,
        raw,
        data: data.clone(),
        unnamed: false,
        in_context: false,
    });

    if let Some(names) = only {
        let mut known: Vec<&str> = workloads::all(&ctx).iter().map(|w| w.name).collect();
        known.extend(sqlite::WORKLOADS);
        for name in names {
            anyhow::ensure!(
                known.contains(&name.as_str()),
                "unknown workload {name:?}; the workloads are {}",
                known.join(", ")
            );
        }
    }
    let mut results = measure_each(workloads::all(&ctx), only, mode, "", Some(&server)).await?;
    // The SQLite rows (auth on a SQLite file): same rounds, same measure.
    if only.is_none_or(|names| {
        sqlite::WORKLOADS
            .iter()
            .any(|w| names.iter().any(|n| n == w))
    }) {
        let sqlite = sqlite::Bench::new(ctx.data.user_ids.len().clamp(100, 10_000)).await?;
        results.extend(measure_each(sqlite.workloads(), only, mode, "", None).await?);
    }
    let defined: Vec<&str> = workloads::all(&ctx).iter().map(|w| w.name).collect();
    anyhow::ensure!(
        defined == WORKLOADS,
        "the workloads are {defined:?}, BENCHMARKS.md reports {WORKLOADS:?}: update both"
    );
    let expected: Vec<&str> = WORKLOADS
        .into_iter()
        .chain(sqlite::WORKLOADS)
        .filter(|name| only.is_none_or(|names| names.iter().any(|n| n == name)))
        .collect();
    check_results(&expected, &results)?;
    // Before the pooler pass: the service-mix child accepts the invites
    // reserved for it, and the pooler pass would reach into them.
    let service_peak_rss_mib = if only.is_none() {
        measure_service(url, mode)?
    } else {
        0.0
    };
    let (pooler, pooler_skipped, pgbench, pgbench_skipped) =
        match through_pooler(mode, url, data, only, &results, &server).await? {
            Ok((rows, Ok(pgbench))) => (rows, None, pgbench, None),
            Ok((rows, Err(why))) => {
                eprintln!("no pgbench rows: {why}");
                (rows, None, Vec::new(), Some(why))
            }
            Err(why) => {
                eprintln!("no pooler column: {why}");
                (Vec::new(), Some(why.clone()), Vec::new(), Some(why))
            }
        };
    Ok(Report {
        mode: mode.name,
        machine: machine(),
        pool_size: POOL_SIZE,
        results,
        pooler,
        pooler_skipped,
        pgbench,
        pgbench_skipped,
        bench_peak_rss_mib: peak_rss_mib(),
        service_peak_rss_mib,
        migrate_up_to_date_statements,
        migrate_up_to_date_ms,
    })
}

/// Every workload of `workloads` that `only` keeps (all without it), at
/// every concurrency, in order; `context` names the pass in errors and logs.
async fn measure_each(
    workloads: Vec<Workload>,
    only: Option<&[String]>,
    mode: Mode,
    context: &str,
    server: Option<&server_watch::ServerWatch>,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for workload in workloads {
        if only.is_some_and(|names| !names.iter().any(|n| n == workload.name)) {
            continue;
        }
        for concurrency in CONCURRENCY {
            let row = measure_watching(&workload, concurrency, mode, None, server)
                .await
                .with_context(|| format!("{}{context}", workload.name))?;
            eprintln!(
                "  {:<18} c={:<3} ratio {:.2}{context}",
                row.workload, row.concurrency, row.ratio
            );
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The raw side's pool on `url`: tokio-postgres through deadpool-postgres,
/// `POOL_SIZE` connections, fast recycling (as the crate's default).
fn raw_pool(url: &str) -> Result<deadpool_postgres::Pool> {
    let pg_config: tokio_postgres::Config = url.parse()?;
    let manager = deadpool_postgres::Manager::from_config(
        pg_config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    Ok(deadpool_postgres::Pool::builder(manager)
        .max_size(POOL_SIZE)
        .build()?)
}

/// The pooler column: every workload again, through a throwaway PgBouncer
/// in transaction mode in front of the same server (pool of `POOL_SIZE`
/// server connections), the crate in pooler mode (`DB_POOLER=transaction`)
/// against the raw driver's unnamed statements. `Err(why)` when PgBouncer is
/// not installed (an error instead under `DB_TEST_REQUIRE_ALL=1`). With the
/// rows, pgbench's lookup through the same PgBouncer (`pgbench_rows`), or
/// why there is none.
#[allow(clippy::type_complexity, reason = "two independent skips")]
async fn through_pooler(
    mode: Mode,
    url: &str,
    data: workloads::Data,
    only: Option<&[String]>,
    direct: &[Row],
    watch: &server_watch::ServerWatch,
) -> Result<
    std::result::Result<(Vec<PoolerRow>, std::result::Result<Vec<PgbenchRow>, String>), String>,
> {
    let users = data.user_ids.len();
    let server = url::Url::parse(url)?;
    let options = database::ops::cluster::BouncerOptions {
        pool_size: POOL_SIZE as u32,
        ..database::ops::cluster::BouncerOptions::transaction_mode(
            server.host_str().unwrap_or("127.0.0.1"),
            server.port().unwrap_or(5432),
        )
    };
    let bouncer = match database::ops::cluster::TempPgBouncer::start(&options) {
        Ok(b) => b,
        Err(e) if std::env::var("DB_TEST_REQUIRE_ALL").is_err() => return Ok(Err(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let user = if server.username().is_empty() {
        "postgres"
    } else {
        server.username()
    };
    let database = server.path().trim_start_matches('/');
    let mut via = url::Url::parse(&bouncer.url_of(user, database))?;
    via.set_query(server.query());
    let mut config = Config::new(via.as_str());
    // As `db setup` makes it for the service role: the server bounds the
    // login role's statements in the scratch database as each call is
    // bounded, so pooler mode sends a statement alone (the raw side logs in
    // as the same role: its statements are bounded alike).
    let mut admin = database::db::connect(&config, url).await?;
    database::db::roles::bound_service_role(&mut admin, user, database, config.query_timeout)
        .await?;
    // The direct pass left dead rows behind (claims, accepted invites),
    // and autovacuum may or may not have run since: the claim's queue head
    // then holds tens of thousands of dead index entries that every claim
    // walks (BENCHMARKS.md, "The pooler rows that collapsed"). Both passes
    // start from a vacuumed table, so the pooler rows measure the hop.
    diesel_async::SimpleAsyncConnection::batch_execute(&mut admin, "VACUUM ANALYZE").await?;
    drop(admin);
    config.pool_size = POOL_SIZE;
    config.pooler = database::db::Pooler::Transaction;
    config.migration_url = Some(url.to_owned());
    let db = Db::new(config)?;
    let raw = raw_pool(via.as_str())?;
    let ctx = Arc::new(Ctx {
        db,
        raw,
        data,
        unnamed: true,
        in_context: false,
    });
    let mut measured = Vec::new();
    for workload in workloads::all(&ctx) {
        if only.is_some_and(|names| !names.iter().any(|n| n == workload.name)) {
            continue;
        }
        for concurrency in CONCURRENCY {
            measured.push(
                measure_watching(
                    &workload,
                    concurrency,
                    mode,
                    Some(bouncer.pid()),
                    Some(watch),
                )
                .await
                .with_context(|| format!("{} through PgBouncer", workload.name))?,
            );
        }
    }
    let mut rows = Vec::new();
    for row in measured {
        let concurrency = row.concurrency;
        let same = direct
            .iter()
            .find(|d| d.workload == row.workload && d.concurrency == concurrency);
        let (direct_ops, raw_direct_ops) =
            same.map_or((f64::NAN, f64::NAN), |d| (d.ops_per_sec, d.raw_ops_per_sec));
        let vs_direct = (row.ops_per_sec / direct_ops * 1000.0).round() / 1000.0;
        let raw_vs_direct = (row.raw_ops_per_sec / raw_direct_ops * 1000.0).round() / 1000.0;
        eprintln!(
            "  {:<16} c={:<3} pooler ratio {:.2}, vs direct {:.2} (raw: {:.2})",
            row.workload, row.concurrency, row.ratio, vs_direct, raw_vs_direct
        );
        anyhow::ensure!(
            row.ratio.is_finite() && (0.01..=100.0).contains(&row.ratio) && vs_direct.is_finite(),
            "{} c={concurrency} through PgBouncer: implausible ratios {} / {vs_direct}",
            row.workload,
            row.ratio
        );
        rows.push(PoolerRow {
            workload: row.workload,
            concurrency,
            ops_per_sec: row.ops_per_sec,
            raw_ops_per_sec: row.raw_ops_per_sec,
            ratio: row.ratio,
            vs_direct,
            raw_vs_direct,
            p50_us: row.p50_us,
            raw_p50_us: row.raw_p50_us,
            bouncer_cpu_us_per_op: row.watched_cpu_us_per_op.unwrap_or(f64::NAN),
            raw_bouncer_cpu_us_per_op: row.raw_watched_cpu_us_per_op.unwrap_or(f64::NAN),
            cpu_wait_pct: row.cpu_wait_pct,
            server: row.server,
            vs_direct_uncached: None,
        });
    }
    // Pooler mode against the crate's direct mode with its statement cache
    // off, side by side at concurrency 1 (issue #29's goal): the same
    // parse-and-plan work on the server, so the hop is what differs. From a
    // vacuumed table again (the pooler rows claimed and accepted too).
    let mut admin = database::db::connect(&Config::new(url), url).await?;
    diesel_async::SimpleAsyncConnection::batch_execute(&mut admin, "VACUUM ANALYZE").await?;
    drop(admin);
    let mut uncached_config = Config::new(url);
    uncached_config.pool_size = POOL_SIZE;
    uncached_config.statement_cache = false;
    let uncached = Arc::new(Ctx {
        db: Db::new(uncached_config)?,
        raw: raw_pool(url)?,
        data: ctx.data.clone(),
        unnamed: false,
        in_context: false,
    });
    for (pooled, direct) in workloads::all(&ctx)
        .into_iter()
        .zip(workloads::all(&uncached))
    {
        if only.is_some_and(|names| !names.iter().any(|n| n == pooled.name)) {
            continue;
        }
        let pair = Workload {
            name: pooled.name,
            krate: pooled.krate,
            raw: direct.krate,
        };
        let row = measure(&pair, 1, mode)
            .await
            .with_context(|| format!("{} through PgBouncer against direct, uncached", pair.name))?;
        eprintln!(
            "  {:<16} c=1   pooler vs direct with the statement cache off {:.2}",
            row.workload, row.ratio
        );
        if let Some(pooled) = rows
            .iter_mut()
            .find(|r| r.workload == row.workload && r.concurrency == 1)
        {
            pooled.vs_direct_uncached = Some(row.ratio);
        }
    }
    uncached.db.close();
    ctx.db.close();
    let pgbench = if only.is_none_or(|names| names.iter().any(|n| n == "user_by_id")) {
        pgbench_rows(mode, url, via.as_str(), bouncer.pid(), users, &rows).await?
    } else {
        Err("user_by_id was not run".to_owned())
    };
    Ok(Ok((rows, pgbench)))
}

/// pgbench's primary-key lookup of the seeded users (ids `md5('user' || n)`,
/// see `workloads::seed`), `-M extended`, direct and through PgBouncer at
/// each concurrency, for half a side's measuring time each. `Err(why)` when
/// pgbench is not installed (an error under `DB_TEST_REQUIRE_ALL=1`).
async fn pgbench_rows(
    mode: Mode,
    direct_url: &str,
    pooled_url: &str,
    bouncer: u32,
    users: usize,
    pooler: &[PoolerRow],
) -> Result<std::result::Result<Vec<PgbenchRow>, String>> {
    let found = std::process::Command::new("pgbench")
        .arg("--version")
        .output();
    if let Err(e) = found {
        let why = format!("pgbench: {e} (Debian's postgresql package has it)");
        anyhow::ensure!(std::env::var("DB_TEST_REQUIRE_ALL").is_err(), "{why}");
        return Ok(Err(why));
    }
    // pgbench does not look at what a statement returns: make sure its
    // lookup finds the users the seed made (ids md5('user' || n)).
    {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Found {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = database::db::connect(&Config::new(direct_url), direct_url).await?;
        let found: Found = diesel::sql_query(
            "SELECT count(*) AS n FROM users WHERE id IN (md5('user1')::uuid, md5('user' || $1)::uuid)",
        )
        .bind::<diesel::sql_types::Text, _>(users.to_string())
        .get_result(&mut conn)
        .await?;
        anyhow::ensure!(
            found.n == 2,
            "pgbench's lookup would find {} of users 1 and {users}: the seed's ids changed",
            found.n
        );
    }
    let script = std::env::temp_dir().join(format!("bench-pgbench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "\\set n random(1, {users})\n\
             SELECT id, email, email_verified, name, image, created_at, updated_at \
             FROM users WHERE id = md5('user' || :n)::uuid;\n"
        ),
    )?;
    let seconds = ((mode.round * mode.rounds as u32).as_secs() / 2).max(1);
    let run = |url: &str, clients: usize| {
        let (url, script) = (url.to_owned(), script.clone());
        tokio::task::spawn_blocking(move || -> Result<(f64, f64)> {
            let out = std::process::Command::new("pgbench")
                .args(["-n", "-M", "extended", "-f"])
                .arg(&script)
                .args([
                    "-c",
                    &clients.to_string(),
                    "-j",
                    &clients.min(2).to_string(),
                ])
                .args(["-T", &seconds.to_string()])
                .arg(&url)
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            anyhow::ensure!(
                out.status.success(),
                "pgbench failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            );
            let number_after = |prefix: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(prefix))
                    .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
                    .with_context(|| format!("no {prefix:?} in pgbench's output: {text}"))
            };
            Ok((number_after("tps = ")?, number_after("latency average = ")?))
        })
    };
    let mut rows = Vec::new();
    for concurrency in CONCURRENCY {
        let (direct_tps, direct_latency_ms) = run(direct_url, concurrency).await??;
        let before = cpu_of(bouncer);
        let (pooled_tps, pooled_latency_ms) = run(pooled_url, concurrency).await??;
        let bouncer_cpu = cpu_of(bouncer) - before;
        let crate_pooled = pooler
            .iter()
            .find(|r| r.workload == "user_by_id" && r.concurrency == concurrency)
            .map_or(f64::NAN, |r| r.ops_per_sec);
        let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
        rows.push(PgbenchRow {
            concurrency,
            direct_tps: direct_tps.round(),
            pooled_tps: pooled_tps.round(),
            pooled_vs_direct: round3(pooled_tps / direct_tps),
            direct_latency_ms,
            pooled_latency_ms,
            bouncer_cpu_us_per_tx: (bouncer_cpu.as_secs_f64() * 1e7
                / (pooled_tps * seconds as f64).max(1.0))
            .round()
                / 10.0,
            crate_vs_pgbench_pooled: round3(crate_pooled / pooled_tps),
        });
    }
    let _ = std::fs::remove_file(&script);
    Ok(Ok(rows))
}

/// Refuses a run that proves nothing: every expected workload must have run
/// at every concurrency, with operations on both sides and a finite,
/// plausible ratio. `cargo test` runs the smoke mode, so a workload that
/// silently does nothing (or stops running) fails the test suite.
fn check_results(expected: &[&str], results: &[Row]) -> Result<()> {
    for name in expected {
        for concurrency in CONCURRENCY {
            let row = results
                .iter()
                .find(|r| r.workload == *name && r.concurrency == concurrency)
                .with_context(|| format!("workload {name} did not run at c={concurrency}"))?;
            anyhow::ensure!(
                row.ops_per_sec > 0.0 && row.raw_ops_per_sec > 0.0,
                "{name} c={concurrency}: no operations on one side \
                 (crate {:.1}/s, raw {:.1}/s)",
                row.ops_per_sec,
                row.raw_ops_per_sec
            );
            anyhow::ensure!(
                row.ratio.is_finite() && (0.01..=100.0).contains(&row.ratio),
                "{name} c={concurrency}: implausible ratio {}",
                row.ratio
            );
        }
    }
    anyhow::ensure!(
        results.len() == expected.len() * CONCURRENCY.len(),
        "{} results for {} workloads at {} concurrencies",
        results.len(),
        expected.len(),
        CONCURRENCY.len()
    );
    Ok(())
}

/// Runs `op` from `concurrency` tasks until `deadline`; returns each op's latency in µs.
async fn round(
    op: &Op,
    concurrency: usize,
    length: Duration,
    seq: &Arc<AtomicUsize>,
) -> Result<(Vec<u64>, Duration)> {
    let start = Instant::now();
    let deadline = start + length;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let op = op.clone();
            let seq = seq.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let i = seq.fetch_add(1, Ordering::Relaxed) as u64;
                    let t = Instant::now();
                    op(i).await?;
                    latencies.push(t.elapsed().as_micros() as u64);
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all, start.elapsed()))
}

async fn measure(w: &Workload, concurrency: usize, mode: Mode) -> Result<Row> {
    measure_watching(w, concurrency, mode, None, None).await
}

/// `measure`, also counting the CPU time process `watched` (PgBouncer)
/// spends during each side's rounds, and what the server's backends did
/// (`server`).
async fn measure_watching(
    w: &Workload,
    concurrency: usize,
    mode: Mode,
    watched: Option<u32>,
    server: Option<&server_watch::ServerWatch>,
) -> Result<Row> {
    let seq = Arc::new(AtomicUsize::new(0));
    // Warm both sides: connections open, statements prepared.
    round(&w.krate, concurrency, mode.round / 4, &seq).await?;
    round(&w.raw, concurrency, mode.round / 4, &seq).await?;
    let mark = match server {
        Some(watch) => Some(watch.begin().await),
        None => None,
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut our_time, mut their_time) = (Duration::ZERO, Duration::ZERO);
    let (mut our_cpu, mut their_cpu) = (Duration::ZERO, Duration::ZERO);
    let (mut our_watched, mut their_watched) = (Duration::ZERO, Duration::ZERO);
    let waited_before = cpu_pressure();
    for r in 0..mode.rounds {
        // Alternate who goes first, so drift in machine load hits both.
        let order = if r % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_crate in order {
            let op = if is_crate { &w.krate } else { &w.raw };
            let cpu_before = process_cpu();
            let watched_before = watched.map(cpu_of);
            let (lat, took) = round(op, concurrency, mode.round, &seq).await?;
            let cpu = process_cpu() - cpu_before;
            let other =
                watched.map_or(Duration::ZERO, cpu_of) - watched_before.unwrap_or(Duration::ZERO);
            if is_crate {
                ours.extend(lat);
                our_time += took;
                our_cpu += cpu;
                our_watched += other;
            } else {
                theirs.extend(lat);
                their_time += took;
                their_cpu += cpu;
                their_watched += other;
            }
        }
    }
    let server = match server.zip(mark) {
        Some((watch, mark)) => Some(watch.end(mark, ours.len() + theirs.len()).await),
        None => None,
    };
    let cpu_wait_pct = cpu_pressure().zip(waited_before).map(|(after, before)| {
        let measured = (our_time + their_time).as_secs_f64();
        ((after - before).as_secs_f64() / measured * 1000.0).round() / 10.0
    });
    let ops = ours.len() as f64 / our_time.as_secs_f64();
    let raw_ops = theirs.len() as f64 / their_time.as_secs_f64();
    let per_op =
        |cpu: Duration, n: usize| (cpu.as_secs_f64() * 1e7 / n.max(1) as f64).round() / 10.0;
    let cpu_us_per_op = per_op(our_cpu, ours.len());
    let raw_cpu_us_per_op = per_op(their_cpu, theirs.len());
    Ok(Row {
        workload: w.name,
        concurrency,
        ops_per_sec: ops.round(),
        raw_ops_per_sec: raw_ops.round(),
        ratio: (ops / raw_ops * 1000.0).round() / 1000.0,
        p50_us: percentile(&mut ours, 50.0),
        p99_us: percentile(&mut ours, 99.0),
        raw_p50_us: percentile(&mut theirs, 50.0),
        raw_p99_us: percentile(&mut theirs, 99.0),
        cpu_us_per_op,
        raw_cpu_us_per_op,
        watched_cpu_us_per_op: watched.map(|_| per_op(our_watched, ours.len())),
        raw_watched_cpu_us_per_op: watched.map(|_| per_op(their_watched, theirs.len())),
        cpu_wait_pct,
        server,
    })
}

/// How long, in all, some task on this machine has waited for a CPU
/// (`/proc/pressure/cpu`, the "some" line's total); `None` without PSI.
fn cpu_pressure() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = text.lines().find(|l| l.starts_with("some "))?;
    let total = some
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?;
    Some(Duration::from_micros(total.parse().ok()?))
}

/// User + system CPU time of process `pid` so far, from `/proc` (in clock
/// ticks, 10 ms each: summed over a whole side's rounds); zero when it
/// cannot be read.
fn cpu_of(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The fields after the command name, which may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15 of the whole line.
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// User + system CPU time of this whole process so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn percentile(values: &mut [u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let idx = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[idx]
}

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

struct CountStatements;

impl diesel::connection::Instrumentation for CountStatements {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        if let diesel::connection::InstrumentationEvent::StartQuery { .. } = event {
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Statements and time that `Db::migrate()` costs a fresh service on an
/// up-to-date database, connection set-up included.
async fn migrate_cost(url: &str) -> Result<(usize, f64)> {
    diesel::connection::set_default_instrumentation(|| Some(Box::new(CountStatements)))?;
    let db = Db::new(Config::new(url))?;
    STATEMENTS.store(0, Ordering::Relaxed);
    let start = Instant::now();
    let report = db.migrate().await?;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let statements = STATEMENTS.load(Ordering::Relaxed);
    diesel::connection::set_default_instrumentation(|| None)?;
    anyhow::ensure!(report.applied.is_empty(), "the database was not up to date");
    Ok((statements, (ms * 100.0).round() / 100.0))
}

/// Peak RSS of a child process running only the crate side.
fn measure_service(url: &str, mode: Mode) -> Result<f64> {
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--service-mix").arg(format!("--url={url}"));
    if mode.name == "quick" {
        cmd.arg("--quick");
    } else if mode.name == "full" {
        cmd.arg("--full");
    }
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "service mix failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_mib="))
        .context("no peak_rss_mib line")?;
    Ok(line.trim().parse()?)
}

/// The child of `measure_service`: a "service" on the crate alone.
async fn service_mix(url: String, mode: Mode) -> Result<()> {
    let mut config = Config::new(url.clone());
    config.pool_size = POOL_SIZE;
    let db = Db::new(config)?;
    // A raw pool is needed to build the workload table; it stays unused.
    let pg_config: tokio_postgres::Config = url.parse()?;
    let manager = deadpool_postgres::Manager::new(pg_config, tokio_postgres::NoTls);
    let raw = deadpool_postgres::Pool::builder(manager)
        .max_size(1)
        .build()?;
    let data = workloads::Data::load(&db).await?;
    let ctx = Arc::new(Ctx {
        db,
        raw,
        data,
        unnamed: false,
        in_context: false,
    });
    let seq = Arc::new(AtomicUsize::new(1_000_000));
    for w in workloads::all(&ctx) {
        round(&w.krate, 16, mode.round, &seq).await?;
    }
    println!("peak_rss_mib={:.1}", peak_rss_mib());
    Ok(())
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    (kib / 1024.0 * 10.0).round() / 10.0
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

/// A figure with one decimal, or `-` when there is none.
fn or_dash(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:.1}"))
}

fn print_table(r: &Report) {
    println!(
        "\n{:<16} {:>4} {:>11} {:>11} {:>6} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6} {:>8}",
        "workload",
        "conc",
        "crate op/s",
        "raw op/s",
        "ratio",
        "p50 µs",
        "p99 µs",
        "raw p50",
        "raw p99",
        "cpu µs",
        "raw cpu",
        "wait %",
        "wal %",
        "sync µs"
    );
    for row in &r.results {
        println!(
            "{:<16} {:>4} {:>11} {:>11} {:>6.2} {:>8} {:>8} {:>8} {:>8} {:>7.1} {:>7.1} {:>7} {:>6} {:>8}",
            row.workload,
            row.concurrency,
            row.ops_per_sec,
            row.raw_ops_per_sec,
            row.ratio,
            row.p50_us,
            row.p99_us,
            row.raw_p50_us,
            row.raw_p99_us,
            row.cpu_us_per_op,
            row.raw_cpu_us_per_op,
            or_dash(row.cpu_wait_pct),
            or_dash(row.server.as_ref().map(|s| s.wal_wait_pct)),
            or_dash(row.server.as_ref().and_then(|s| s.wal_sync_us_per_op))
        );
    }
    if !r.pooler.is_empty() {
        println!(
            "\nthrough PgBouncer (transaction mode): crate in pooler mode vs raw unnamed statements, and each vs its own direct figure (and the crate vs its direct mode with the statement cache off, c=1); PgBouncer's CPU per operation of each side\n{:<16} {:>4} {:>11} {:>11} {:>6} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>7} {:>6} {:>8}",
            "workload",
            "conc",
            "crate op/s",
            "raw op/s",
            "ratio",
            "vs direct",
            "raw vs d.",
            "vs uncach",
            "p50 µs",
            "raw p50",
            "pgb µs",
            "raw pgb",
            "wait %",
            "wal %",
            "sync µs"
        );
        for row in &r.pooler {
            println!(
                "{:<16} {:>4} {:>11} {:>11} {:>6.2} {:>9.2} {:>9.2} {:>9} {:>8} {:>8} {:>9.1} {:>9.1} {:>7} {:>6} {:>8}",
                row.workload,
                row.concurrency,
                row.ops_per_sec,
                row.raw_ops_per_sec,
                row.ratio,
                row.vs_direct,
                row.raw_vs_direct,
                row.vs_direct_uncached
                    .map_or("-".to_owned(), |r| format!("{r:.2}")),
                row.p50_us,
                row.raw_p50_us,
                row.bouncer_cpu_us_per_op,
                row.raw_bouncer_cpu_us_per_op,
                or_dash(row.cpu_wait_pct),
                or_dash(row.server.as_ref().map(|s| s.wal_wait_pct)),
                or_dash(row.server.as_ref().and_then(|s| s.wal_sync_us_per_op))
            );
        }
    }
    if !r.pgbench.is_empty() {
        println!(
            "\npgbench -M extended, user_by_id's lookup, direct and through the same PgBouncer\n{:>4} {:>11} {:>11} {:>9} {:>10} {:>10} {:>12} {:>14}",
            "conc",
            "direct tps",
            "pooled tps",
            "pooled/d.",
            "direct ms",
            "pooled ms",
            "bouncer µs/tx",
            "crate/pgbench"
        );
        for row in &r.pgbench {
            println!(
                "{:>4} {:>11} {:>11} {:>9.2} {:>10.3} {:>10.3} {:>12.1} {:>14.2}",
                row.concurrency,
                row.direct_tps,
                row.pooled_tps,
                row.pooled_vs_direct,
                row.direct_latency_ms,
                row.pooled_latency_ms,
                row.bouncer_cpu_us_per_tx,
                row.crate_vs_pgbench_pooled
            );
        }
    }
    if let Some(why) = &r.pgbench_skipped {
        println!("\nno pgbench rows: {why}");
    }
    if let Some(why) = &r.pooler_skipped {
        println!("\nno pooler column: {why}");
    }
    println!(
        "\nmode {}; {}; pool {} per side\npeak RSS: bench process {:.1} MiB, crate-only service (pool 10, c=16 mix) {:.1} MiB\nmigrate() on an up-to-date database: {} statements, {:.2} ms",
        r.mode,
        r.machine,
        r.pool_size,
        r.bench_peak_rss_mib,
        r.service_peak_rss_mib,
        r.migrate_up_to_date_statements,
        r.migrate_up_to_date_ms
    );
}
