//! `db lint`: a migration safety linter that knows PostgreSQL's locks.
//!
//! SQL is parsed with libpg_query (PostgreSQL's own grammar, through the
//! `pg_query` crate), never with regular expressions. Migrations are read in
//! version order and replayed into a [`schema::Schema`], so each statement is
//! judged against the schema the earlier migrations built (a validated
//! `CHECK (col IS NOT NULL)`, a column's old type, which table an index
//! belongs to). Objects created in the same migration are exempt from the
//! lock rules: nobody else can be using them yet.
//!
//! Each finding names the file, the line, the rule and the object, and says
//! what to do instead. A finding is silenced by a comment naming its rule in
//! or just before the statement (`-- db-lint: allow drop-column`) in a
//! migration that has not landed yet, or by an entry of the allow-list file
//! ([`allow`]) for one that has (a landed migration is never edited: its
//! checksum would change).
//!
//! The rules live in one file per hazard family: `indexes`, `columns`,
//! `constraints`, `tables`, `partitions`, `compat`, `enums`, `transactions`,
//! `style`, `dynamic` (DO blocks), `bulk` (UPDATE/DELETE batches), `security`
//! (row-level security on tenant tables, definer functions).

pub mod allow;
mod ast;
mod bulk;
mod columns;
mod compat;
mod constraints;
mod dynamic;
mod enums;
mod indexes;
pub mod output;
mod partitions;
mod rules;
mod schema;
mod security;
mod style;
mod syntax;
mod tables;
mod transactions;
mod volatility;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use pg_query::NodeEnum;

pub use ast::QName;
pub use rules::{Rule, Severity};
pub use schema::Schema;

use database::migrate::{Migration, MigrationSet};

/// What the linter assumes about the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The PostgreSQL major version the migrations will run on (default 15).
    pub pg_version: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self { pg_version: 15 }
    }
}

/// One problem at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `migrations/<folder>/up.sql`, relative to the migrations folder's parent.
    pub file: String,
    /// 1-based line of the statement.
    pub line: usize,
    /// The rule.
    pub rule: Rule,
    /// What exactly was found, naming the object.
    pub message: String,
    /// The lock taken and the safe alternative, fitted to the case.
    pub advice: String,
    /// The migration's version (`20261121100000`), the allow-list's key.
    pub version: String,
}

impl Finding {
    /// The rule's level.
    pub fn severity(&self) -> Severity {
        self.rule.severity()
    }
}

/// Lints every migration of `set` in version order; `dir_label` prefixes the file names.
pub fn lint_set(set: &MigrationSet, dir_label: &str, options: &Options) -> Vec<Finding> {
    let mut schema = Schema::default();
    set.iter()
        .flat_map(|m| lint_migration(m, dir_label, &mut schema, options))
        .collect()
}

/// Lints the migrations folder at `dir` (labelled with the folder's own name).
pub fn lint_dir(dir: &Path, options: &Options) -> database::Result<Vec<Finding>> {
    let set = MigrationSet::from_dir(dir)?;
    let label = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(lint_set(&set, &label, options))
}

/// Lints one migration against `schema` (what the earlier ones built), then
/// adds what it builds to `schema`.
pub fn lint_migration(
    m: &Migration,
    dir_label: &str,
    schema: &mut Schema,
    options: &Options,
) -> Vec<Finding> {
    let up_file = format!("{dir_label}/{}/up.sql", m.name);
    let mut findings = lint_up(&m.up_sql, m.run_in_transaction, &up_file, schema, options);
    let down = m.down_sql.as_deref().unwrap_or_default();
    let down_is_empty = database::migrate::split_statements(down).is_empty();
    // An intentionally irreversible migration says so in either file.
    let allowed = allowed_rules(&m.up_sql).contains(Rule::MissingDown.name())
        || allowed_rules(down).contains(Rule::MissingDown.name());
    if down_is_empty && !allowed {
        findings.push(Finding {
            file: format!("{dir_label}/{}/down.sql", m.name),
            line: 1,
            rule: Rule::MissingDown,
            message: "no down.sql, or it has no statement".into(),
            advice: Rule::MissingDown.advice().into(),
            version: String::new(),
        });
    }
    for f in &mut findings {
        f.version.clone_from(&m.version);
    }
    findings
}

/// Lints the text of an `up.sql` against `schema`, and applies it to `schema`.
pub fn lint_up(
    sql: &str,
    run_in_transaction: bool,
    file: &str,
    schema: &mut Schema,
    options: &Options,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    // PostgreSQL reads a byte order mark as part of the first word; name it,
    // then lint the rest as if it were not there (lines do not move).
    let sql = match sql.strip_prefix('\u{feff}') {
        Some(rest) => {
            findings.push(Finding {
                file: file.into(),
                line: 1,
                rule: Rule::Syntax,
                message: "the file begins with a UTF-8 byte order mark (BOM, U+FEFF): PostgreSQL \
                          takes it for part of the first word and rejects the statement"
                    .into(),
                advice: "Save the file as UTF-8 without a BOM (most editors call it \"UTF-8\", \
                         not \"UTF-8 with BOM\")."
                    .into(),
                version: String::new(),
            });
            rest
        }
        None => sql,
    };
    let parsed = match pg_query::parse(sql, 0) {
        Ok(p) => p,
        Err(e) => {
            findings.push(Finding {
                file: file.into(),
                line: line_of(sql, syntax::error_offset(sql)),
                rule: Rule::Syntax,
                message: e.to_string(),
                advice: Rule::Syntax.advice().into(),
                version: String::new(),
            });
            return findings;
        }
    };
    let stmts = &parsed.protobuf.stmts;
    let mut pass = Pass {
        options,
        in_transaction: run_in_transaction,
        statement_count: stmts.len(),
        schema,
        created_tables: HashSet::new(),
        created_types: HashSet::new(),
        created_indexes: HashSet::new(),
        locked_tables: HashSet::new(),
        added_not_valid: HashSet::new(),
        added_enum_values: Vec::new(),
        added_columns: HashMap::new(),
        pending_renames: Vec::new(),
        created_schemas: HashSet::new(),
        lock_timeout_set: false,
        utc_session: false,
        lock_timeout_reported: false,
        diesel_batch_reported: false,
        tenant_tables: Vec::new(),
        file,
        sql,
        line: 0,
        allowed: HashSet::new(),
        if_exists: false,
        findings,
    };
    let mut region_start = 0usize;
    for raw in stmts {
        let (start, end) = span(raw, sql);
        // The statement's comments: those above it, and one trailing on the
        // line where it ends (`DROP TABLE t; -- db-lint: allow drop-table`).
        let line_end = sql[end..].find('\n').map_or(sql.len(), |p| end + p);
        let region = &sql[region_start.min(start)..line_end];
        region_start = line_end;
        pass.line = line_of(sql, first_code_offset(sql, start));
        pass.allowed = allowed_rules(region);
        let Some(stmt) = raw.stmt.as_deref() else {
            continue;
        };
        let Some(node) = stmt.node.as_ref() else {
            continue;
        };
        pass.check(stmt, node);
        pass.after(node);
    }
    pass.withdraw_covered_renames();
    pass.finish_tenant_tables();
    pass.findings
}

/// One statement of a migration file, as `db lint --trace` runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Its first line of code in the file.
    pub line: usize,
    /// Its text, without the `;`.
    pub sql: String,
    /// PostgreSQL refuses it inside a transaction block (`CONCURRENTLY`, `VACUUM`, ...).
    pub refuses_transaction: bool,
    /// `BEGIN`, `COMMIT` or `ROLLBACK` (and their spellings): it changes
    /// whether the statements after it run in a transaction.
    pub control: Option<TransactionControl>,
}

/// What a transaction-control statement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionControl {
    /// `BEGIN` / `START TRANSACTION`.
    Begin,
    /// `COMMIT`, `ROLLBACK` (and `END`, `ABORT`): ends the transaction.
    End,
}

/// The statements of `sql` (an `up.sql`), or the parser's message, for
/// `--pg-version` `pg_version` (what refuses a transaction depends on it).
pub fn statements(sql: &str, pg_version: u32) -> Result<Vec<Statement>, String> {
    let sql = sql.strip_prefix('\u{feff}').unwrap_or(sql);
    let parsed = pg_query::parse(sql, 0)
        .map_err(|e| format!("line {}: {e}", line_of(sql, syntax::error_offset(sql))))?;
    let mut out = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_deref().and_then(|s| s.node.as_ref()) else {
            continue;
        };
        let (start, end) = span(raw, sql);
        let control = match node {
            NodeEnum::TransactionStmt(t) => {
                use pg_query::protobuf::TransactionStmtKind as K;
                match K::try_from(t.kind) {
                    Ok(K::TransStmtBegin | K::TransStmtStart) => Some(TransactionControl::Begin),
                    Ok(K::TransStmtCommit | K::TransStmtRollback) => Some(TransactionControl::End),
                    _ => None,
                }
            }
            _ => None,
        };
        out.push(Statement {
            line: line_of(sql, first_code_offset(sql, start)),
            sql: sql[start..end].trim().to_owned(),
            refuses_transaction: transactions::cannot_run_in_transaction(node, pg_version)
                .is_some(),
            control,
        });
    }
    Ok(out)
}

/// The state of one migration's pass: the schema before the statement at
/// hand, and what the migration's earlier statements did.
pub(crate) struct Pass<'a> {
    options: &'a Options,
    /// The migration runs in one transaction (diesel's default).
    in_transaction: bool,
    /// How many statements the file holds.
    statement_count: usize,
    /// The schema before the current statement.
    schema: &'a mut Schema,
    /// Relations created by this migration (before the current statement):
    /// tables, partitions, views, materialized views, under their current name.
    created_tables: HashSet<QName>,
    /// Types created by this migration.
    created_types: HashSet<QName>,
    /// Indexes created by this migration.
    created_indexes: HashSet<QName>,
    /// Existing tables this migration's transaction holds an ACCESS EXCLUSIVE lock on.
    locked_tables: HashSet<QName>,
    /// (table, constraint) added `NOT VALID` in this transaction.
    added_not_valid: HashSet<(QName, String)>,
    /// Enum labels added in this transaction.
    added_enum_values: Vec<String>,
    /// Columns this migration added to existing tables, by (table, column).
    added_columns: HashMap<(QName, String), compat::AddedColumn>,
    /// Rename findings a compatibility view may still withdraw.
    pending_renames: Vec<compat::PendingRename>,
    /// Schemas created by this migration.
    created_schemas: HashSet<String>,
    /// A `SET lock_timeout` ran before the current statement.
    lock_timeout_set: bool,
    /// A `SET TimeZone = 'UTC'` ran before the current statement (timestamp
    /// <-> timestamptz needs no rewrite then, PostgreSQL 12+).
    utc_session: bool,
    lock_timeout_reported: bool,
    diesel_batch_reported: bool,
    /// Tables this migration made tenant tables, judged at its end.
    tenant_tables: Vec<security::TenantTable>,
    file: &'a str,
    /// The text of the file (without a BOM).
    sql: &'a str,
    /// The current statement's first line.
    line: usize,
    /// Rules the current statement's comments allow.
    allowed: HashSet<String>,
    /// The current statement is `ALTER TABLE IF EXISTS`.
    if_exists: bool,
    findings: Vec<Finding>,
}

impl Pass<'_> {
    /// Reports `rule` at the current statement with the rule's own advice.
    fn report(&mut self, rule: Rule, message: String) {
        self.report_with(rule, message, rule.advice().to_owned());
    }

    /// Reports `rule` with advice fitted to the case.
    fn report_with(&mut self, rule: Rule, message: String, advice: String) {
        if !self.allowed.contains(rule.name()) {
            self.findings.push(Finding {
                file: self.file.into(),
                line: self.line,
                rule,
                message,
                advice,
                version: String::new(),
            });
        }
    }

    /// Whether `table` existed before this migration (the lock rules apply to it).
    fn exists(&self, table: &QName) -> bool {
        !self.created_tables.contains(table)
    }

    /// `existing table "t"` for messages, when the migrations created `t`;
    /// otherwise the message says that nothing created it (it may exist
    /// outside the migrations, or not at all under `IF EXISTS`).
    fn existing(&self, table: &QName) -> String {
        if self.schema.tables.contains_key(table) {
            format!("existing table {table}")
        } else if self.if_exists {
            format!("table {table}, if it exists (no earlier migration creates it)")
        } else {
            format!("table {table} (no earlier migration creates it)")
        }
    }

    fn check(&mut self, stmt: &pg_query::protobuf::Node, node: &NodeEnum) {
        self.if_exists = matches!(node, NodeEnum::AlterTableStmt(a) if a.missing_ok);
        self.check_transaction(node);
        self.check_enum_use(stmt);
        match node {
            NodeEnum::IndexStmt(idx) => self.check_create_index(idx),
            NodeEnum::DropStmt(drop) => {
                self.check_drop_index(drop);
                self.check_drop_table(drop);
            }
            NodeEnum::ReindexStmt(r) => self.check_reindex(r),
            NodeEnum::RenameStmt(r) => self.check_rename(r),
            NodeEnum::ViewStmt(v) => self.check_view(v),
            NodeEnum::DoStmt(d) => self.check_do(d),
            NodeEnum::AlterTableStmt(alter) => {
                self.check_alter_table(alter);
                self.note_alter_table_tenant(alter);
            }
            NodeEnum::CreateStmt(create) => {
                self.check_create_table(create);
                self.note_created_tenant_table(create);
            }
            NodeEnum::CreatePolicyStmt(p) => self.check_create_policy(p),
            NodeEnum::AlterPolicyStmt(p) => self.check_alter_policy(p),
            NodeEnum::CreateFunctionStmt(f) => self.check_create_function(f),
            NodeEnum::AlterFunctionStmt(f) => self.check_alter_function(f),
            NodeEnum::TruncateStmt(t) => self.check_truncate(t),
            NodeEnum::VacuumStmt(v) => self.check_vacuum(v),
            NodeEnum::ClusterStmt(c) => self.check_cluster(c),
            NodeEnum::LockStmt(l) => self.check_lock(l),
            NodeEnum::RefreshMatViewStmt(r) => self.check_refresh(r),
            NodeEnum::UpdateStmt(u) => {
                self.check_backfill(u.relation.as_ref(), "UPDATE", u.where_clause.as_deref())
            }
            NodeEnum::DeleteStmt(d) => {
                self.check_backfill(d.relation.as_ref(), "DELETE", d.where_clause.as_deref())
            }
            NodeEnum::AlterDomainStmt(d) => self.check_alter_domain(d),
            NodeEnum::AlterEnumStmt(e) => self.check_alter_enum(e),
            _ => {}
        }
    }

    /// Records what the statement built, for the statements after it.
    fn after(&mut self, node: &NodeEnum) {
        if let Some(created) = created_relation(node, self.schema) {
            self.created_tables.insert(created);
        }
        match node {
            NodeEnum::RenameStmt(r) if schema::is_relation_rename(r) => {
                if let Some(old) = r.relation.as_ref().map(QName::of_range)
                    && self.created_tables.contains(&old)
                {
                    self.created_tables.insert(old.sibling(&r.newname));
                }
            }
            NodeEnum::IndexStmt(i) => {
                if let Some(r) = i.relation.as_ref() {
                    self.created_indexes
                        .insert(QName::of_range(r).sibling(&i.idxname));
                }
            }
            NodeEnum::CreateEnumStmt(e) => {
                self.created_types.insert(QName::of_list(&e.type_name));
            }
            NodeEnum::CreateSchemaStmt(s) => {
                self.created_schemas.insert(s.schemaname.clone());
            }
            NodeEnum::CreateDomainStmt(d) => {
                self.created_types.insert(QName::of_list(&d.domainname));
            }
            NodeEnum::VariableSetStmt(v) if v.name == "lock_timeout" => {
                self.lock_timeout_set = true;
            }
            NodeEnum::VariableSetStmt(v) if v.name == "timezone" => {
                self.utc_session = v.args.iter().any(|a| {
                    let node = pg_query::protobuf::Node {
                        node: a.node.clone(),
                    };
                    ast::string_constants(&node).iter().any(|z| {
                        matches!(
                            z.to_ascii_lowercase().as_str(),
                            "utc"
                                | "etc/utc"
                                | "gmt"
                                | "etc/gmt"
                                | "zulu"
                                | "universal"
                                | "etc/universal"
                        )
                    })
                });
            }
            _ => {}
        }
        if self.in_transaction
            && let Some(table) = transactions::access_exclusive_target(node)
            && self.exists(&table)
        {
            self.locked_tables.insert(table);
        }
        self.schema.apply(node);
    }
}

/// The relation `node` creates (a table, partition, view, materialized
/// view, `CREATE TABLE AS`, `SELECT INTO`), judged before `schema` has
/// replayed it: `IF NOT EXISTS` on a relation that exists creates nothing.
fn created_relation(node: &NodeEnum, schema: &Schema) -> Option<QName> {
    let (rel, if_not_exists) = match node {
        NodeEnum::CreateStmt(c) => (c.relation.as_ref()?, c.if_not_exists),
        NodeEnum::CreateTableAsStmt(c) => (c.into.as_ref()?.rel.as_ref()?, c.if_not_exists),
        NodeEnum::SelectStmt(s) => (s.into_clause.as_ref()?.rel.as_ref()?, false),
        // OR REPLACE of a view that exists creates nothing either.
        NodeEnum::ViewStmt(v) => (v.view.as_ref()?, v.replace),
        NodeEnum::CreateForeignTableStmt(f) => {
            let base = f.base_stmt.as_ref()?;
            (base.relation.as_ref()?, base.if_not_exists)
        }
        _ => return None,
    };
    let name = QName::of_range(rel);
    (!(if_not_exists && schema.tables.contains_key(&name))).then_some(name)
}

/// The rules named by `db-lint: allow` comments in `text`.
fn allowed_rules(text: &str) -> HashSet<String> {
    let mut rules = HashSet::new();
    for line in text.lines() {
        let Some(comment) = line.split_once("--").map(|(_, c)| c) else {
            continue;
        };
        let Some((_, rest)) = comment.split_once("db-lint:") else {
            continue;
        };
        let Some(list) = rest.trim().strip_prefix("allow") else {
            continue;
        };
        rules.extend(
            list.split([',', ' '])
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
        );
    }
    rules
}

/// Where a parsed statement is in `sql`: (start, end) byte offsets (the
/// last statement's length is 0 when it runs to the end of the text).
fn span(raw: &pg_query::protobuf::RawStmt, sql: &str) -> (usize, usize) {
    let start = raw.stmt_location.max(0) as usize;
    let end = if raw.stmt_len > 0 {
        start + raw.stmt_len as usize
    } else {
        sql.len()
    };
    (start, end.min(sql.len()))
}

/// Skips whitespace and comments from `offset`: where the statement's code starts.
fn first_code_offset(sql: &str, mut offset: usize) -> usize {
    let bytes = sql.as_bytes();
    while offset < bytes.len() {
        if bytes[offset].is_ascii_whitespace() {
            offset += 1;
        } else if bytes[offset..].starts_with(b"--") {
            offset = sql[offset..]
                .find('\n')
                .map_or(bytes.len(), |p| offset + p + 1);
        } else if bytes[offset..].starts_with(b"/*") {
            offset = sql[offset..]
                .find("*/")
                .map_or(bytes.len(), |p| offset + p + 2);
        } else {
            break;
        }
    }
    offset
}

fn line_of(sql: &str, offset: usize) -> usize {
    sql.as_bytes()[..offset.min(sql.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_families;
