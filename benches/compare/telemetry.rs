//! `scripts/bench --telemetry`: the cost of observability (#27). user_by_id
//! and create_todo measured twice against the raw driver, as every workload
//! is: first with no `tracing` subscriber and no `metrics` recorder, then
//! with a subscriber that records every span with its fields in memory (the
//! way an exporter's batch processor receives them) and a recorder that
//! keeps every metric. The overhead is the drop of the crate/raw ratio, so
//! that machine noise, which hits both sides of a pass alike, cancels.
//!
//! Two middle passes split that cost. In the first the subscriber is
//! installed and interested (so the crate builds every span with its
//! attributes, and the registry stores it) but its layer keeps nothing, and
//! no metrics recorder is installed: what it loses is the crate's span
//! building. The second adds the metrics recorder: what it loses on top is
//! recording the metrics. The last pass, spans kept too, adds keeping every
//! span's fields as typed values (text copied, not formatted), as an
//! OpenTelemetry layer hands them to its exporter.
//!
//! One more pass, before any subscriber is installed, measures the price
//! of the opt-in sqlcommenter comment (`DB_SQLCOMMENTER=true`, every call
//! under a context with a trace parent): in direct mode each commented
//! statement is prepared on every run, outside the statement cache.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Result;
use database::{Config, Db};
use serde::Serialize;
use tracing_subscriber::layer::SubscriberExt;

use super::recording::{Spans, Value};
use super::{Ctx, Mode, POOL_SIZE, measure_each, raw_pool, workloads};

const MEASURED: [&str; 2] = ["user_by_id", "create_todo"];

#[derive(Serialize)]
pub struct TelemetryRow {
    pub workload: &'static str,
    pub concurrency: usize,
    /// crate/raw throughput with no subscriber and no recorder.
    pub ratio_without: f64,
    /// crate/raw throughput with a subscriber that is interested in every
    /// span but keeps none, and no metrics recorder.
    pub ratio_spans_built: f64,
    /// crate/raw throughput with both recording in memory.
    pub ratio_with: f64,
    /// crate/raw throughput with spans built but not kept, and the metrics
    /// recorded.
    pub ratio_metrics_recorded: f64,
    /// 100 * (1 - ratio_spans_built / ratio_without): building the spans.
    pub spans_built_pct: f64,
    /// 100 * (1 - ratio_metrics_recorded / ratio_without): building the
    /// spans and recording the metrics.
    pub metrics_recorded_pct: f64,
    /// 100 * (1 - ratio_with / ratio_without).
    pub overhead_pct: f64,
    /// crate/raw throughput with no subscriber, `DB_SQLCOMMENTER=true`
    /// and every call under a context with a trace parent.
    pub ratio_sqlcommenter: f64,
    /// 100 * (1 - ratio_sqlcommenter / ratio_without).
    pub sqlcommenter_pct: f64,
    ops_per_sec_without: f64,
    ops_per_sec_with: f64,
}

pub async fn run(mode: Mode, url: &str) -> Result<Vec<TelemetryRow>> {
    let mut config = Config::new(url);
    config.pool_size = POOL_SIZE;
    let db = Db::new(config)?;
    db.migrate().await?;
    let data = workloads::seed(&db, mode.scale).await?;
    let ctx = Arc::new(Ctx {
        db,
        raw: raw_pool(url)?,
        data,
        unnamed: false,
        in_context: false,
    });
    let only: Vec<String> = MEASURED.iter().map(|s| (*s).to_owned()).collect();
    eprintln!("telemetry pass: no subscriber, no recorder");
    let without = measure_each(workloads::all(&ctx), Some(&only), mode, " (none)", None).await?;

    let mut config = Config::new(url);
    config.pool_size = POOL_SIZE;
    config.sqlcommenter = true;
    let trace =
        database::TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
    let commented = Arc::new(Ctx {
        db: Db::new(config)?.with(database::Ctx::new().correlate(trace)),
        raw: raw_pool(url)?,
        data: ctx.data.clone(),
        unnamed: false,
        in_context: false,
    });
    eprintln!("telemetry pass: sqlcommenter comments, no subscriber");
    let sqlcommenter = measure_each(
        workloads::all(&commented),
        Some(&only),
        mode,
        " (sqlcommenter)",
        None,
    )
    .await?;
    drop(commented);

    let spans = Spans::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(spans.clone()))?;
    eprintln!("telemetry pass: spans built, nothing kept, no recorder");
    let built = measure_each(
        workloads::all(&ctx),
        Some(&only),
        mode,
        " (spans built)",
        None,
    )
    .await?;

    metrics_util::debugging::DebuggingRecorder::new()
        .install()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!("telemetry pass: spans built, nothing kept, metrics recorded");
    let metered = measure_each(workloads::all(&ctx), Some(&only), mode, " (metrics)", None).await?;

    spans.1.store(true, Ordering::Relaxed);
    eprintln!("telemetry pass: spans and metrics recorded in memory");
    let with = measure_each(workloads::all(&ctx), Some(&only), mode, " (recorded)", None).await?;
    anyhow::ensure!(
        spans
            .0
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .any(|(name, value)| *name == "db.query.text" && matches!(value, Value::Str(_))),
        "the subscriber kept no span with its query text"
    );

    Ok(without
        .iter()
        .zip(&built)
        .zip(&metered)
        .zip(&with)
        .zip(&sqlcommenter)
        .map(|((((off, built), metered), on), commented)| TelemetryRow {
            workload: off.workload,
            concurrency: off.concurrency,
            ratio_without: off.ratio,
            ratio_spans_built: built.ratio,
            ratio_metrics_recorded: metered.ratio,
            ratio_with: on.ratio,
            spans_built_pct: 100.0 * (1.0 - built.ratio / off.ratio),
            metrics_recorded_pct: 100.0 * (1.0 - metered.ratio / off.ratio),
            overhead_pct: 100.0 * (1.0 - on.ratio / off.ratio),
            ratio_sqlcommenter: commented.ratio,
            sqlcommenter_pct: 100.0 * (1.0 - commented.ratio / off.ratio),
            ops_per_sec_without: off.ops_per_sec,
            ops_per_sec_with: on.ops_per_sec,
        })
        .collect())
}
