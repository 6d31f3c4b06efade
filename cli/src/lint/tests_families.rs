//! Unit tests of issue #30's families and messages (the older rules are
//! tested in `tests.rs`): each case is a fixture the rule flags and a safe
//! twin it does not.

use super::tests::findings_after as lint_full;
use super::*;

const SETUP: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text, email text, age int, status text);\n\
     CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, total numeric, note text);\n\
     CREATE INDEX orders_user_id_idx ON orders (user_id);\n";

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
    let setup =
        format!("{SETUP}CREATE MATERIALIZED VIEW order_totals AS SELECT user_id FROM orders;\n");
    let sql = "REFRESH MATERIALIZED VIEW order_totals;";
    assert_eq!(
        found(&setup, sql, true),
        vec![(1, "refresh-not-concurrent")]
    );
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

const PARTITIONS: &str = "CREATE TABLE events (id bigint, at timestamptz NOT NULL, payload text) PARTITION BY RANGE (at);\n\
     CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n\
     CREATE TABLE events_2025 (id bigint, at timestamptz NOT NULL, payload text);\n\
     CREATE TABLE events_2026 (id bigint, at timestamptz NOT NULL, payload text,\n\
       CONSTRAINT events_2026_bound CHECK (at >= '2026-01-01' AND at < '2027-01-01'));\n";

fn partitions(extra: &str) -> String {
    format!("{SETUP}{PARTITIONS}{extra}")
}

#[test]
fn detach_partition_needs_concurrently_from_14() {
    let setup = partitions("");
    let plain = "ALTER TABLE events DETACH PARTITION events_2024;";
    assert_eq!(found(&setup, plain, true), vec![(1, "detach-partition")]);
    let concurrent = "ALTER TABLE events DETACH PARTITION events_2024 CONCURRENTLY;";
    assert_eq!(found(&setup, concurrent, false), vec![]);
    assert_eq!(
        found(&setup, concurrent, true),
        vec![(1, "concurrently-in-transaction")]
    );
    let old = lint_full(&setup, concurrent, false, 13);
    let f = old
        .iter()
        .find(|f| f.rule == Rule::DetachPartition)
        .expect("CONCURRENTLY does not exist before 14");
    assert!(f.message.contains("14"), "{}", f.message);
    let old = lint_full(&setup, plain, true, 13);
    let f = old.iter().find(|f| f.rule == Rule::DetachPartition);
    assert!(
        !f.expect("flagged on 13 too")
            .advice
            .contains("use DETACH PARTITION ... CONCURRENTLY"),
        "no concurrent form to advise before 14"
    );
    // With a DEFAULT partition CONCURRENTLY is refused.
    let with_default = partitions("CREATE TABLE events_other PARTITION OF events DEFAULT;\n");
    assert_eq!(
        found(&with_default, concurrent, false),
        vec![(1, "detach-partition")]
    );
    // A partitioned table created in the same migration is exempt.
    let sql = "CREATE TABLE logs (at timestamptz) PARTITION BY RANGE (at);\n\
               CREATE TABLE logs_1 PARTITION OF logs FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n\
               ALTER TABLE logs DETACH PARTITION logs_1;";
    assert_eq!(found(SETUP, sql, true), vec![]);
}

#[test]
fn attach_partition_scans_unless_a_validated_check_implies_the_bound() {
    let setup = partitions("");
    let scan = "ALTER TABLE events ATTACH PARTITION events_2025 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');";
    assert_eq!(
        found(&setup, scan, true),
        vec![(1, "attach-partition-scan")]
    );
    let checked = "ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');";
    assert_eq!(found(&setup, checked, true), vec![]);
    // A table created here is empty: nothing to scan.
    let fresh = "CREATE TABLE events_2027 (id bigint, at timestamptz NOT NULL, payload text);\n\
                 ALTER TABLE events ATTACH PARTITION events_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');";
    assert_eq!(found(&setup, fresh, true), vec![]);
    let partition_of = "CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');";
    assert_eq!(found(&setup, partition_of, true), vec![]);
    // A DEFAULT partition is scanned for rows that belong to the new one.
    let with_default = partitions("CREATE TABLE events_other PARTITION OF events DEFAULT;\n");
    for sql in [checked, fresh, partition_of] {
        let got = found(&with_default, sql, true);
        assert_eq!(
            got.last(),
            Some(&(got.last().unwrap().0, "attach-partition-scan")),
            "{sql}"
        );
        assert_eq!(got.len(), 1, "{sql}: {got:?}");
    }
    // A NOT VALID check proves nothing.
    let unvalidated = partitions(
        "ALTER TABLE events_2025 ADD CONSTRAINT b CHECK (at >= '2025-01-01' AND at < '2026-01-01') NOT VALID;\n",
    );
    assert_eq!(
        found(&unvalidated, scan, true),
        vec![(1, "attach-partition-scan")]
    );
}

#[test]
fn indexes_on_a_partitioned_table_follow_the_on_only_recipe() {
    let setup = partitions("");
    let concurrent = "CREATE INDEX CONCURRENTLY events_at_idx ON events (at);";
    assert_eq!(
        found(&setup, concurrent, false),
        vec![(1, "index-concurrently-on-partitioned")]
    );
    let plain = lint_full(
        &setup,
        "CREATE INDEX events_at_idx ON events (at);",
        true,
        15,
    );
    let f = plain
        .iter()
        .find(|f| f.rule == Rule::IndexNotConcurrent)
        .expect("flagged");
    assert!(f.advice.contains("ON ONLY"), "{}", f.advice);
    assert!(
        !f.advice
            .contains("Use CREATE INDEX CONCURRENTLY in a migration"),
        "{}",
        f.advice
    );
    let recipe = "CREATE INDEX events_at_idx ON ONLY events (at);";
    assert_eq!(found(&setup, recipe, true), vec![]);
    let per_partition = "CREATE INDEX CONCURRENTLY events_2024_at_idx ON events_2024 (at);";
    assert_eq!(found(&setup, per_partition, false), vec![]);
    let attach = "ALTER INDEX events_at_idx ATTACH PARTITION events_2024_at_idx;";
    assert_eq!(found(&setup, attach, true), vec![]);
    // ON ONLY a plain table still builds the index.
    let only_plain = "CREATE INDEX orders_note_idx ON ONLY orders (note);";
    assert_eq!(
        found(&setup, only_plain, true),
        vec![(1, "index-not-concurrent")]
    );
}

#[test]
fn a_not_null_column_whose_default_goes_in_the_same_migration_breaks_old_inserts() {
    let dropped = "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';\n\
                   ALTER TABLE users ALTER COLUMN plan DROP DEFAULT;";
    assert_eq!(found(SETUP, dropped, true), vec![(2, "breaks-old-inserts")]);
    let one_statement = "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free', ALTER COLUMN plan DROP DEFAULT;";
    assert_eq!(
        found(SETUP, one_statement, true),
        vec![(1, "breaks-old-inserts")]
    );
    // Kept default: old code's inserts get it.
    let kept = "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';";
    assert_eq!(found(SETUP, kept, true), vec![]);
    // Nullable: old code's inserts get NULL.
    let nullable = "ALTER TABLE users ADD COLUMN plan text DEFAULT 'free';\n\
                    ALTER TABLE users ALTER COLUMN plan DROP DEFAULT;";
    assert_eq!(found(SETUP, nullable, true), vec![]);
    // A new table has no old code.
    let fresh = "CREATE TABLE plans (id bigint PRIMARY KEY, name text NOT NULL DEFAULT 'x');\n\
                 ALTER TABLE plans ALTER COLUMN name DROP DEFAULT;";
    assert_eq!(found(SETUP, fresh, true), vec![]);
}

#[test]
fn rename_with_a_compatibility_view_is_the_safe_recipe() {
    let bare = "ALTER TABLE orders RENAME TO purchases;";
    assert_eq!(found(SETUP, bare, true), vec![(1, "rename-table")]);
    let with_view = "ALTER TABLE orders RENAME TO purchases;\n\
                     CREATE VIEW orders AS SELECT * FROM purchases;";
    assert_eq!(found(SETUP, with_view, true), vec![]);
    // A view old code cannot write through does not keep it working.
    let aggregate = "ALTER TABLE orders RENAME TO purchases;\n\
                     CREATE VIEW orders AS SELECT user_id, sum(total) AS total FROM purchases GROUP BY user_id;";
    assert_eq!(found(SETUP, aggregate, true), vec![(1, "rename-table")]);
    // Row-level security: the view must run with the caller's rights.
    let rls = format!("{SETUP}ALTER TABLE orders ENABLE ROW LEVEL SECURITY;\n");
    assert_eq!(found(&rls, with_view, true), vec![(2, "view-bypasses-rls")]);
    let invoker = "ALTER TABLE orders RENAME TO purchases;\n\
                   CREATE VIEW orders WITH (security_invoker = true) AS SELECT * FROM purchases;";
    assert_eq!(found(&rls, invoker, true), vec![]);
    let old = lint_full(&rls, invoker, true, 14);
    assert!(
        old.iter()
            .any(|f| f.rule == Rule::ViewBypassesRls && f.message.contains("15")),
        "security_invoker needs PostgreSQL 15: {old:?}"
    );
}

#[test]
fn rename_schema_has_its_own_rule() {
    let setup =
        format!("{SETUP}CREATE SCHEMA reporting;\nCREATE TABLE reporting.daily (day date);\n");
    let sql = "ALTER SCHEMA reporting RENAME TO analytics;";
    assert_eq!(found(&setup, sql, true), vec![(1, "rename-schema")]);
    let fresh = "CREATE SCHEMA staging;\nALTER SCHEMA staging RENAME TO imports;";
    assert_eq!(found(&setup, fresh, true), vec![]);
}

#[test]
fn statements_inside_do_blocks_are_linted_on_their_own_lines() {
    let sql = "DO $$\nBEGIN\n  CREATE INDEX orders_note_idx ON orders (note);\nEND\n$$;";
    assert_eq!(found(SETUP, sql, true), vec![(3, "index-not-concurrent")]);
    // The idempotent-constraint idiom: safe with NOT VALID, flagged without.
    let guarded = |not_valid: &str| {
        format!(
            "DO $do$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'orders_user_fk') THEN\n    \
             ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id){not_valid};\n  \
             END IF;\nEND\n$do$;"
        )
    };
    assert_eq!(found(SETUP, &guarded(" NOT VALID"), true), vec![]);
    assert_eq!(
        found(SETUP, &guarded(""), true),
        vec![(4, "constraint-not-valid")]
    );
    // EXECUTE of a constant is the statement it spells.
    let execute =
        "SELECT 1;\nDO $$ BEGIN EXECUTE 'ALTER TABLE users ALTER COLUMN age TYPE bigint'; END $$;";
    assert_eq!(found(SETUP, execute, true), vec![(2, "column-type-change")]);
    // Built at run time: a warning says it was not checked.
    let dynamic = "DO $$\nDECLARE t text;\nBEGIN\n  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP\n    \
                   EXECUTE format('COMMENT ON TABLE %I IS %L', t, 'audited');\n  END LOOP;\nEND\n$$;";
    assert_eq!(found(SETUP, dynamic, true), vec![(5, "dynamic-sql")]);
    assert_eq!(
        Rule::DynamicSql.severity(),
        Severity::Warning,
        "unknown is not dangerous"
    );
    let python = "DO LANGUAGE plpython3u $$ plpy.execute('DROP TABLE users') $$;";
    assert_eq!(found(SETUP, python, true), vec![(1, "dynamic-sql")]);
    // Tables created inside the block are new, for the block and after it.
    let created = "DO $$ BEGIN CREATE TABLE imports (id bigint); CREATE INDEX imports_id ON imports (id); END $$;\n\
                   CREATE INDEX imports_id2 ON imports (id);";
    assert_eq!(found(SETUP, created, true), vec![]);
    // CONCURRENTLY never runs inside a DO block, transaction or not.
    let concurrent =
        "DO $$ BEGIN CREATE INDEX CONCURRENTLY orders_note_idx ON orders (note); END $$;";
    assert_eq!(
        found(SETUP, concurrent, false),
        vec![(1, "concurrently-in-transaction")]
    );
    // A body PostgreSQL's PL/pgSQL parser rejects.
    let broken = "DO $$ BEGIN CREATE INDEX; END $$;";
    assert_eq!(found(SETUP, broken, true), vec![(1, "syntax")]);
}

#[test]
fn bulk_dml_must_bound_an_indexed_key_on_both_sides() {
    for unbounded in [
        "UPDATE users SET status = 'active' WHERE status IS NULL;",
        "UPDATE users SET status = 'active' WHERE id > 500;",
        "DELETE FROM orders WHERE total < 10;",
        "DELETE FROM orders WHERE note BETWEEN 'a' AND 'b';",
        "UPDATE users SET status = 'x' WHERE id = 1 OR status IS NULL;",
        "DELETE FROM orders WHERE id NOT IN (1, 2);",
    ] {
        assert_eq!(
            found(SETUP, unbounded, false),
            vec![(1, "unbatched-backfill")],
            "{unbounded}"
        );
    }
    for bounded in [
        "UPDATE users SET status = 'active' WHERE id BETWEEN 1 AND 1000;",
        "UPDATE users SET status = 'active' WHERE id >= 1 AND id < 1001 AND status IS NULL;",
        "UPDATE users SET status = 'active' WHERE 1000 > id AND id >= 1;",
        "UPDATE users SET status = 'active' WHERE id = 7;",
        "DELETE FROM orders WHERE id IN (1, 2, 3);",
        "DELETE FROM orders WHERE id = ANY('{1,2}'::bigint[]);",
        "DELETE FROM orders WHERE user_id BETWEEN 1 AND 10;",
        "DELETE FROM orders WHERE id IN (SELECT id FROM orders WHERE total < 10 ORDER BY id LIMIT 500);",
        "DELETE FROM orders WHERE ctid IN (SELECT ctid FROM orders WHERE total < 10 LIMIT 500);",
        // Tables the migrations never saw: their indexes are unknown.
        "UPDATE legacy SET flag = true WHERE flag IS NULL;",
    ] {
        assert_eq!(found(SETUP, bounded, false), vec![], "{bounded}");
    }
    let f = lint_full(SETUP, "DELETE FROM orders WHERE total < 10;", false, 15);
    assert!(
        f[0].advice.contains("LIMIT"),
        "the batching recipe: {}",
        f[0].advice
    );
    // A table created in the migration has no concurrent writers.
    let fresh = "CREATE TABLE imports (id bigint, raw text);\nUPDATE imports SET raw = lower(raw) WHERE raw IS NOT NULL;";
    assert_eq!(found(SETUP, fresh, false), vec![]);
}

// --- security (issue #26) ---

const CONTEXT: &str = "CREATE FUNCTION app_current_tenant() RETURNS uuid LANGUAGE sql STABLE \
     AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;\n";

#[test]
fn a_new_tenant_table_needs_rls_enabled_forced_and_a_policy_in_its_migration() {
    let table =
        "CREATE TABLE invoices (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, total numeric);\n";
    let enable = "ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;\n";
    let force = "ALTER TABLE invoices FORCE ROW LEVEL SECURITY;\n";
    let policy = "CREATE POLICY tenant_isolation ON invoices \
                  USING (tenant_id = (SELECT app_current_tenant())) \
                  WITH CHECK (tenant_id = (SELECT app_current_tenant()));\n";
    let setup = format!("{SETUP}{CONTEXT}");
    // Each of the three missing is an error, reported at the CREATE TABLE.
    for (sql, missing) in [
        (
            table.to_owned(),
            "ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY, a CREATE POLICY",
        ),
        (
            format!("{table}{enable}{policy}"),
            "FORCE ROW LEVEL SECURITY",
        ),
        (
            format!("{table}{force}{policy}"),
            "ENABLE ROW LEVEL SECURITY",
        ),
        (format!("{table}{enable}{force}"), "a CREATE POLICY"),
    ] {
        let findings = lint_full(&setup, &sql, true, 15);
        let f: Vec<_> = findings
            .iter()
            .filter(|f| f.rule == Rule::TenantTableWithoutRls)
            .collect();
        assert_eq!(f.len(), 1, "{sql}: {findings:?}");
        assert_eq!(f[0].line, 1);
        assert!(f[0].message.contains("\"invoices\""), "{}", f[0].message);
        assert!(
            f[0].message.ends_with(&format!("(missing: {missing})")),
            "{}",
            f[0].message
        );
    }
    // All three, in any order after the table: clean.
    let guarded = format!("{table}{policy}{enable}{force}");
    assert_eq!(found(&setup, &guarded, true), vec![]);
    // One statement doing both.
    let both = format!(
        "{table}ALTER TABLE invoices ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;\n{policy}"
    );
    assert_eq!(found(&setup, &both, true), vec![]);
    // A policy dropped again leaves the table unguarded.
    let dropped = format!("{guarded}DROP POLICY tenant_isolation ON invoices;\n");
    assert_eq!(
        found(&setup, &dropped, true),
        vec![(1, "tenant-table-without-rls")]
    );
    // A table without tenant_id is not a tenant table.
    let plain = "CREATE TABLE currencies (code text PRIMARY KEY, tenant text);";
    assert_eq!(found(&setup, plain, true), vec![]);
    // The allow comment on the CREATE TABLE silences it.
    let allowed = format!("-- db-lint: allow tenant-table-without-rls\n{table}");
    assert_eq!(found(&setup, &allowed, true), vec![]);
}

#[test]
fn adding_tenant_id_to_an_existing_table_needs_its_policies_too() {
    let sql = "ALTER TABLE orders ADD COLUMN tenant_id uuid;";
    assert_eq!(
        found(SETUP, sql, true),
        vec![(1, "tenant-table-without-rls")]
    );
    let guarded = format!(
        "{sql}\nALTER TABLE orders ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;\n\
         CREATE POLICY tenant_isolation ON orders USING (tenant_id = (SELECT app_current_tenant()));"
    );
    assert_eq!(found(&format!("{SETUP}{CONTEXT}"), &guarded, true), vec![]);
    // A table already guarded by an earlier migration keeps its policies.
    let setup = format!(
        "{SETUP}{CONTEXT}ALTER TABLE orders ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;\n\
         CREATE POLICY owner_only ON orders USING (user_id = 1);\n"
    );
    assert_eq!(found(&setup, sql, true), vec![]);
}

#[test]
fn a_policy_that_reads_the_setting_per_row_is_a_warning() {
    let setup = format!(
        "{SETUP}{CONTEXT}-- db-lint: allow tenant-table-without-rls\n\
         CREATE TABLE invoices (id uuid PRIMARY KEY, tenant_id uuid NOT NULL);\n\
         ALTER TABLE invoices ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;\n"
    );
    for sql in [
        "CREATE POLICY p ON invoices USING (tenant_id = current_setting('app.tenant_id')::uuid);",
        "CREATE POLICY p ON invoices USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);",
        // A function of the migrations that reads it is the same thing.
        "CREATE POLICY p ON invoices USING (tenant_id = app_current_tenant());",
        "CREATE POLICY p ON invoices USING (true) WITH CHECK (tenant_id = app_current_tenant());",
    ] {
        assert_eq!(
            found(&setup, sql, true),
            vec![(1, "policy-setting-per-row")],
            "{sql}"
        );
        let f = lint_full(&setup, sql, true, 15);
        assert_eq!(f[0].severity(), Severity::Warning);
    }
    let altered = "CREATE POLICY p ON invoices USING (tenant_id = (SELECT app_current_tenant()));\n\
                   ALTER POLICY p ON invoices USING (tenant_id = app_current_tenant());";
    assert_eq!(
        found(&setup, altered, true),
        vec![(2, "policy-setting-per-row")]
    );
    for sql in [
        "CREATE POLICY p ON invoices USING (tenant_id = (SELECT app_current_tenant()));",
        "CREATE POLICY p ON invoices USING (tenant_id = (SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid));",
        // Other functions are not the setting.
        "CREATE POLICY p ON invoices USING (tenant_id = gen_random_uuid());",
    ] {
        assert_eq!(found(&setup, sql, true), vec![], "{sql}");
    }
}

#[test]
fn security_definer_without_a_search_path_is_an_error() {
    let definer = "CREATE FUNCTION tenant_count() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER \
                   AS $$ SELECT count(*) FROM orders $$;";
    assert_eq!(
        found(SETUP, definer, true),
        vec![(1, "security-definer-search-path")]
    );
    for sql in [
        "CREATE FUNCTION tenant_count() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER \
         SET search_path = pg_catalog, public AS $$ SELECT count(*) FROM public.orders $$;",
        "CREATE FUNCTION tenant_count() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER \
         SET search_path = '' AS $$ SELECT count(*) FROM public.orders $$;",
        "CREATE FUNCTION tenant_count() RETURNS bigint LANGUAGE sql STABLE SECURITY INVOKER \
         AS $$ SELECT count(*) FROM orders $$;",
        "CREATE FUNCTION tenant_count() RETURNS bigint LANGUAGE sql STABLE \
         AS $$ SELECT count(*) FROM orders $$;",
    ] {
        assert_eq!(found(SETUP, sql, true), vec![], "{sql}");
    }
    let setup = format!(
        "{SETUP}CREATE FUNCTION tenant_count() RETURNS bigint LANGUAGE sql AS $$ SELECT 1::bigint $$;\n"
    );
    assert_eq!(
        found(
            &setup,
            "ALTER FUNCTION tenant_count() SECURITY DEFINER;",
            true
        ),
        vec![(1, "security-definer-search-path")]
    );
    assert_eq!(
        found(
            &setup,
            "ALTER FUNCTION tenant_count() SECURITY DEFINER SET search_path = pg_catalog;",
            true
        ),
        vec![]
    );
}

#[test]
fn a_view_over_a_tenant_table_needs_security_invoker() {
    let setup = format!(
        "{SETUP}-- db-lint: allow tenant-table-without-rls\n\
         CREATE TABLE invoices (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, total numeric);\n"
    );
    let view = "CREATE VIEW big_invoices AS SELECT * FROM invoices WHERE total > 100;";
    assert_eq!(found(&setup, view, true), vec![(1, "view-bypasses-rls")]);
    // Through a join too.
    let join =
        "CREATE VIEW user_invoices AS SELECT u.name, i.total FROM users u JOIN invoices i ON true;";
    assert_eq!(found(&setup, join, true), vec![(1, "view-bypasses-rls")]);
    let invoker = "CREATE VIEW big_invoices WITH (security_invoker = true) AS SELECT * FROM invoices WHERE total > 100;";
    assert_eq!(found(&setup, invoker, true), vec![]);
    // A view over tables without tenants is nobody's concern.
    assert_eq!(
        found(
            &setup,
            "CREATE VIEW adults AS SELECT * FROM users WHERE age >= 18;",
            true
        ),
        vec![]
    );
}
