//! Hazard family "security": row-level security on tenant tables (issue
//! #26). A table with a `tenant_id` column holds tenant rows, and a query
//! that forgets its tenant filter reads every tenant's rows unless the
//! table's policies stop it; so the migration that creates such a table (or
//! gives one a `tenant_id`) also enables and forces row-level security and
//! creates a policy. Policies read the request's context through
//! `current_setting`, which belongs in a sub-select (evaluated once per
//! statement, not per row). `SECURITY DEFINER` functions run as their owner,
//! who bypasses the policies, so they pin their `search_path`. (Views over
//! tenant tables are the "compat" family's `view-bypasses-rls`.)

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterFunctionStmt, AlterPolicyStmt, AlterTableType, CreateFunctionStmt, CreatePolicyStmt,
    CreateStmt, Node, VariableSetKind,
};

use super::ast::{self, QName};
use super::schema::TENANT_COLUMN;
use super::{Finding, Pass, Rule};

/// A table this migration made a tenant table, judged when the migration
/// ends (its policies may come in later statements).
pub(super) struct TenantTable {
    pub table: QName,
    /// The finding to report if the table is still unguarded at the end.
    pub finding: Finding,
}

impl Pass<'_> {
    /// `CREATE TABLE` with a `tenant_id` column.
    pub(super) fn note_created_tenant_table(&mut self, create: &CreateStmt) {
        let Some(rel) = create.relation.as_ref() else {
            return;
        };
        let has_tenant = create.table_elts.iter().any(|e| {
            matches!(e.node.as_ref(), Some(NodeEnum::ColumnDef(c)) if c.colname == TENANT_COLUMN)
        });
        if has_tenant {
            let table = QName::of_range(rel);
            let message = format!(
                "table {table} has a {TENANT_COLUMN} column, and this migration does not enable \
                 and force row-level security on it with a policy"
            );
            self.note_tenant_table(table, message);
        }
    }

    /// `ALTER TABLE ... ADD COLUMN tenant_id` on a table without policies.
    pub(super) fn note_added_tenant_column(&mut self, table: &QName, column: &str) {
        if column != TENANT_COLUMN
            || self
                .schema
                .tables
                .get(table)
                .is_some_and(|t| t.is_guarded())
        {
            return;
        }
        let message = format!(
            "{TENANT_COLUMN} added to table {table}, and this migration does not enable and \
             force row-level security on it with a policy"
        );
        self.note_tenant_table(table.clone(), message);
    }

    fn note_tenant_table(&mut self, table: QName, message: String) {
        let rule = Rule::TenantTableWithoutRls;
        if self.allowed.contains(rule.name()) {
            return;
        }
        let finding = Finding {
            file: self.file.into(),
            line: self.line,
            rule,
            message,
            advice: rule.advice().into(),
            version: String::new(),
        };
        self.tenant_tables.push(TenantTable { table, finding });
    }

    /// At the end of the migration: the tenant tables it made that are not
    /// guarded (enabled, forced, a policy), under their final name.
    pub(super) fn finish_tenant_tables(&mut self) {
        for noted in std::mem::take(&mut self.tenant_tables) {
            let table = self.schema.tables.get(&noted.table);
            // Dropped again (or renamed: the rename is followed by the
            // table's own statements under the new name, judged there).
            let Some(table) = table else { continue };
            if !table.is_guarded() {
                let mut missing = Vec::new();
                if !table.row_security {
                    missing.push("ENABLE ROW LEVEL SECURITY");
                }
                if !table.force_row_security {
                    missing.push("FORCE ROW LEVEL SECURITY");
                }
                if table.policies.is_empty() {
                    missing.push("a CREATE POLICY");
                }
                let mut finding = noted.finding;
                finding.message = format!("{} (missing: {})", finding.message, missing.join(", "));
                self.findings.push(finding);
            }
        }
    }

    /// `CREATE POLICY` / `ALTER POLICY`: the context read once per statement.
    pub(super) fn check_create_policy(&mut self, p: &CreatePolicyStmt) {
        self.check_policy_expressions(
            &p.policy_name,
            p.table.as_ref(),
            [p.qual.as_deref(), p.with_check.as_deref()],
        );
    }

    pub(super) fn check_alter_policy(&mut self, p: &AlterPolicyStmt) {
        self.check_policy_expressions(
            &p.policy_name,
            p.table.as_ref(),
            [p.qual.as_deref(), p.with_check.as_deref()],
        );
    }

    fn check_policy_expressions(
        &mut self,
        policy: &str,
        table: Option<&pg_query::protobuf::RangeVar>,
        exprs: [Option<&Node>; 2],
    ) {
        let table = table.map(QName::of_range);
        let mut per_row: Vec<String> = exprs
            .into_iter()
            .flatten()
            .flat_map(ast::function_calls_outside_subselects)
            .filter(|f| f == "current_setting" || self.schema.setting_readers.contains(f))
            .collect();
        per_row.dedup();
        if per_row.is_empty() {
            return;
        }
        let on = table.map(|t| format!(" on {t}")).unwrap_or_default();
        self.report(
            Rule::PolicySettingPerRow,
            format!(
                "policy {policy}{on} calls {}() outside a sub-select: the setting is read for \
                 every row the policy checks",
                per_row.join("(), ")
            ),
        );
    }

    /// `CREATE FUNCTION ... SECURITY DEFINER` without `SET search_path`.
    pub(super) fn check_create_function(&mut self, f: &CreateFunctionStmt) {
        if is_definer(&f.options) && !sets_search_path(&f.options) {
            let name = ast::function_name(&f.funcname);
            self.report(
                Rule::SecurityDefinerSearchPath,
                format!("function {name} is SECURITY DEFINER and does not SET search_path"),
            );
        }
    }

    /// `ALTER FUNCTION ... SECURITY DEFINER` without `SET search_path` in
    /// the same statement (lint does not track what an earlier one set).
    pub(super) fn check_alter_function(&mut self, f: &AlterFunctionStmt) {
        if is_definer(&f.actions) && !sets_search_path(&f.actions) {
            let name = f
                .func
                .as_ref()
                .map(|o| ast::function_name(&o.objname))
                .unwrap_or_default();
            self.report(
                Rule::SecurityDefinerSearchPath,
                format!("function {name} is made SECURITY DEFINER without SET search_path"),
            );
        }
    }

    /// Whether an `ALTER TABLE` command of `alter` adds the tenant column.
    pub(super) fn note_alter_table_tenant(&mut self, alter: &pg_query::protobuf::AlterTableStmt) {
        let Some(rel) = alter.relation.as_ref() else {
            return;
        };
        let table = QName::of_range(rel);
        for cmd in &alter.cmds {
            if let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref()
                && AlterTableType::try_from(cmd.subtype) == Ok(AlterTableType::AtAddColumn)
                && let Some(NodeEnum::ColumnDef(col)) =
                    cmd.def.as_ref().and_then(|d| d.node.as_ref())
            {
                self.note_added_tenant_column(&table, &col.colname);
            }
        }
    }
}

/// `SECURITY DEFINER` among a function's options.
fn is_definer(options: &[Node]) -> bool {
    options.iter().any(|o| match o.node.as_ref() {
        Some(NodeEnum::DefElem(d)) if d.defname == "security" => {
            matches!(d.arg.as_deref().and_then(|a| a.node.as_ref()), Some(NodeEnum::Boolean(b)) if b.boolval)
                || matches!(d.arg.as_deref().and_then(|a| a.node.as_ref()), Some(NodeEnum::Integer(i)) if i.ival != 0)
        }
        _ => false,
    })
}

/// `SET search_path ...` among a function's options.
fn sets_search_path(options: &[Node]) -> bool {
    options.iter().any(|o| match o.node.as_ref() {
        Some(NodeEnum::DefElem(d)) if d.defname == "set" => matches!(
            d.arg.as_deref().and_then(|a| a.node.as_ref()),
            Some(NodeEnum::VariableSetStmt(v))
                if v.name == "search_path" && v.kind != VariableSetKind::VarReset as i32
        ),
        _ => false,
    })
}
