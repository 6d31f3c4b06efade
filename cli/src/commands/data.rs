//! The commands that change data: `reset`, `nuke` (production guard
//! applies) and `seed` (refused in production).

use std::process::ExitCode;

use anyhow::{Result, bail};
use database::Config;
use database::migrate::{self, MigrationSet};
use database::ops;

use crate::EXIT_REFUSED;
use crate::guard::Verdict;
use crate::support::{connect, connect_across_tenants, guard};

/// `db reset`: delete all data in one `TRUNCATE`; keep the schema and the migration history.
pub(crate) async fn reset(config: &Config, yes: bool) -> Result<ExitCode> {
    if let Some(code) = guard(config, "reset", yes)? {
        return Ok(code);
    }
    let mut conn = connect_across_tenants(config, "db reset: empties every tenant's rows").await?;
    let tables = ops::data::reset(&mut conn).await?;
    println!(
        "Emptied {} tables; schema and migration history kept.",
        tables.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `db nuke`: drop everything in schema `public`, migration history included.
pub(crate) async fn nuke(config: &Config, yes: bool) -> Result<ExitCode> {
    if let Some(code) = guard(config, "nuke", yes)? {
        return Ok(code);
    }
    let mut conn = connect(config).await?;
    ops::data::nuke(&mut conn).await?;
    println!(
        "Dropped everything in schema public, migration history included. `db migrate` rebuilds it."
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn parse_scale(s: &str) -> Result<ops::seed::Scale, String> {
    s.parse().map_err(|e: database::Error| e.to_string())
}

/// `db seed`: refused where the guard refuses (demo data has no place in
/// production); anywhere else it only adds rows, so it asks nothing.
pub(crate) async fn seed(
    config: &Config,
    set: &MigrationSet,
    seed: u64,
    scale: ops::seed::Scale,
) -> Result<ExitCode> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;
    if let Verdict::Refused(why) =
        crate::guard::judge(config.migration_url(), |k| std::env::var(k).ok())
    {
        eprintln!("refused: `db seed` never runs against production: {why}. Nothing was changed.");
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    let mut conn =
        connect_across_tenants(config, "db seed: writes demo rows for many tenants").await?;
    let status = migrate::status(&mut conn, set).await?;
    let pending = status.pending();
    if !pending.is_empty() {
        bail!(
            "{} migration(s) are not applied to this database yet ({}): run `db migrate` first",
            pending.len(),
            pending.join(", ")
        );
    }
    let bar = ProgressBar::with_draw_target(
        None,
        if std::io::stderr().is_terminal() && std::io::stdout().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} ({elapsed})")
            .expect("static template"),
    );
    let mut written = 0u64;
    let report = ops::seed::seed(&mut conn, seed, scale, &mut |event| match event {
        ops::seed::Progress::Planned { units } => bar.set_length(units),
        ops::seed::Progress::Table { name } => {
            bar.set_message(format!("{name} ({written} rows written)"))
        }
        ops::seed::Progress::Advanced { units, written: w } => {
            written += w;
            bar.inc(units);
        }
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "Seeded {} rows in {:.1} s ({} rows/s); {} rows already present (seed {seed}, scale {scale})",
        thousands(report.written()),
        report.elapsed.as_secs_f64(),
        thousands(report.rows_per_second().round() as u64),
        thousands(report.already_present()),
    );
    Ok(ExitCode::SUCCESS)
}

/// 1234567 -> "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
