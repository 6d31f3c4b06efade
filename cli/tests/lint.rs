//! `db lint` as a command: output formats, exit codes, allow comments and
//! the allow-list file, the project's own migrations; and `db lint`
//! measured on the labeled corpus in tests/lint_corpus/cases.toml: every
//! case becomes a migrations folder (setup, then the case), the real
//! `db lint --format json` runs on it, and a case counts as flagged when the
//! case's migration has an error-level finding (what makes `db lint` exit 1;
//! warnings do not), or the warning the case names in `warning` (a danger
//! that depends on row counts lint cannot see, such as a bulk UPDATE).
//! Recall must be at least 90% and false positives at most 10%.
//! `scripts/lint-vs-squawk` runs squawk on the same cases.

use std::path::Path;
use std::process::{Command, Output};

#[path = "lint_support/mod.rs"]
mod support;

use support::{Corpus, DB_BIN, write_case, write_migration};
/// The rules of the findings `db lint` reports in the case's migration that
/// flag it: every error, and the case's own `warning`.
fn lint_case(dir: &Path, pg_version: u32, warning: Option<&str>) -> Vec<String> {
    let out = Command::new(DB_BIN)
        .args(["lint", "--format", "json", "--pg-version"])
        .arg(pg_version.to_string())
        .arg("--migrations-dir")
        .arg(dir)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "db lint --format json printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let errors: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error" || warning.is_some_and(|w| f["rule"] == w))
        .filter(|f| f["file"].as_str().unwrap().contains("_case/"))
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect();
    let any_error = report["summary"]["errors"].as_u64().unwrap() > 0;
    assert_eq!(
        out.status.code(),
        Some(if any_error { 1 } else { 0 }),
        "exit code follows the error count"
    );
    errors
}

#[test]
fn lint_catches_the_dangerous_cases_of_the_corpus_and_spares_the_safe_ones() {
    let corpus = Corpus::load();
    let tmp = tempfile::tempdir().unwrap();
    let (mut caught, mut dangerous, mut false_alarms, mut safe) = (0, 0, 0, 0);
    let mut misses = Vec::new();
    for case in &corpus.case {
        assert!(
            case.label == "dangerous" || case.label == "safe",
            "{}: label must be dangerous or safe",
            case.name
        );
        let dir = write_case(tmp.path(), &corpus, case);
        let rules = lint_case(&dir, case.pg_version, case.warning.as_deref());
        let flagged = !rules.is_empty();
        println!(
            "{:<9} {:<8} {:<28} {:<58} {}",
            case.label,
            if flagged { "flagged" } else { "-" },
            case.family,
            case.name,
            rules.join(",")
        );
        if case.label == "dangerous" {
            dangerous += 1;
            caught += usize::from(flagged);
        } else {
            safe += 1;
            false_alarms += usize::from(flagged);
        }
        if flagged != (case.label == "dangerous") {
            let why = case.why.as_deref().unwrap_or_default();
            misses.push(format!(
                "{} ({}; {why}): {:?}",
                case.name, case.label, rules
            ));
        }
    }
    let recall = caught as f64 / dangerous as f64;
    let fp_rate = false_alarms as f64 / safe as f64;
    println!(
        "db lint: {caught}/{dangerous} dangerous caught ({:.0}%), {false_alarms}/{safe} safe flagged ({:.0}%)",
        recall * 100.0,
        fp_rate * 100.0
    );
    assert!(corpus.case.len() >= 60, "the corpus has at least 60 cases");
    assert!(safe >= 20, "at least 20 safe-but-tempting cases");
    assert!(
        recall >= 0.90,
        "recall {recall:.2} < 0.90; wrong: {misses:#?}"
    );
    assert!(
        fp_rate <= 0.10,
        "false positives {fp_rate:.2} > 0.10; wrong: {misses:#?}"
    );
}

/// Runs `db lint ARGS` in `cwd` with no configuration from the environment.
fn db_lint(cwd: &Path, args: &[&str]) -> Output {
    Command::new(DB_BIN)
        .arg("lint")
        .args(args)
        .current_dir(cwd)
        .env_remove("DB_MIGRATIONS_DIR")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A migrations folder with a base table and one risky migration.
fn project_with(risky_up: &str, no_transaction: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    write_migration(
        &dir,
        "2030-01-01-000000_base",
        "CREATE TABLE t (id bigint PRIMARY KEY, a text, b bigint);\nCREATE INDEX t_a_idx ON t (a);\n",
        Some("DROP TABLE t;\n"),
        false,
    );
    write_migration(
        &dir,
        "2030-01-02-000000_risky",
        risky_up,
        Some("SELECT 1;\n"),
        no_transaction,
    );
    (tmp, dir)
}

#[test]
fn lint_flags_each_rule_on_a_fixture_and_respects_allow_comments() {
    let (tmp, dir) = project_with(
        "CREATE INDEX t_b_idx ON t (b);\n\
         ALTER TABLE t ADD COLUMN c int NOT NULL;\n\
         ALTER TABLE t ALTER COLUMN a SET NOT NULL;\n\
         ALTER TABLE t ADD CONSTRAINT t_b_fk FOREIGN KEY (b) REFERENCES t (id);\n\
         ALTER TABLE t ADD CONSTRAINT t_b_check CHECK (b > 0);\n\
         ALTER TABLE t ALTER COLUMN b TYPE int;\n\
         ALTER TABLE t DROP COLUMN a;\n\
         ALTER TABLE t RENAME COLUMN b TO bb;\n\
         ALTER TABLE t RENAME TO tt;\n\
         DROP TABLE tt;\n\
         CREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n",
        false,
    );
    std::fs::write(dir.join("2030-01-02-000000_risky/down.sql"), "-- nothing\n").unwrap();
    write_migration(
        &dir,
        "2030-01-03-000000_no_down",
        "SELECT 1;\n",
        None,
        false,
    );
    write_migration(
        &dir,
        "2030-01-04-000000_silenced",
        "-- db-lint: allow drop-column\nALTER TABLE t DROP COLUMN b;\nDROP TABLE t; -- db-lint: allow drop-table\n",
        Some("SELECT 1;\n"),
        false,
    );
    write_migration(
        &dir,
        "2030-01-05-000000_concurrent",
        "CREATE INDEX CONCURRENTLY t_b2_idx ON t (b);\n",
        Some("DROP INDEX CONCURRENTLY t_b2_idx;\n"),
        true,
    );

    let out = db_lint(tmp.path(), &["--migrations-dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    let risky = "migrations/2030-01-02-000000_risky/up.sql";
    for (line, rule) in [
        (1, "index-not-concurrent"),
        (2, "add-column-not-null"),
        (3, "set-not-null"),
        (4, "constraint-not-valid"),
        (5, "constraint-not-valid"),
        (6, "column-type-change"),
        (7, "drop-column"),
        (8, "rename-column"),
        (9, "rename-table"),
        (10, "drop-table"),
        (11, "concurrently-in-transaction"),
    ] {
        assert!(
            report.contains(&format!("{risky}:{line}: [{rule}] ")),
            "missing {rule} at line {line}:\n{report}"
        );
    }
    assert!(
        report.contains(&format!(
            "{risky}:1: [missing-lock-timeout] warning: SHARE lock on \"t\""
        )),
        "one lock-timeout warning per migration, at its first strong lock:\n{report}"
    );
    assert!(
        report.contains("2030-01-02-000000_risky/down.sql:1: [missing-down]"),
        "{report}"
    );
    assert!(
        report.contains("2030-01-03-000000_no_down/down.sql:1: [missing-down]"),
        "{report}"
    );
    assert!(
        !report.contains("_base/"),
        "a table created in the same migration is exempt:\n{report}"
    );
    for line in report.lines().filter(|l| l.contains("_silenced/")) {
        assert!(
            line.contains("] warning: "),
            "allow comments are respected: {line}"
        );
    }
    assert!(
        !report.contains("_concurrent/"),
        "CONCURRENTLY outside a transaction is fine:\n{report}"
    );
    assert!(
        report.contains("CREATE INDEX CONCURRENTLY in a migration"),
        "findings explain the safe alternative:\n{report}"
    );
    assert!(report.contains("13 error(s), 2 warning(s)."), "{report}");
    // One finding a line: every line but the summary is PATH:LINE: [RULE] ...
    for line in report.lines().filter(|l| !l.ends_with("warning(s).")) {
        assert!(line.starts_with("migrations/"), "{line}");
    }
}

#[test]
fn exit_codes_tell_clean_from_findings_from_usage_errors() {
    let (tmp, dir) = project_with("ALTER TABLE t ADD COLUMN c text;\n", false);
    let dir_arg = dir.to_str().unwrap();
    // Warnings only (no lock_timeout): clean unless warnings are denied.
    let out = db_lint(tmp.path(), &["--migrations-dir", dir_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("0 error(s), 1 warning(s)."),
        "{}",
        text(&out)
    );
    let out = db_lint(
        tmp.path(),
        &["--migrations-dir", dir_arg, "--deny", "warnings"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Clean.
    std::fs::write(
        dir.join("2030-01-02-000000_risky/up.sql"),
        "SET lock_timeout = '5s';\nALTER TABLE t ADD COLUMN c text;\n",
    )
    .unwrap();
    let out = db_lint(
        tmp.path(),
        &["--migrations-dir", dir_arg, "--deny", "warnings"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("No findings."), "{}", text(&out));

    // Usage and configuration errors: 2.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = db_lint(tmp.path(), &["--migrations-dir", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no migrations found"), "{}", text(&out));
    let out = db_lint(tmp.path(), &["--migrations-dir", "/nonexistent/migrations"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = db_lint(
        tmp.path(),
        &["--migrations-dir", dir_arg, "--format", "xml"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = db_lint(
        tmp.path(),
        &["--migrations-dir", dir_arg, "--deny", "errors"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // Outside any project, without --migrations-dir.
    let out = db_lint(tmp.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("diesel.toml"), "{}", text(&out));
}

#[test]
fn json_and_github_formats_name_file_line_rule_and_object() {
    let (tmp, dir) = project_with(
        "SET lock_timeout = '5s';\nDROP INDEX CONCURRENTLY t_a_idx;\nCREATE TABLE u (id bigint PRIMARY KEY, at timestamp);\n",
        false,
    );
    let dir_arg = dir.to_str().unwrap();
    let out = db_lint(
        tmp.path(),
        &["--migrations-dir", dir_arg, "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = doc["findings"].as_array().unwrap();
    let concurrently = findings
        .iter()
        .find(|f| f["rule"] == "concurrently-in-transaction")
        .expect("flagged");
    assert_eq!(
        concurrently["file"],
        "migrations/2030-01-02-000000_risky/up.sql"
    );
    assert_eq!(concurrently["line"], 2);
    assert_eq!(concurrently["severity"], "error");
    assert_eq!(concurrently["migration"], "20300102000000");
    assert!(
        concurrently["message"]
            .as_str()
            .unwrap()
            .contains("\"t_a_idx\""),
        "the finding names the index: {concurrently}"
    );
    assert!(
        concurrently["advice"]
            .as_str()
            .unwrap()
            .contains("run_in_transaction = false")
    );
    let timestamp = findings
        .iter()
        .find(|f| f["rule"] == "timestamp-without-time-zone")
        .expect("flagged");
    assert_eq!(timestamp["severity"], "warning");
    assert_eq!(doc["summary"]["errors"], 1);
    assert_eq!(doc["summary"]["warnings"], 1);
    assert_eq!(doc["summary"]["allowed"], 0);

    let out = db_lint(
        tmp.path(),
        &["--migrations-dir", dir_arg, "--format", "github"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let annotations = String::from_utf8_lossy(&out.stdout);
    assert!(
        annotations.contains(
            "::error file=migrations/2030-01-02-000000_risky/up.sql,line=2,title=concurrently-in-transaction::DROP INDEX CONCURRENTLY"
        ),
        "{annotations}"
    );
    assert!(
        annotations.contains("::warning file=migrations/2030-01-02-000000_risky/up.sql,line=3,title=timestamp-without-time-zone::"),
        "{annotations}"
    );
}

#[test]
fn the_allow_list_silences_a_rule_in_a_landed_migration_and_needs_a_reason() {
    let (tmp, dir) = project_with("SET lock_timeout = '5s';\nDROP TABLE t;\n", false);
    let dir_arg = dir.to_str().unwrap();
    let allow = tmp.path().join("lint-allow.toml");
    std::fs::write(
        &allow,
        "[[allow]]\nversion = \"20300102000000\"\nrule = \"drop-table\"\nreason = \"t was unused since release 3\"\n",
    )
    .unwrap();
    let out = db_lint(tmp.path(), &["--migrations-dir", dir_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("No findings (1 allowed by the allow-list)."),
        "{}",
        text(&out)
    );

    for (entry, complaint) in [
        (
            "version = \"20300102000000\"\nrule = \"drop-table\"\n",
            "needs a reason",
        ),
        (
            "version = \"20300102000000\"\nrule = \"drop-tables\"\nreason = \"x\"\n",
            "unknown rule",
        ),
        (
            "version = \"20990101000000\"\nrule = \"drop-table\"\nreason = \"x\"\n",
            "no migration has version",
        ),
    ] {
        std::fs::write(&allow, format!("[[allow]]\n{entry}")).unwrap();
        let out = db_lint(tmp.path(), &["--migrations-dir", dir_arg]);
        assert_eq!(out.status.code(), Some(2), "{entry}: {}", text(&out));
        assert!(text(&out).contains(complaint), "{entry}: {}", text(&out));
    }

    // An entry that matches nothing is reported, so it can be removed.
    std::fs::write(
        &allow,
        "[[allow]]\nversion = \"20300101000000\"\nrule = \"drop-table\"\nreason = \"stale\"\n",
    )
    .unwrap();
    let out = db_lint(tmp.path(), &["--migrations-dir", dir_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("matches no finding"), "{}", text(&out));
    // --allow-file names another file, which must exist.
    let out = db_lint(
        tmp.path(),
        &["--migrations-dir", dir_arg, "--allow-file", "nope.toml"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn lint_is_silent_on_the_projects_own_migrations() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let out = db_lint(root, &["--deny", "warnings"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("No findings"), "{}", text(&out));
}

#[test]
fn the_readme_rule_tables_list_every_rule() {
    let readme = std::fs::read_to_string(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("README.md"),
    )
    .unwrap();
    for rule in database_cli::lint::Rule::ALL {
        assert!(
            readme.contains(&format!("| `{}` |", rule.name())),
            "README's lint rule tables lack {rule}"
        );
    }
}

#[test]
fn lint_runs_when_database_url_names_sqlite() {
    // Lint needs no database: a SQLite DATABASE_URL (auth and settings) must not stop it.
    let (tmp, dir) = project_with("SET lock_timeout = '5s';\nDROP TABLE t;\n", false);
    let out = Command::new(DB_BIN)
        .args(["lint", "--migrations-dir"])
        .arg(&dir)
        .current_dir(tmp.path())
        .env_remove("DB_MIGRATIONS_DIR")
        .env("DATABASE_URL", "sqlite://app.db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("[drop-table]"), "{}", text(&out));
}
