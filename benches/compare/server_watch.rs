//! What the server's backends were doing while a row ran, so that a slow
//! row carries its own evidence (issue #29's stall: both drivers at a 4 ms
//! p50 with the CPU idle, which the client's figures alone cannot explain).
//!
//! - **Where active backends wait**: `pg_stat_activity` of the scratch
//!   database sampled every 25 ms from a connection of its own (one small
//!   query; the row's own backends are not touched), counted by wait event
//!   (`CPU` when an active backend waits on nothing). `wal_wait_pct` is the
//!   share of samples waiting on the WAL (`LWLock:WALWrite`, `IO:WALSync`,
//!   `IO:WALWrite`, `LWLock:WALInsert`): a commit queued behind, or doing,
//!   the WAL flush.
//! - **How long the WAL flush took**: the scratch database gets
//!   `track_wal_io_timing = on` (a superuser setting of that database only,
//!   dropped with it; the machine's server is not reconfigured), so every
//!   `fdatasync` its backends do is timed into `pg_stat_wal.wal_sync_time`.
//!   `wal_sync_us_per_op` is that time's growth over the row per operation
//!   of both sides. Backends report their WAL statistics when idle, at most
//!   once a second, so a row's figure may miss up to a second at its edges.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

/// The sampler and the reader of `pg_stat_wal`; the sampler stops when this
/// is dropped.
pub struct ServerWatch {
    reader: tokio_postgres::Client,
    samples: Arc<Mutex<HashMap<String, u64>>>,
    /// Whether the scratch database's backends time their WAL syncs.
    timed: bool,
    sampler: tokio::task::JoinHandle<()>,
}

/// Where a row started: `pg_stat_wal.wal_sync_time` then (ms).
pub struct Mark(Option<f64>);

/// What the server did during one row (both sides).
#[derive(Serialize, Clone)]
pub struct ServerRow {
    /// Samples of an active backend of the scratch database.
    pub samples: u64,
    /// Share of those samples waiting on the WAL, in percent.
    pub wal_wait_pct: f64,
    /// WAL sync time of the database's backends per operation, in µs
    /// (`None` when the syncs could not be timed: not a superuser).
    pub wal_sync_us_per_op: Option<f64>,
    /// The three most sampled wait events (`CPU`: waiting on nothing), with
    /// their share in percent.
    pub top_waits: Vec<(String, f64)>,
}

impl Drop for ServerWatch {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

async fn client(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl ServerWatch {
    /// Starts watching the database of `url`. Call before the benchmark's
    /// own connections open: `track_wal_io_timing` reaches sessions that
    /// start after it.
    pub async fn start(url: &str) -> Result<Self> {
        let reader = client(url).await?;
        let name: String = reader
            .query_one("SELECT current_database()::text", &[])
            .await?
            .get(0);
        let timed = reader
            .batch_execute(&format!(
                "ALTER DATABASE \"{}\" SET track_wal_io_timing = on",
                name.replace('"', "\"\"")
            ))
            .await
            .is_ok();
        let sampling = client(url).await?;
        let samples = Arc::new(Mutex::new(HashMap::new()));
        let counts = samples.clone();
        let sampler = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(25));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Ok(rows) = sampling
                    .query(
                        "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') \
                         FROM pg_stat_activity \
                         WHERE datname = current_database() AND backend_type = 'client backend' \
                           AND state = 'active' AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .await
                else {
                    return;
                };
                let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
                for row in rows {
                    *counts.entry(row.get::<_, String>(0)).or_insert(0) += 1;
                }
            }
        });
        Ok(ServerWatch {
            reader,
            samples,
            timed,
            sampler,
        })
    }

    async fn wal_sync_ms(&self) -> Option<f64> {
        if !self.timed {
            return None;
        }
        let row = self
            .reader
            .query_one("SELECT wal_sync_time FROM pg_stat_wal", &[])
            .await
            .ok()?;
        Some(row.get::<_, f64>(0))
    }

    /// The start of a row: forgets earlier samples.
    pub async fn begin(&self) -> Mark {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Mark(self.wal_sync_ms().await)
    }

    /// What the server did since `mark`, over `ops` operations.
    pub async fn end(&self, mark: Mark, ops: usize) -> ServerRow {
        let after = self.wal_sync_ms().await;
        let counts = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        let samples: u64 = counts.values().sum();
        let pct = |n: u64| (n as f64 * 1000.0 / samples.max(1) as f64).round() / 10.0;
        let wal: u64 = counts
            .iter()
            .filter(|(event, _)| {
                matches!(
                    event.as_str(),
                    "LWLock:WALWrite" | "IO:WALSync" | "IO:WALWrite" | "LWLock:WALInsert"
                )
            })
            .map(|(_, n)| n)
            .sum();
        let mut top: Vec<(String, u64)> = counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ServerRow {
            samples,
            wal_wait_pct: pct(wal),
            wal_sync_us_per_op: mark
                .0
                .zip(after)
                .map(|(before, after)| ((after - before) * 1e4 / ops.max(1) as f64).round() / 10.0),
            top_waits: top.into_iter().take(3).map(|(e, n)| (e, pct(n))).collect(),
        }
    }
}
