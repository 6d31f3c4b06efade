//! `--baseline`: what one PostgreSQL server does with each workload, the
//! inputs of docs/scaling.md's capacity plan. On a throwaway primary of the
//! crate's launcher (fsync and synchronous commit on, as in production) with
//! one asynchronous streaming replica, each workload runs through the crate
//! alone (no raw side) at concurrency 16 for a few seconds, and the run
//! reports per operation:
//!
//! - throughput, and the server's CPU time per operation (user + system of
//!   the primary's processes, from `/proc`: backends, WAL writer, WAL sender,
//!   checkpointer), so that "operations per server core-second" does not
//!   depend on the client sharing the machine;
//! - the WAL the primary wrote per operation (`pg_current_wal_insert_lsn`
//!   before and after);
//! - the replica's replay lag under that load (`pg_stat_replication`,
//!   sampled every 100 ms: the highest `replay_lag`, and the most bytes the
//!   replica was behind);
//! - the server connections the service held (`pg_stat_activity`).
//!
//!   scripts/bench --baseline        # writes target/bench/baseline.json

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use database::ops::cluster::{Options, TempCluster};
use database::{Config, Db};
use diesel::sql_types::{BigInt, Double, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde::Serialize;

use super::{Ctx, POOL_SIZE, process_cpu, raw_pool, round, workloads};

const CONCURRENCY: usize = 16;
const LENGTH: Duration = Duration::from_secs(4);

#[derive(Serialize)]
pub struct BaselineRow {
    workload: &'static str,
    concurrency: usize,
    ops_per_sec: f64,
    /// CPU of the primary's processes per operation.
    server_cpu_us_per_op: f64,
    /// 1e6 / server_cpu_us_per_op: what one server core does when CPU is
    /// the limit (no I/O wait, no lock contention counted).
    ops_per_server_core_sec: f64,
    /// CPU of the replica's processes (replay) per operation.
    replica_cpu_us_per_op: f64,
    /// CPU of this process (the client) per operation.
    client_cpu_us_per_op: f64,
    wal_bytes_per_op: f64,
    replay_lag_max_ms: f64,
    replay_behind_max_bytes: i64,
    server_connections: i64,
}

#[derive(Serialize)]
struct Baseline {
    machine: String,
    postgres: String,
    max_connections: i64,
    pool_size: usize,
    seconds_per_workload: u64,
    rows: Vec<BaselineRow>,
}

/// The launcher's options: a production-like durable server.
fn options() -> Options {
    Options {
        fsync: true,
        ..Options::default()
    }
}

pub async fn run() -> Result<()> {
    let primary = TempCluster::start(options()).context("starting a throwaway primary")?;
    let replica = TempCluster::replica_of(&primary, options()).context("starting its replica")?;
    let name = "database_baseline";
    let mut admin = AsyncPgConnection::establish(&primary.url_of("postgres")).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let url = format!("{}?sslmode=disable", primary.url_of(name));
    let mut config = Config::new(url.clone());
    config.pool_size = POOL_SIZE;
    let db = Db::new(config)?;
    db.migrate().await?;
    eprintln!("baseline: seeding...");
    let data = workloads::seed(&db, workloads::Scale::QUICK).await?;
    let ctx = Arc::new(Ctx {
        db,
        raw: raw_pool(&url)?,
        data,
        unnamed: false,
        in_context: false,
    });
    admin.batch_execute("CHECKPOINT").await?;
    let mut rows = Vec::new();
    for w in workloads::all(&ctx) {
        let seq = Arc::new(AtomicUsize::new(0));
        round(&w.krate, CONCURRENCY, Duration::from_millis(500), &seq).await?;
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = tokio::spawn(sample_lag(primary.url_of("postgres"), sampling.clone()));
        let (server_before, replica_before) = (cluster_cpu(&primary)?, cluster_cpu(&replica)?);
        let (wal_before, client_before) = (wal_position(&mut admin).await?, process_cpu());
        let (latencies, took) = round(&w.krate, CONCURRENCY, LENGTH, &seq).await?;
        let client = process_cpu() - client_before;
        let wal = wal_position(&mut admin).await? - wal_before;
        let (server, replica_cpu) = (
            cluster_cpu(&primary)? - server_before,
            cluster_cpu(&replica)? - replica_before,
        );
        let connections = scalar(
            &mut admin,
            &format!(
                "SELECT count(*)::float8 AS v FROM pg_stat_activity WHERE datname = '{name}' \
                 AND backend_type = 'client backend'"
            ),
        )
        .await? as i64;
        sampling.store(false, Ordering::Relaxed);
        let (lag_ms, behind) = sampler.await??;
        let n = latencies.len().max(1) as f64;
        let per_op = |d: Duration| (d.as_secs_f64() * 1e7 / n).round() / 10.0;
        let server_us = per_op(server);
        let row = BaselineRow {
            workload: w.name,
            concurrency: CONCURRENCY,
            ops_per_sec: (n / took.as_secs_f64()).round(),
            server_cpu_us_per_op: server_us,
            ops_per_server_core_sec: (1e6 / server_us.max(0.1)).round(),
            replica_cpu_us_per_op: per_op(replica_cpu),
            client_cpu_us_per_op: per_op(client),
            wal_bytes_per_op: (wal as f64 / n).round(),
            replay_lag_max_ms: lag_ms,
            replay_behind_max_bytes: behind,
            server_connections: connections,
        };
        eprintln!(
            "  {:<16} {:>7} op/s  server {:>7.1} µs/op  WAL {:>7} B/op  lag max {:>6.1} ms",
            row.workload,
            row.ops_per_sec,
            row.server_cpu_us_per_op,
            row.wal_bytes_per_op,
            row.replay_lag_max_ms
        );
        rows.push(row);
    }
    let report = Baseline {
        machine: super::machine(),
        postgres: text(&mut admin, "SELECT version() AS v").await?,
        max_connections: scalar(
            &mut admin,
            "SELECT setting::float8 AS v FROM pg_settings WHERE name = 'max_connections'",
        )
        .await? as i64,
        pool_size: POOL_SIZE,
        seconds_per_workload: LENGTH.as_secs(),
        rows,
    };
    ctx.db.close();
    print(&report);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("baseline.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("\nwrote target/bench/baseline.json");
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct Value {
    #[diesel(sql_type = Double)]
    v: f64,
}

async fn scalar(conn: &mut AsyncPgConnection, sql: &str) -> Result<f64> {
    Ok(diesel::sql_query(sql).get_result::<Value>(conn).await?.v)
}

async fn text(conn: &mut AsyncPgConnection, sql: &str) -> Result<String> {
    #[derive(diesel::QueryableByName)]
    struct T {
        #[diesel(sql_type = Text)]
        v: String,
    }
    Ok(diesel::sql_query(sql).get_result::<T>(conn).await?.v)
}

async fn wal_position(conn: &mut AsyncPgConnection) -> Result<i64> {
    #[derive(diesel::QueryableByName)]
    struct P {
        #[diesel(sql_type = BigInt)]
        p: i64,
    }
    Ok(
        diesel::sql_query(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint AS p",
        )
        .get_result::<P>(conn)
        .await?
        .p,
    )
}

/// The replica's lag every 100 ms while `on`: the highest replay lag (ms)
/// and the most bytes between the primary's position and the replica's
/// replay position.
async fn sample_lag(url: String, on: Arc<AtomicBool>) -> Result<(f64, i64)> {
    #[derive(diesel::QueryableByName)]
    struct Lag {
        #[diesel(sql_type = Double)]
        ms: f64,
        #[diesel(sql_type = BigInt)]
        behind: i64,
    }
    let mut conn = AsyncPgConnection::establish(&url).await?;
    let (mut ms, mut behind) = (0.0f64, 0i64);
    while AtomicBool::load(&on, Ordering::Relaxed) {
        let lag: Lag = diesel::sql_query(
            "SELECT coalesce(extract(epoch FROM replay_lag) * 1000, 0)::float8 AS ms, \
             coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint AS behind \
             FROM pg_stat_replication",
        )
        .get_result(&mut conn)
        .await?;
        ms = ms.max(lag.ms);
        behind = behind.max(lag.behind);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(((ms * 10.0).round() / 10.0, behind))
}

/// User + system CPU of a cluster's processes so far: the postmaster (with
/// the children it has reaped) and every live child.
fn cluster_cpu(cluster: &TempCluster) -> Result<Duration> {
    let pid_file = cluster.data_dir().join("postmaster.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)?
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .context("postmaster.pid")?;
    // SAFETY: sysconf only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let fields = |pid: u32| -> Option<Vec<u64>> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = stat.rsplit(')').next()?;
        // After the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15),
        // counted from the state (index 0).
        Some(
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect(),
        )
    };
    let own = fields(pid).context("the postmaster's /proc entry")?;
    let mut total = own[11] + own[12] + own[13] + own[14];
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(f) = fields(child)
            && f.get(1) == Some(&(pid as u64))
        {
            total += f[11] + f[12];
        }
    }
    Ok(Duration::from_secs_f64(total as f64 / ticks))
}

fn print(r: &Baseline) {
    println!(
        "\nbaseline: {}; {}; concurrency {CONCURRENCY}, pool {}, {} s per workload, max_connections {}",
        r.machine, r.postgres, r.pool_size, r.seconds_per_workload, r.max_connections
    );
    println!(
        "{:<16} {:>8} {:>11} {:>13} {:>11} {:>11} {:>9} {:>10} {:>12} {:>6}",
        "workload",
        "op/s",
        "server µs",
        "op/core-sec",
        "replica µs",
        "client µs",
        "WAL B",
        "lag max ms",
        "behind max B",
        "conns"
    );
    for row in &r.rows {
        println!(
            "{:<16} {:>8} {:>11.1} {:>13} {:>11.1} {:>11.1} {:>9} {:>10.1} {:>12} {:>6}",
            row.workload,
            row.ops_per_sec,
            row.server_cpu_us_per_op,
            row.ops_per_server_core_sec,
            row.replica_cpu_us_per_op,
            row.client_cpu_us_per_op,
            row.wal_bytes_per_op,
            row.replay_lag_max_ms,
            row.replay_behind_max_bytes,
            row.server_connections
        );
    }
}
