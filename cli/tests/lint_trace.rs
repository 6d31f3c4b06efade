//! `db lint --trace` against the real server: the locks, rewrites and
//! blocked sessions it reports for statements whose behaviour PostgreSQL's
//! documentation states, for the project's own migrations, and for every
//! case of the lint corpus a server can observe (the trace's verdict must
//! match the label that scripts/lint-corpus-check verifies).

mod common;
#[path = "lint_support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{Corpus, DB_BIN, write_case, write_migration};

/// `db lint --format json ARGS` in `cwd` against database `db` of the test
/// server (it need not exist: the trace works on a throwaway one); the trace.
fn trace(cwd: &Path, db: &str, args: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new(DB_BIN)
        .args(["lint", "--format", "json"])
        .args(args)
        .current_dir(cwd)
        .env("DATABASE_URL", common::url_of(db))
        .env_remove("DB_MIGRATIONS_DIR")
        // The corpus checker's zone: timestamp <-> timestamptz rewrites in
        // any but UTC, and most servers outside containers are not on UTC.
        .env("PGTZ", "America/New_York")
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), doc["trace"].clone())
}

/// The statements of migration `version` in a trace.
fn of<'a>(trace: &'a Value, version: &str) -> Vec<&'a Value> {
    trace["statements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["migration"] == version)
        .collect()
}

/// The modes a statement held on `relation` (granted).
fn modes(statement: &Value, relation: &str) -> Vec<String> {
    statement["locks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["relation"] == relation && l["granted"] == true)
        .map(|l| l["mode"].as_str().unwrap().to_owned())
        .collect()
}

/// What the probe met on `relation`: (reader blocked, writer blocked).
fn probe(statement: &Value, relation: &str) -> (bool, Option<bool>) {
    let p = statement["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["relation"] == relation)
        .unwrap_or_else(|| panic!("no probe of {relation}: {statement:#}"));
    (
        p["reader_blocked"].as_bool().unwrap(),
        p["writer_blocked"].as_bool(),
    )
}

fn throwaway_is_gone(trace: &Value) {
    let name = trace["database"].as_str().unwrap().to_owned();
    assert!(name.contains("_trace_"), "{name}");
    let exists = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut admin = common::admin_conn().await;
        common::database_exists(&mut admin, &name).await
    });
    assert!(!exists, "the throwaway database {name} is dropped");
}

#[test]
fn trace_reports_the_locks_postgresql_documents_for_known_statements() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    let down = Some("SELECT 1;\n");
    write_migration(
        &dir,
        "2030-01-01-000000_base",
        "CREATE TABLE t (id bigint PRIMARY KEY, a int, b text);\n\
         INSERT INTO t SELECT g, g, g::text FROM generate_series(1, 2000) g;\n\
         ALTER TABLE t ADD CONSTRAINT t_a_positive CHECK (a > 0) NOT VALID;\n",
        down,
        false,
    );
    // One statement per migration: each transaction holds its own locks only.
    for (name, up, no_transaction) in [
        (
            "2030-01-02-000000_index",
            "CREATE INDEX t_b_idx ON t (b);\n",
            false,
        ),
        (
            "2030-01-03-000000_index_concurrently",
            "CREATE INDEX CONCURRENTLY t_a_idx ON t (a);\n",
            true,
        ),
        (
            "2030-01-04-000000_default_now",
            "ALTER TABLE t ADD COLUMN seen_at timestamptz DEFAULT now();\n",
            false,
        ),
        (
            "2030-01-05-000000_bigint",
            "ALTER TABLE t ALTER COLUMN a TYPE bigint;\n",
            false,
        ),
        (
            "2030-01-06-000000_validate",
            "ALTER TABLE t VALIDATE CONSTRAINT t_a_positive;\n",
            false,
        ),
    ] {
        write_migration(&dir, name, up, down, no_transaction);
    }
    let dir_arg = dir.to_str().unwrap();
    let (_, trace) = trace(
        tmp.path(),
        "lint_trace_known",
        &["--migrations-dir", dir_arg, "--trace=20300102000000"],
    );
    assert_eq!(trace["failed"], false, "{trace:#}");
    assert_eq!(
        trace["migrations"].as_array().unwrap().len(),
        5,
        "the base is applied, not traced"
    );
    let t = "\"t\"";

    // CREATE INDEX: SHARE, which lets readers in and keeps writers out.
    let index = of(&trace, "20300102000000")[0];
    assert_eq!(modes(index, t), vec!["SHARE"], "{index:#}");
    assert_eq!(probe(index, t), (false, Some(true)));
    assert_eq!(index["in_transaction"], true);

    // CREATE INDEX CONCURRENTLY: SHARE UPDATE EXCLUSIVE, writers proceed; sampled.
    let concurrently = of(&trace, "20300103000000")[0];
    assert_eq!(concurrently["sampled"], true);
    assert!(
        modes(concurrently, t).contains(&"SHARE UPDATE EXCLUSIVE".to_owned()),
        "{concurrently:#}"
    );
    assert!(
        !modes(concurrently, t)
            .iter()
            .any(|m| m == "SHARE" || m.contains("ACCESS EXCLUSIVE")),
        "{concurrently:#}"
    );
    assert_eq!(
        probe(concurrently, t),
        (false, Some(false)),
        "probed while it waited for the old reader"
    );

    // ADD COLUMN ... DEFAULT now() (PostgreSQL 11+): no rewrite, a brief ACCESS EXCLUSIVE.
    let default_now = of(&trace, "20300104000000")[0];
    assert_eq!(
        default_now["rewritten"],
        serde_json::json!([]),
        "{default_now:#}"
    );
    assert_eq!(modes(default_now, t), vec!["ACCESS EXCLUSIVE"]);
    assert_eq!(probe(default_now, t), (true, Some(true)));

    // int -> bigint: a rewrite.
    let bigint = of(&trace, "20300105000000")[0];
    assert_eq!(bigint["rewritten"], serde_json::json!([t]), "{bigint:#}");

    // VALIDATE CONSTRAINT: SHARE UPDATE EXCLUSIVE while it scans; writers proceed.
    let validate = of(&trace, "20300106000000")[0];
    assert_eq!(
        modes(validate, t),
        vec!["SHARE UPDATE EXCLUSIVE"],
        "{validate:#}"
    );
    assert_eq!(validate["scanned"], serde_json::json!([t]));
    assert_eq!(probe(validate, t), (false, Some(false)));
    throwaway_is_gone(&trace);

    // The text form: PATH:LINE: [trace] message, before the lint's summary.
    let out = Command::new(DB_BIN)
        .args([
            "lint",
            "--migrations-dir",
            dir_arg,
            "--trace=20300102000000",
        ])
        .env("DATABASE_URL", common::url_of("lint_trace_known"))
        .env_remove("DB_MIGRATIONS_DIR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "migrations/2030-01-02-000000_index/up.sql:1: [trace] CREATE INDEX t_b_idx ON t (b): takes SHARE on \"t\" until COMMIT; no rewrite; scanned \"t\"; "
        ),
        "{text}"
    );
    assert!(
        text.contains("readers proceed, writers wait on \"t\""),
        "{text}"
    );
    assert!(
        text.lines().last().unwrap().ends_with("warning(s)."),
        "{text}"
    );
}

#[test]
fn trace_of_the_projects_own_migrations() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let (code, trace) = trace(root, "lint_trace_project", &["--trace=all"]);
    assert_eq!(code, Some(0), "{trace:#}");
    assert_eq!(trace["failed"], false);
    let folders = std::fs::read_dir(root.join("migrations")).unwrap().count();
    assert_eq!(trace["migrations"].as_array().unwrap().len(), folders);
    // A new table's foreign key locks the table it references against
    // writes until the migration commits.
    let referencing = trace["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| modes(s, "\"users\"").contains(&"SHARE ROW EXCLUSIVE".to_owned()))
        .expect("a table referencing users");
    assert_eq!(probe(referencing, "\"users\""), (false, Some(true)));
    throwaway_is_gone(&trace);
}

/// The corpus checker's verdict, from a trace: the case failed, rewrote a
/// table, or scanned a table while holding a lock that blocks its writers
/// (its readers, for a materialized view).
fn observed_dangerous(statements: &[&Value]) -> bool {
    statements.iter().any(|s| {
        let blocking = |relation: &str| {
            s["locks"].as_array().unwrap().iter().any(|l| {
                let mode = l["mode"].as_str().unwrap();
                l["relation"] == relation
                    && l["granted"] == true
                    && match l["kind"].as_str().unwrap() {
                        "table" => matches!(
                            mode,
                            "SHARE" | "SHARE ROW EXCLUSIVE" | "EXCLUSIVE" | "ACCESS EXCLUSIVE"
                        ),
                        "materialized view" => mode == "ACCESS EXCLUSIVE",
                        _ => false,
                    }
            })
        };
        !s["error"].is_null()
            || !s["rewritten"].as_array().unwrap().is_empty()
            || s["scanned"]
                .as_array()
                .is_some_and(|scanned| scanned.iter().any(|r| blocking(r.as_str().unwrap())))
    })
}

#[test]
fn trace_agrees_with_every_corpus_label_a_server_can_observe() {
    let corpus = Corpus::load();
    let tmp = tempfile::tempdir().unwrap();
    // Labels a lock cannot show (`why`) and other target versions are the
    // corpus checker's exceptions too.
    let cases: Vec<_> = corpus
        .case
        .iter()
        .filter(|c| c.why.is_none() && c.pg_version == 15)
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let dir = write_case(tmp.path(), &corpus, case);
                    let (_, trace) = trace(
                        tmp.path(),
                        "lint_trace_corpus",
                        &[
                            "--migrations-dir",
                            dir.to_str().unwrap(),
                            "--trace=20000102000000",
                        ],
                    );
                    assert!(
                        trace["server_version"].as_str().unwrap().starts_with("15."),
                        "the corpus labels are checked on PostgreSQL 15"
                    );
                    let dangerous = observed_dangerous(&of(&trace, "20000102000000"));
                    results.lock().unwrap().push((
                        case.name.clone(),
                        case.label.clone(),
                        dangerous,
                    ));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let wrong: Vec<_> = results
        .iter()
        .filter(|(_, label, dangerous)| (label == "dangerous") != *dangerous)
        .collect();
    println!(
        "trace agrees with {} of {} observable corpus labels",
        results.len() - wrong.len(),
        results.len()
    );
    assert!(results.len() >= 100, "{} cases", results.len());
    assert!(
        wrong.is_empty(),
        "the trace disagrees with the label: {wrong:#?}"
    );
}

#[test]
fn trace_without_a_value_traces_what_is_pending_on_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    let down = Some("SELECT 1;\n");
    write_migration(
        &dir,
        "2030-01-01-000000_base",
        "CREATE TABLE t (id bigint PRIMARY KEY, b text);\n",
        down,
        false,
    );
    write_migration(
        &dir,
        "2030-01-02-000000_index",
        "CREATE INDEX t_b_idx ON t (b);\n",
        Some("DROP INDEX t_b_idx;\n"),
        false,
    );
    let db = "lint_trace_pending";
    // Outside the project: a rollback there would regenerate its src/schema.rs.
    let run = |args: &[&str]| {
        Command::new(DB_BIN)
            .args(args)
            .current_dir(tmp.path())
            .arg("--migrations-dir")
            .arg(&dir)
            .env("DATABASE_URL", common::url_of(db))
            .env_remove("DB_MIGRATIONS_DIR")
            .output()
            .unwrap()
    };
    let _ = run(&["drop", "--yes"]);
    let setup = run(&["setup"]);
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let rollback = run(&["rollback", "--yes"]);
    assert!(
        rollback.status.success(),
        "{}",
        String::from_utf8_lossy(&rollback.stderr)
    );
    let (_, pending) = trace(
        tmp.path(),
        db,
        &["--migrations-dir", dir.to_str().unwrap(), "--trace"],
    );
    assert_eq!(
        pending["migrations"],
        serde_json::json!(["2030-01-02-000000_index"]),
        "{pending:#}"
    );
    assert_eq!(
        modes(of(&pending, "20300102000000")[0], "\"t\""),
        vec!["SHARE"]
    );
    assert!(run(&["migrate"]).status.success());
    let (_, nothing) = trace(
        tmp.path(),
        db,
        &["--migrations-dir", dir.to_str().unwrap(), "--trace"],
    );
    assert!(
        nothing["note"]
            .as_str()
            .unwrap()
            .contains("nothing to trace"),
        "{nothing:#}"
    );
    assert!(run(&["drop", "--yes"]).status.success());
}
