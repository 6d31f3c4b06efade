use super::*;

const SETUP: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name varchar(50), email text, age int, \
     status text, amount numeric(10,2));\n\
     CREATE TABLE accounts (id bigint PRIMARY KEY, user_id bigint);\n\
     CREATE TABLE sessions (id bigint PRIMARY KEY);\n\
     CREATE INDEX users_email_idx ON users (email);\n\
     CREATE TYPE mood AS ENUM ('sad', 'ok');\n\
     CREATE DOMAIN email AS text;\n";

/// The findings of `sql` (in a transaction or not, on PostgreSQL `pg`)
/// after `setup` built the schema (with warnings at most).
pub(super) fn findings_after(setup: &str, sql: &str, in_tx: bool, pg: u32) -> Vec<Finding> {
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

/// Lints `sql` after `setup` built the schema; (line, rule) of each finding.
fn lint_after(setup: &str, sql: &str, in_tx: bool, pg: u32) -> Vec<(usize, &'static str)> {
    findings_after(setup, sql, in_tx, pg)
        .iter()
        .map(|f| (f.line, f.rule.name()))
        .collect()
}

fn rules(sql: &str) -> Vec<(usize, &'static str)> {
    lint_after(SETUP, sql, true, 15)
        .into_iter()
        .filter(|(_, r)| *r != "missing-lock-timeout")
        .collect()
}

fn errors(setup: &str, sql: &str, in_tx: bool) -> Vec<&'static str> {
    lint_after(setup, sql, in_tx, 15)
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.parse::<Rule>().unwrap().severity() == Severity::Error)
        .collect()
}

#[test]
fn each_rule_fires_on_an_existing_table() {
    let sql = "-- header\n\
        CREATE INDEX users_name_idx ON users (name);\n\
        ALTER TABLE users ADD COLUMN nick int NOT NULL;\n\
        ALTER TABLE users ALTER COLUMN name SET NOT NULL;\n\
        ALTER TABLE accounts ADD CONSTRAINT accounts_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\n\
        ALTER TABLE users ADD CONSTRAINT users_age_check CHECK (age > 0);\n\
        ALTER TABLE users ALTER COLUMN name TYPE varchar(20);\n\
        ALTER TABLE users DROP COLUMN email;\n\
        DROP TABLE sessions;\n\
        ALTER TABLE users RENAME COLUMN name TO full_name;\n\
        ALTER TABLE users RENAME TO people;\n\
        CREATE INDEX CONCURRENTLY people_age_idx ON people (age);\n";
    assert_eq!(
        rules(sql),
        vec![
            (2, "index-not-concurrent"),
            (3, "add-column-not-null"),
            (4, "set-not-null"),
            (5, "constraint-not-valid"),
            (6, "constraint-not-valid"),
            (7, "column-type-change"),
            (8, "drop-column"),
            (9, "drop-table"),
            (10, "rename-column"),
            (11, "rename-table"),
            (12, "concurrently-in-transaction"),
        ]
    );
}

/// Every rule of the item 1: a fixture it flags and a safe twin it
/// does not. (rule, flagged SQL, its transaction mode, safe twin, its mode).
const FIXTURES: &[(&str, &str, bool, &str, bool)] = &[
    (
        "add-column-volatile-default",
        "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();",
        true,
        "ALTER TABLE users ADD COLUMN seen_at timestamptz DEFAULT now();",
        true,
    ),
    (
        "add-column-volatile-default",
        "ALTER TABLE users ADD COLUMN r float8 DEFAULT random();",
        true,
        "ALTER TABLE users ADD COLUMN n int NOT NULL DEFAULT 0;",
        true,
    ),
    (
        "add-column-generated-stored",
        "ALTER TABLE users ADD COLUMN lname text GENERATED ALWAYS AS (lower(email)) STORED;",
        true,
        "ALTER TABLE users ADD COLUMN lname text;",
        true,
    ),
    (
        "add-column-serial",
        "ALTER TABLE users ADD COLUMN seq bigserial;",
        true,
        "ALTER TABLE users ADD COLUMN seq bigint;",
        true,
    ),
    (
        "add-column-serial",
        "ALTER TABLE users ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;",
        true,
        "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);",
        true,
    ),
    (
        "add-unique-constraint",
        "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);",
        true,
        "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx;",
        true,
    ),
    (
        "add-unique-constraint",
        "ALTER TABLE users ADD COLUMN handle text UNIQUE;",
        true,
        "CREATE UNIQUE INDEX CONCURRENTLY users_status_key ON users (status);",
        false,
    ),
    (
        "add-primary-key",
        "ALTER TABLE accounts DROP CONSTRAINT accounts_pkey, ADD PRIMARY KEY (user_id);",
        true,
        "ALTER TABLE sessions ADD COLUMN note text;",
        true,
    ),
    (
        "add-exclusion-constraint",
        "ALTER TABLE users ADD CONSTRAINT no_overlap EXCLUDE USING gist (age WITH =);",
        true,
        "CREATE TABLE bookings (r int4range, EXCLUDE USING gist (r WITH &&));",
        true,
    ),
    (
        "add-column-check",
        "ALTER TABLE users ADD COLUMN score int CHECK (score > 0);",
        true,
        "ALTER TABLE users ADD COLUMN score int;\n\
         ALTER TABLE users ADD CONSTRAINT users_score_check CHECK (score > 0) NOT VALID;",
        true,
    ),
    (
        "validate-in-same-transaction",
        "ALTER TABLE users ADD CONSTRAINT users_age_check CHECK (age > 0) NOT VALID;\n\
         ALTER TABLE users VALIDATE CONSTRAINT users_age_check;",
        true,
        "ALTER TABLE users ADD CONSTRAINT users_age_check CHECK (age > 0) NOT VALID;\n\
         ALTER TABLE users VALIDATE CONSTRAINT users_age_check;",
        false,
    ),
    (
        "drop-index-not-concurrent",
        "DROP INDEX users_email_idx;",
        true,
        "DROP INDEX CONCURRENTLY users_email_idx;",
        false,
    ),
    (
        "reindex-not-concurrent",
        "REINDEX INDEX users_email_idx;",
        true,
        "REINDEX INDEX CONCURRENTLY users_email_idx;",
        false,
    ),
    (
        "concurrently-in-transaction",
        "REINDEX TABLE CONCURRENTLY users;",
        true,
        "REINDEX TABLE CONCURRENTLY users;",
        false,
    ),
    (
        "table-rewrite",
        "VACUUM FULL users;",
        false,
        "VACUUM (ANALYZE) users;",
        false,
    ),
    (
        "table-rewrite",
        "CLUSTER users USING users_email_idx;",
        true,
        "ANALYZE users;",
        true,
    ),
    (
        "enum-rename-value",
        "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue';",
        true,
        "ALTER TYPE mood ADD VALUE 'happy';",
        true,
    ),
    (
        "enum-value-used-in-transaction",
        "ALTER TYPE mood ADD VALUE 'happy';\nCREATE TABLE moods (m mood DEFAULT 'happy');",
        true,
        "ALTER TYPE mood ADD VALUE 'happy';\nCREATE TABLE moods (m mood DEFAULT 'ok');",
        true,
    ),
    (
        "missing-lock-timeout",
        "ALTER TABLE users ADD COLUMN note text;",
        true,
        "SET lock_timeout = '5s';\nALTER TABLE users ADD COLUMN note text;",
        true,
    ),
    (
        "contradiction",
        "ALTER TABLE users ADD COLUMN note text NOT NULL DEFAULT NULL;",
        true,
        "ALTER TABLE users ADD COLUMN note text NOT NULL DEFAULT '';",
        true,
    ),
    (
        "contradiction",
        "CREATE TABLE notes (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id) ON DELETE SET NULL);",
        true,
        "CREATE TABLE notes (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id) ON DELETE SET NULL);",
        true,
    ),
    (
        "unbatched-backfill",
        "UPDATE users SET status = 'active';",
        true,
        "UPDATE users SET status = 'active' WHERE id BETWEEN 1 AND 1000;",
        true,
    ),
    (
        "constraint-not-valid",
        "ALTER DOMAIN public.email ADD CONSTRAINT email_at CHECK (VALUE LIKE '%@%');",
        true,
        "ALTER DOMAIN email ADD CONSTRAINT email_at CHECK (VALUE LIKE '%@%') NOT VALID;",
        true,
    ),
    (
        "contradiction",
        "ALTER TABLE users ADD COLUMN uid bigint PRIMARY KEY;",
        true,
        "CREATE TABLE tags (id bigint PRIMARY KEY, name text NOT NULL);",
        true,
    ),
    (
        "contradiction",
        "ALTER TABLE users ADD COLUMN code varchar(3) DEFAULT 'toolong';",
        true,
        "ALTER TABLE users ADD COLUMN code varchar(3) DEFAULT 'abc';",
        true,
    ),
    (
        "diesel-cli-batch",
        "CREATE INDEX CONCURRENTLY users_age_idx ON users (age);\nCREATE INDEX CONCURRENTLY users_status_idx ON users (status);",
        false,
        "CREATE INDEX CONCURRENTLY users_age_idx ON users (age);",
        false,
    ),
];

#[test]
fn every_rule_of_item_1_flags_its_fixture_and_not_its_safe_twin() {
    for (rule, flagged, flagged_tx, safe, safe_tx) in FIXTURES {
        let found = lint_after(SETUP, flagged, *flagged_tx, 15);
        assert!(
            found.iter().any(|(_, r)| r == rule),
            "{rule} should flag:\n{flagged}\ngot {found:?}"
        );
        let found = lint_after(SETUP, safe, *safe_tx, 15);
        assert!(
            !found.iter().any(|(_, r)| r == rule),
            "{rule} should not flag its safe twin:\n{safe}\ngot {found:?}"
        );
        let errs = errors(SETUP, safe, *safe_tx);
        assert!(
            errs.is_empty(),
            "safe twin of {rule} has errors {errs:?}:\n{safe}"
        );
    }
}

#[test]
fn type_changes_that_only_widen_are_not_flagged() {
    for safe in [
        "ALTER TABLE users ALTER COLUMN name TYPE varchar(100);",
        "ALTER TABLE users ALTER COLUMN name TYPE text;",
        "ALTER TABLE users ALTER COLUMN amount TYPE numeric(12,2);",
        "ALTER TABLE public.users ALTER COLUMN name TYPE varchar;",
    ] {
        assert_eq!(rules(safe), vec![], "{safe}");
    }
    for risky in [
        "ALTER TABLE users ALTER COLUMN age TYPE bigint;",
        "ALTER TABLE users ALTER COLUMN name TYPE varchar(10);",
        "ALTER TABLE users ALTER COLUMN name TYPE text USING upper(name);",
        "ALTER TABLE users ALTER COLUMN nosuch TYPE text;",
    ] {
        assert_eq!(rules(risky), vec![(1, "column-type-change")], "{risky}");
    }
}

#[test]
fn timestamp_to_timestamptz_is_free_only_in_a_utc_session() {
    let setup = format!("{SETUP}CREATE TABLE events (id bigint PRIMARY KEY, at timestamp);\n");
    let bare = "ALTER TABLE events ALTER COLUMN at TYPE timestamptz;";
    assert_eq!(errors(&setup, bare, true), vec!["column-type-change"]);
    let utc = "SET LOCAL TimeZone = 'UTC';\nALTER TABLE events ALTER COLUMN at TYPE timestamptz;";
    assert!(errors(&setup, utc, true).is_empty());
    let utc = "SET TIME ZONE 'Etc/UTC';\nALTER TABLE events ALTER COLUMN at TYPE timestamptz;";
    assert!(errors(&setup, utc, true).is_empty());
    let paris =
        "SET TIME ZONE 'Europe/Paris';\nALTER TABLE events ALTER COLUMN at TYPE timestamptz;";
    assert_eq!(errors(&setup, paris, true), vec!["column-type-change"]);
    assert_eq!(
        lint_after(&setup, utc, true, 11).len(),
        2,
        "before 12 it always rewrites"
    );
}

#[test]
fn inline_references_on_add_column_validates_only_with_a_default() {
    // All NULL: PostgreSQL marks the key valid without a scan.
    let plain = "ALTER TABLE accounts ADD COLUMN referrer_id bigint REFERENCES users (id);";
    assert!(errors(SETUP, plain, true).is_empty());
    let with_default =
        "ALTER TABLE accounts ADD COLUMN owner_id bigint DEFAULT 1 REFERENCES users (id);";
    assert_eq!(
        errors(SETUP, with_default, true),
        vec!["constraint-not-valid"]
    );
}

#[test]
fn set_not_null_is_safe_with_a_validated_check_from_this_or_an_earlier_migration() {
    let with_check = format!(
        "{SETUP}ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;\n\
         ALTER TABLE users VALIDATE CONSTRAINT users_email_nn;\n"
    );
    assert!(
        errors(
            &with_check,
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
            true
        )
        .is_empty()
    );
    // Validated earlier in the same (non-transactional) file.
    let same_file = "ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;\n\
                     ALTER TABLE users VALIDATE CONSTRAINT users_email_nn;\n\
                     ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n";
    assert!(errors(SETUP, same_file, false).is_empty());
    // Before PostgreSQL 12 the check does not help.
    let old = lint_after(
        &with_check,
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
        true,
        11,
    );
    assert!(old.iter().any(|(_, r)| *r == "set-not-null"), "{old:?}");
    // A check that is still NOT VALID: the advice names it.
    let mut schema = Schema::default();
    let options = Options::default();
    lint_up(SETUP, true, "s", &mut schema, &options);
    lint_up(
        "ALTER TABLE users ADD CONSTRAINT users_email_nn CHECK (email IS NOT NULL) NOT VALID;",
        true,
        "s",
        &mut schema,
        &options,
    );
    let f = lint_up(
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
        true,
        "u",
        &mut schema,
        &options,
    );
    let set = f
        .iter()
        .find(|f| f.rule == Rule::SetNotNull)
        .expect("flagged");
    assert!(
        set.advice
            .contains("VALIDATE CONSTRAINT \"users_email_nn\""),
        "{}",
        set.advice
    );
}

#[test]
fn created_in_the_same_migration_compares_schema_qualified_names() {
    let sql = "CREATE SCHEMA archive;\n\
               CREATE TABLE archive.users (id int);\n\
               CREATE INDEX archive_users_id ON archive.users (id);\n\
               CREATE INDEX users_age_idx ON users (age);\n\
               CREATE INDEX users_age2_idx ON public.users (age);\n";
    assert_eq!(
        rules(sql),
        vec![(4, "index-not-concurrent"), (5, "index-not-concurrent")]
    );
}

#[test]
fn tables_created_in_the_same_migration_are_exempt() {
    let sql = "CREATE TABLE t (id bigint);\n\
               CREATE INDEX t_id_idx ON t (id);\n\
               ALTER TABLE t ADD COLUMN x int NOT NULL;\n\
               ALTER TABLE t ADD CONSTRAINT c CHECK (id > 0);\n\
               ALTER TABLE t RENAME COLUMN x TO y;\n\
               DROP INDEX t_id_idx;\n\
               DROP TABLE t;\n";
    assert_eq!(rules(sql), vec![]);
}

#[test]
fn the_target_version_changes_what_is_flagged() {
    let constant_default = "ALTER TABLE users ADD COLUMN flag boolean NOT NULL DEFAULT false;";
    assert!(errors(SETUP, constant_default, true).is_empty());
    let old = lint_after(SETUP, constant_default, true, 10);
    assert!(
        old.iter().any(|(_, r)| *r == "add-column-volatile-default"),
        "{old:?}"
    );
    let add_value = "ALTER TYPE mood ADD VALUE 'happy';";
    assert!(errors(SETUP, add_value, true).is_empty());
    let old = lint_after(SETUP, add_value, true, 11);
    assert!(
        old.iter().any(|(_, r)| *r == "not-in-transaction"),
        "{old:?}"
    );
}

#[test]
fn style_warnings_are_warnings() {
    let sql =
        "CREATE TABLE legacy (id serial PRIMARY KEY, at timestamp, code varchar(10), c char(2));";
    let found = lint_after(SETUP, sql, true, 15);
    let names: Vec<_> = found.iter().map(|(_, r)| *r).collect();
    assert_eq!(
        names,
        vec![
            "int-primary-key",
            "timestamp-without-time-zone",
            "prefer-text",
            "prefer-text"
        ]
    );
    assert!(errors(SETUP, sql, true).is_empty());
}

#[test]
fn an_allow_comment_silences_only_its_rule_and_statement() {
    let sql = "-- db-lint: allow drop-table\n\
               DROP TABLE sessions;\n\
               DROP TABLE accounts; -- db-lint: allow drop-column\n\
               ALTER TABLE users DROP COLUMN name, DROP COLUMN age; -- db-lint: allow drop-column, set-not-null\n\
               DROP TABLE users; -- db-lint: allow drop-table\n";
    assert_eq!(rules(sql), vec![(3, "drop-table")]);
}

#[test]
fn findings_name_the_object() {
    let mut schema = Schema::default();
    let options = Options::default();
    lint_up(SETUP, true, "s", &mut schema, &options);
    let sql = "DROP INDEX users_email_idx;";
    let f = lint_up(sql, false, "u", &mut schema, &options);
    let drop = f.iter().find(|f| f.rule == Rule::DropIndexNotConcurrent);
    let drop = drop.expect("flagged");
    assert!(
        drop.message.contains("\"users_email_idx\""),
        "{}",
        drop.message
    );
    assert!(drop.message.contains("on \"users\""), "{}", drop.message);
    // The lock-timeout warning knows the index's table from the schema model.
    let wait = f.iter().find(|f| f.rule == Rule::MissingLockTimeout);
    assert!(wait.expect("warned").message.contains("\"users\""));
}

#[test]
fn a_primary_key_dropped_first_is_no_contradiction() {
    let sql = "ALTER TABLE users DROP CONSTRAINT users_pkey, ADD PRIMARY KEY (id, email);";
    assert_eq!(errors(SETUP, sql, true), vec!["add-primary-key"]);
}

#[test]
fn syntax_errors_are_findings() {
    assert_eq!(rules("CREATE TABLE (;"), vec![(1, "syntax")]);
}
