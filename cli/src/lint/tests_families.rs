//! Unit tests of issue #30's families and messages (the older rules are
//! tested in `tests.rs`): each case is a fixture the rule flags and a safe
//! twin it does not.

use super::*;

const SETUP: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text, email text, age int, status text);\n\
     CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, total numeric, note text);\n\
     CREATE INDEX orders_user_id_idx ON orders (user_id);\n";

/// The findings of `sql` after `setup`: (line, rule, message).
fn lint_full(setup: &str, sql: &str, in_tx: bool, pg: u32) -> Vec<Finding> {
    let options = Options { pg_version: pg };
    let mut schema = Schema::default();
    let setup_findings = lint_up(setup, true, "setup.sql", &mut schema, &options);
    assert!(
        setup_findings
            .iter()
            .all(|f| f.severity() == Severity::Warning),
        "{setup_findings:?}"
    );
    lint_up(sql, in_tx, "up.sql", &mut schema, &options)
}

/// (line, rule) of every finding but the lock-timeout warning.
fn found(setup: &str, sql: &str, in_tx: bool) -> Vec<(usize, &'static str)> {
    lint_full(setup, sql, in_tx, 15)
        .iter()
        .filter(|f| f.rule != Rule::MissingLockTimeout)
        .map(|f| (f.line, f.rule.name()))
        .collect()
}

#[test]
fn a_syntax_error_is_reported_on_its_own_line() {
    let sql = "-- header\nSELECT 1;\nSELEC 2;\n";
    assert_eq!(found(SETUP, sql, true), vec![(3, "syntax")]);
    // Inside a statement that spans lines: the line of the offending token.
    let sql = "CREATE TABLE t (\n  id bigint,\n  name text text\n);\n";
    assert_eq!(found(SETUP, sql, true), vec![(3, "syntax")]);
    // The same word earlier on a line that parses is not the place.
    let sql = "SELECT 1 AS x;\nSELECT 1 AS x x;\n";
    assert_eq!(found(SETUP, sql, true), vec![(2, "syntax")]);
}

#[test]
fn a_byte_order_mark_is_named_and_the_rest_is_still_linted() {
    let sql = "\u{feff}CREATE INDEX users_age_idx ON users (age);\n";
    let findings = lint_full(SETUP, sql, true, 15);
    let bom = findings
        .iter()
        .find(|f| f.rule == Rule::Syntax)
        .expect("the BOM is a finding");
    assert_eq!(bom.line, 1);
    assert!(bom.message.contains("byte order mark"), "{}", bom.message);
    assert!(
        findings.iter().any(|f| f.rule == Rule::IndexNotConcurrent),
        "{findings:?}"
    );
}

#[test]
fn if_exists_on_a_table_no_migration_created_is_not_called_existing() {
    let sql = "ALTER TABLE IF EXISTS nope ADD COLUMN x int NOT NULL;";
    let findings = lint_full(SETUP, sql, true, 15);
    let f = findings
        .iter()
        .find(|f| f.rule == Rule::AddColumnNotNullWithoutDefault)
        .expect("still flagged: the table may exist outside the migrations");
    assert!(!f.message.contains("existing"), "{}", f.message);
    assert!(f.message.contains("if it exists"), "{}", f.message);
    // A table the migrations created is existing.
    let sql = "ALTER TABLE IF EXISTS users ADD COLUMN x int NOT NULL;";
    let findings = lint_full(SETUP, sql, true, 15);
    assert!(
        findings
            .iter()
            .any(|f| f.message.contains("existing table \"users\"")),
        "{findings:?}"
    );
}

#[test]
fn every_relation_created_in_the_migration_is_exempt() {
    for sql in [
        "CREATE MATERIALIZED VIEW order_totals AS SELECT user_id, sum(total) AS total FROM orders GROUP BY user_id;\n\
         CREATE UNIQUE INDEX order_totals_user_id ON order_totals (user_id);\n\
         REFRESH MATERIALIZED VIEW order_totals;",
        "CREATE TABLE order_totals AS SELECT user_id, sum(total) AS total FROM orders GROUP BY user_id;\n\
         CREATE INDEX order_totals_user_id ON order_totals (user_id);\n\
         ALTER TABLE order_totals ADD CONSTRAINT order_totals_pos CHECK (total >= 0);",
        "SELECT * INTO orders_copy FROM orders;\nCREATE INDEX orders_copy_note ON orders_copy (note);",
        "CREATE TABLE staging (id bigint);\nALTER TABLE staging RENAME TO imports;\n\
         CREATE INDEX imports_id ON imports (id);",
    ] {
        assert_eq!(found(SETUP, sql, true), vec![], "{sql}");
    }
    // IF NOT EXISTS on a table that exists creates nothing.
    let sql = "CREATE TABLE IF NOT EXISTS orders (id bigint);\nCREATE INDEX orders_note ON orders (note);";
    assert_eq!(found(SETUP, sql, true), vec![(2, "index-not-concurrent")]);
    // A materialized view from an earlier migration is not exempt.
    let setup = format!("{SETUP}CREATE MATERIALIZED VIEW order_totals AS SELECT user_id FROM orders;\n");
    let sql = "REFRESH MATERIALIZED VIEW order_totals;";
    assert_eq!(found(&setup, sql, true), vec![(1, "refresh-not-concurrent")]);
}

#[test]
fn a_default_is_volatile_only_if_a_function_it_calls_is() {
    let setup = format!(
        "{SETUP}CREATE FUNCTION next_code() RETURNS text LANGUAGE sql AS $$ SELECT md5(random()::text) $$;\n\
         CREATE FUNCTION default_plan() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'free' $$;\n\
         CREATE OR REPLACE FUNCTION tenant_now(zone text) RETURNS timestamp STABLE LANGUAGE sql AS $$ SELECT now() AT TIME ZONE zone $$;\n"
    );
    for safe in [
        "ALTER TABLE users ADD COLUMN seen_at timestamp DEFAULT timezone('utc', now());",
        "ALTER TABLE users ADD COLUMN seen_at timestamp DEFAULT (now() AT TIME ZONE 'utc');",
        "ALTER TABLE users ADD COLUMN code text DEFAULT concat_ws('-', 'a', 'b');",
        "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT default_plan();",
        "ALTER TABLE users ADD COLUMN local_at timestamp DEFAULT public.tenant_now('UTC');",
    ] {
        let errors: Vec<_> = found(&setup, safe, true)
            .into_iter()
            .filter(|(_, r)| *r != "timestamp-without-time-zone")
            .collect();
        assert_eq!(errors, vec![], "{safe}");
    }
    for volatile in [
        "ALTER TABLE users ADD COLUMN token text DEFAULT md5(random()::text);",
        "ALTER TABLE users ADD COLUMN code text DEFAULT next_code();",
        "ALTER TABLE users ADD COLUMN id2 uuid DEFAULT uuid_generate_v4();",
    ] {
        assert_eq!(
            found(&setup, volatile, true),
            vec![(1, "add-column-volatile-default")],
            "{volatile}"
        );
    }
}
