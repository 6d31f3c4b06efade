//! Hazard family "compatibility": what breaks the code still deployed while
//! a migration runs and until the new release is everywhere. A NOT NULL
//! column whose default goes in the migration that added it (the old code's
//! INSERTs omit it); renames, with the safe recipe recognised (a table
//! renamed and a view with the old name over it, in the same migration,
//! keeps old code reading and writing: a one-table view is updatable); a
//! view over a table with row-level security that would bypass its
//! policies; renaming a schema.

use std::collections::HashSet;

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableCmd, AlterTableType, RenameStmt, ViewStmt};

use super::ast::{self, QName};
use super::{Pass, Rule};

/// A column this migration added to an existing table, as the migration
/// has left it so far.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AddedColumn {
    not_null: bool,
    has_default: bool,
}

/// A rename finding that a compatibility view later in the migration withdraws.
#[derive(Debug, Clone)]
pub(super) struct PendingRename {
    /// Its index in the pass's findings.
    finding: usize,
    old: QName,
    new: QName,
    /// A view with the old name over the new one followed.
    covered: bool,
}

impl Pass<'_> {
    /// ALTER TABLE subcommands on an existing table that change what an
    /// INSERT from the old code may omit.
    pub(super) fn check_compat(&mut self, table: &QName, cmd: &AlterTableCmd) {
        let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
        let key = (table.clone(), cmd.name.clone());
        match (AlterTableType::try_from(cmd.subtype), def) {
            (Ok(AlterTableType::AtAddColumn), Some(NodeEnum::ColumnDef(col))) => {
                let constraints = ast::column_constraints(col);
                let has = |t| constraints.iter().any(|c| ast::is(c, t));
                use pg_query::protobuf::ConstrType as C;
                let default = col.raw_default.as_deref().or_else(|| {
                    constraints
                        .iter()
                        .find(|c| ast::is(c, C::ConstrDefault))
                        .and_then(|c| c.raw_expr.as_deref())
                });
                self.added_columns.insert(
                    (table.clone(), col.colname.clone()),
                    AddedColumn {
                        not_null: col.is_not_null || has(C::ConstrNotnull) || has(C::ConstrPrimary),
                        has_default: default.is_some_and(|d| !ast::is_null_const(d))
                            || has(C::ConstrIdentity)
                            || has(C::ConstrGenerated),
                    },
                );
            }
            (Ok(AlterTableType::AtColumnDefault), def) => {
                let Some(added) = self.added_columns.get_mut(&key) else {
                    return;
                };
                let had = added.has_default;
                added.has_default =
                    def.is_some_and(|d| !matches!(d, NodeEnum::AConst(k) if k.isnull));
                if had && !added.has_default && added.not_null {
                    self.report(
                        Rule::BreaksOldInserts,
                        format!(
                            "DROP DEFAULT on {table}.\"{}\", added NOT NULL by this migration: INSERTs from the code still deployed omit it and fail",
                            cmd.name
                        ),
                    );
                }
            }
            (Ok(AlterTableType::AtSetNotNull), _) => {
                let Some(added) = self.added_columns.get_mut(&key) else {
                    return;
                };
                let was = added.not_null;
                added.not_null = true;
                if !was && !added.has_default {
                    self.report(
                        Rule::BreaksOldInserts,
                        format!(
                            "SET NOT NULL on {table}.\"{}\", added without a default by this migration: INSERTs from the code still deployed omit it and fail",
                            cmd.name
                        ),
                    );
                }
            }
            (Ok(AlterTableType::AtDropNotNull), _) => {
                if let Some(added) = self.added_columns.get_mut(&key) {
                    added.not_null = false;
                }
            }
            _ => {}
        }
    }

    /// Renames of schemas, tables, views and columns.
    pub(super) fn check_rename(&mut self, rename: &RenameStmt) {
        use pg_query::protobuf::ObjectType as O;
        if rename.rename_type == O::ObjectSchema as i32 {
            if !self.created_schemas.contains(&rename.subname) {
                self.report(
                    Rule::RenameSchema,
                    format!(
                        "RENAME SCHEMA \"{}\" to \"{}\"",
                        rename.subname, rename.newname
                    ),
                );
            }
            return;
        }
        let Some(rel) = rename.relation.as_ref() else {
            return;
        };
        let table = QName::of_range(rel);
        if !self.exists(&table) {
            return;
        }
        let kind = rename.rename_type;
        if kind == O::ObjectColumn as i32 {
            self.report(
                Rule::RenameColumn,
                format!(
                    "RENAME COLUMN \"{}\" of {table} to \"{}\"",
                    rename.subname, rename.newname
                ),
            );
            return;
        }
        let what = if kind == O::ObjectTable as i32 {
            "TABLE"
        } else if kind == O::ObjectView as i32 || kind == O::ObjectMatview as i32 {
            "VIEW"
        } else {
            return;
        };
        let before = self.findings.len();
        self.report(
            Rule::RenameTable,
            format!("RENAME {what} {table} to \"{}\"", rename.newname),
        );
        if self.findings.len() > before {
            self.pending_renames.push(PendingRename {
                finding: before,
                new: table.sibling(&rename.newname),
                old: table,
                covered: false,
            });
        }
    }

    /// `CREATE VIEW`: a compatibility view for a rename, and row-level security.
    pub(super) fn check_view(&mut self, v: &ViewStmt) {
        let Some(view) = v.view.as_ref().map(QName::of_range) else {
            return;
        };
        let Some(query) = v.query.as_deref() else {
            return;
        };
        let reads = ast::range_vars(query);
        if let Some(source) = updatable_source(query) {
            for rename in &mut self.pending_renames {
                if rename.old == view && rename.new == source {
                    rename.covered = true;
                }
            }
        }
        let invoker = v.options.iter().any(|o| match o.node.as_ref() {
            Some(NodeEnum::DefElem(d)) if d.defname == "security_invoker" => {
                d.arg.as_deref().is_none_or(is_true)
            }
            _ => false,
        });
        let guarded: Vec<String> = reads
            .iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .filter(|t| {
                self.schema
                    .tables
                    .get(t)
                    .is_some_and(|t| t.is_tenant_table())
            })
            .map(|t| t.to_string())
            .collect();
        if guarded.is_empty() {
            return;
        }
        let pg = self.options.pg_version;
        if !invoker {
            self.report(
                Rule::ViewBypassesRls,
                format!(
                    "view {view} reads tenant table {} without security_invoker: its callers bypass the row-level security policies",
                    guarded.join(", ")
                ),
            );
        } else if pg < 15 {
            self.report_with(
                Rule::ViewBypassesRls,
                format!(
                    "view {view} over {} asks for security_invoker, which needs PostgreSQL 15 (target {pg}): the view is refused",
                    guarded.join(", ")
                ),
                "Before PostgreSQL 15 a view always runs with its owner's rights and bypasses row-level security. Keep the old name another way (a set-returning SECURITY INVOKER function, or no rename), or target 15+.".into(),
            );
        }
    }

    /// Withdraws the rename findings a compatibility view covered.
    pub(super) fn withdraw_covered_renames(&mut self) {
        let mut covered: Vec<usize> = self
            .pending_renames
            .iter()
            .filter(|r| r.covered)
            .map(|r| r.finding)
            .collect();
        covered.sort_unstable();
        for i in covered.into_iter().rev() {
            self.findings.remove(i);
        }
    }
}

/// The one table a view selects from, when old code could write through it
/// as through the table (PostgreSQL's automatically updatable views: one
/// FROM item, plain columns, no aggregate, DISTINCT, GROUP BY, LIMIT or set
/// operation).
fn updatable_source(query: &pg_query::protobuf::Node) -> Option<QName> {
    let NodeEnum::SelectStmt(s) = query.node.as_ref()? else {
        return None;
    };
    let plain = s.op == pg_query::protobuf::SetOperation::SetopNone as i32
        && s.distinct_clause.is_empty()
        && s.group_clause.is_empty()
        && s.having_clause.is_none()
        && s.limit_count.is_none()
        && s.limit_offset.is_none()
        && s.with_clause.is_none()
        && s.target_list.iter().all(|t| match t.node.as_ref() {
            Some(NodeEnum::ResTarget(r)) => {
                matches!(
                    r.val.as_deref().and_then(|v| v.node.as_ref()),
                    Some(NodeEnum::ColumnRef(_))
                )
            }
            _ => false,
        });
    match (plain, s.from_clause.as_slice()) {
        (true, [only]) => match only.node.as_ref()? {
            NodeEnum::RangeVar(r) => Some(QName::of_range(r)),
            _ => None,
        },
        _ => None,
    }
}

/// `true`, `on`, `1` as a reloption value.
fn is_true(value: &pg_query::protobuf::Node) -> bool {
    match value.node.as_ref() {
        Some(NodeEnum::String(s)) => {
            matches!(s.sval.to_ascii_lowercase().as_str(), "true" | "on" | "1")
        }
        Some(NodeEnum::Boolean(b)) => b.boolval,
        Some(NodeEnum::Integer(i)) => i.ival != 0,
        _ => false,
    }
}
