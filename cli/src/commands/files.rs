//! The commands that work on files alone: `db new` and `db lint` (no
//! database, no `DATABASE_URL`; `db lint --trace` is the exception: it
//! applies the migrations to a throwaway database on the server).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use database::migrate::MigrationSet;

use crate::support::{UsageError, migrations_dir};
use crate::{Cli, lint as linter, project, scaffold};

/// `db lint`'s options.
#[derive(clap::Args)]
pub(crate) struct LintArgs {
    /// Output format: text (one finding a line), json, or github (workflow annotations).
    #[arg(long, default_value = "text", value_parser = parse_lint_format)]
    format: linter::output::Format,
    /// The PostgreSQL major version the migrations target (some hazards depend on it).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(9..=99))]
    pg_version: u32,
    /// `--deny warnings`: warnings fail the lint too (exit 1).
    #[arg(long, value_name = "LEVEL", value_parser = ["warnings"])]
    deny: Option<String>,
    /// The allow-list file (default: lint-allow.toml beside the migrations folder).
    #[arg(long, value_name = "FILE")]
    allow_file: Option<PathBuf>,
    /// Also apply migrations to a throwaway database on the server and report
    /// the locks each statement really takes: `--trace` (those pending on
    /// DATABASE_URL's database), `--trace=all`, `--trace=VERSION` (it and later).
    #[arg(long, value_name = "WHICH", num_args = 0..=1, require_equals = true,
          default_missing_value = "pending", value_parser = parse_trace)]
    trace: Option<crate::trace::Which>,
}

fn parse_trace(s: &str) -> Result<crate::trace::Which, String> {
    s.parse()
}

fn parse_lint_format(s: &str) -> Result<linter::output::Format, String> {
    s.parse()
}

/// `db new NAME`.
/// On a SQLite URL (without `--migrations-dir`) into `migrations_sqlite/`.
pub(crate) fn new_migration(cli: &Cli, name: &str, on_sqlite: bool) -> Result<ExitCode> {
    let dir = match &cli.migrations_dir {
        None if on_sqlite => project::current()?.root.join("migrations_sqlite"),
        _ => migrations_dir(cli)?,
    };
    let folder = scaffold::new_migration(&dir, name, chrono::Utc::now()).map_err(|e| match e {
        // A name the rule refuses is a usage error (exit 2), with a name it takes.
        database::ops::OpsError::Db(database::Error::Invalid(invalid)) => {
            anyhow::Error::new(UsageError(format!(
                "db new {name:?}: {invalid}; try `db new {}`",
                scaffold::suggested_name(name)
            )))
        }
        other => other.into(),
    })?;
    println!("Created {}/up.sql", folder.display());
    println!("Created {}/down.sql", folder.display());
    Ok(ExitCode::SUCCESS)
}

/// Exit code of `lint` for usage and configuration errors (findings are 1).
const EXIT_LINT_USAGE: u8 = 2;

/// `db lint`: the project's migrations folder, which must exist and hold
/// migrations (an empty lint is not a clean one). Exits 0 when clean (or
/// warnings only), 1 on findings (or a traced statement that failed), 2 on
/// a usage or configuration error.
pub(crate) async fn lint(cli: &Cli, args: &LintArgs) -> ExitCode {
    match lint_report(cli, args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_LINT_USAGE)
        }
    }
}

/// Prints the report; `Ok(clean)`, or `Err` for a usage or configuration error.
async fn lint_report(cli: &Cli, args: &LintArgs) -> Result<bool> {
    use linter::{Options, Severity, allow::AllowList, output};
    let dir = migrations_dir(cli)?;
    if !dir.is_dir() {
        bail!("no migrations folder at {}", dir.display());
    }
    let set = MigrationSet::from_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
    if set.is_empty() {
        bail!("no migrations found in {}: nothing to lint", dir.display());
    }
    // Paths in the report and the allow-list are relative to the folder's parent.
    let root = dir.parent().unwrap_or(&dir);
    let allow_file = args
        .allow_file
        .clone()
        .unwrap_or_else(|| root.join(linter::allow::FILE_NAME));
    if args.allow_file.is_some() && !allow_file.is_file() {
        bail!("no allow-list file at {}", allow_file.display());
    }
    let allow = AllowList::load(&allow_file, &set)?;
    // `--migrations-dir .` has no name of its own: use the real folder's.
    let label = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.clone())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let options = Options {
        pg_version: args.pg_version,
    };
    let all = linter::lint_set(&set, &label, &options);
    for entry in allow.unused(&all) {
        eprintln!(
            "note: {}: the entry for {} / {} matches no finding; remove it",
            allow_file.display(),
            entry.version,
            entry.rule
        );
    }
    let (allowed, findings): (Vec<_>, Vec<_>) = all.into_iter().partition(|f| allow.allows(f));
    let trace = match &args.trace {
        Some(which) => Some(trace(cli, &set, &label, which, args.pg_version).await?),
        None => None,
    };
    match args.format {
        output::Format::Text => {
            let report = output::text(&findings, allowed.len());
            match &trace {
                // The trace's lines go before the lint's summary, the last line.
                Some(t) => {
                    let (lines, summary) = report
                        .trim_end()
                        .rsplit_once('\n')
                        .map_or(("", report.trim_end()), |(l, s)| (l, s));
                    if !lines.is_empty() {
                        println!("{lines}");
                    }
                    print!("{}", crate::trace::report::text(t));
                    println!("{summary}");
                }
                None => print!("{report}"),
            }
        }
        output::Format::Json => {
            let mut doc: serde_json::Value =
                serde_json::from_str(&output::json(&findings, allowed.len()))?;
            if let Some(t) = &trace {
                doc["trace"] = crate::trace::report::json(t);
            }
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        output::Format::Github => {
            print!("{}", output::github(&findings));
            if let Some(t) = &trace {
                print!("{}", crate::trace::report::github(t));
            }
        }
    }
    let deny_warnings = args.deny.is_some();
    let trace_failed = trace.as_ref().is_some_and(crate::trace::Trace::failed);
    Ok(!trace_failed
        && !findings
            .iter()
            .any(|f| f.severity() == Severity::Error || deny_warnings))
}

/// `--trace`: the server is DATABASE_URL's (or the project's own cluster).
async fn trace(
    cli: &Cli,
    set: &MigrationSet,
    label: &str,
    which: &crate::trace::Which,
    pg_version: u32,
) -> Result<crate::trace::Trace> {
    let config = crate::support::load_config(cli)?;
    if database::db::sqlite::is_sqlite_url(&config.database_url) {
        bail!(
            "--trace applies migrations to a PostgreSQL server; DATABASE_URL names a SQLite database"
        );
    }
    let trace = crate::trace::run(&config, set, label, which).await?;
    if trace.note.is_none() && trace.server_major != pg_version {
        eprintln!(
            "note: traced on PostgreSQL {} while --pg-version is {pg_version}: the locks shown are {}'s \
             (the static findings follow --pg-version)",
            trace.server_version, trace.server_major
        );
    }
    Ok(trace)
}
