//! Hazard family "tables": the ALTER TABLE dispatcher, and whole-table
//! operations: dropping, renaming, truncating, rewriting (VACUUM FULL,
//! CLUSTER, SET TABLESPACE, ...), explicit locks, materialized view
//! refreshes and backfills run under a lock this migration holds.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableStmt, AlterTableType, ClusterStmt, ConstrType, CreateStmt, DropStmt, LockStmt,
    ObjectType, RangeVar, RefreshMatViewStmt, TruncateStmt, VacuumStmt,
};

use super::ast::{self, QName};
use super::{Pass, Rule};

/// `LOCK TABLE` modes from SHARE up block writes (pg_query's `LockMode`).
const SHARE_LOCK: i32 = 5;

impl Pass<'_> {
    pub(super) fn check_alter_table(&mut self, alter: &AlterTableStmt) {
        let Some(rel) = alter.relation.as_ref() else {
            return;
        };
        let table = QName::of_range(rel);
        let existing = self.exists(&table);
        let mut pk_name = self
            .schema
            .tables
            .get(&table)
            .and_then(|t| t.primary_key.clone());
        for cmd in &alter.cmds {
            let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref() else {
                continue;
            };
            let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
            let subtype = AlterTableType::try_from(cmd.subtype);
            if let (Ok(AlterTableType::AtAddColumn), Some(NodeEnum::ColumnDef(col))) =
                (subtype, def)
            {
                self.check_column_contradictions(&table, col);
                self.check_column_style(&table, col, &[]);
            }
            if let (Ok(AlterTableType::AtColumnDefault), Some(d)) = (subtype, cmd.def.as_deref())
                && ast::is_null_const(d)
                && self
                    .schema
                    .column(&table, &cmd.name)
                    .is_some_and(|c| c.not_null)
            {
                self.report(
                    Rule::Contradiction,
                    format!("SET DEFAULT NULL on NOT NULL column {table}.\"{}\": every insert that omits it fails", cmd.name),
                );
            }
            // The primary key as of this subcommand: an earlier one may drop it.
            if let (Ok(AlterTableType::AtDropConstraint), Some(pk)) = (subtype, &pk_name)
                && *pk == cmd.name
            {
                pk_name = None;
            }
            self.check_second_primary_key(&table, pk_name.is_some(), subtype.ok(), def);
            // ALTER INDEX ... ATTACH PARTITION attaches an index: catalog only.
            if let (Ok(AlterTableType::AtAttachPartition), Some(NodeEnum::PartitionCmd(p))) =
                (subtype, def)
                && alter.objtype != ObjectType::ObjectIndex as i32
            {
                self.check_attach(&table, p);
            }
            if !existing {
                continue;
            }
            self.check_compat(&table, cmd);
            match (subtype, def) {
                (Ok(AlterTableType::AtAddColumn), Some(NodeEnum::ColumnDef(col))) => {
                    self.check_add_column(&table, col);
                }
                (Ok(AlterTableType::AtSetNotNull), _) => self.check_set_not_null(&table, &cmd.name),
                (Ok(AlterTableType::AtAddConstraint), Some(NodeEnum::Constraint(c))) => {
                    self.check_add_constraint(&table, c);
                }
                (Ok(AlterTableType::AtValidateConstraint), _) => {
                    self.check_validate(&table, &cmd.name)
                }
                (Ok(AlterTableType::AtAlterColumnType), Some(NodeEnum::ColumnDef(col))) => {
                    self.check_column_type(&table, cmd, col);
                }
                (Ok(AlterTableType::AtDetachPartition), Some(NodeEnum::PartitionCmd(p))) => {
                    self.check_detach(&table, p);
                }
                (Ok(AlterTableType::AtDropColumn), _) => self.report(
                    Rule::DropColumn,
                    format!("DROP COLUMN \"{}\" of {table}", cmd.name),
                ),
                (
                    Ok(
                        kind @ (AlterTableType::AtSetTableSpace
                        | AlterTableType::AtSetLogged
                        | AlterTableType::AtSetUnLogged
                        | AlterTableType::AtSetAccessMethod),
                    ),
                    _,
                ) => {
                    let what = match kind {
                        AlterTableType::AtSetTableSpace => "SET TABLESPACE",
                        AlterTableType::AtSetLogged => "SET LOGGED",
                        AlterTableType::AtSetUnLogged => "SET UNLOGGED",
                        _ => "SET ACCESS METHOD",
                    };
                    self.report(Rule::TableRewrite, format!("ALTER TABLE {table} {what}"));
                }
                _ => {}
            }
        }
    }

    pub(super) fn check_create_table(&mut self, create: &CreateStmt) {
        let Some(rel) = create.relation.as_ref() else {
            return;
        };
        let table = QName::of_range(rel);
        self.check_create_partition(create);
        let pk_keys: Vec<String> = create
            .table_elts
            .iter()
            .filter_map(|e| match e.node.as_ref()? {
                NodeEnum::Constraint(c)
                    if ast::is(c, pg_query::protobuf::ConstrType::ConstrPrimary) =>
                {
                    Some(ast::key_names(&c.keys))
                }
                _ => None,
            })
            .flatten()
            .collect();
        for elt in &create.table_elts {
            if let Some(NodeEnum::ColumnDef(col)) = elt.node.as_ref() {
                self.check_column_contradictions(&table, col);
                self.check_column_style(&table, col, &pk_keys);
            }
        }
    }

    pub(super) fn check_drop_table(&mut self, drop: &DropStmt) {
        if drop.remove_type != ObjectType::ObjectTable as i32 {
            return;
        }
        for name in drop.objects.iter().filter_map(ast::object_name) {
            if self.exists(&name) {
                self.report(Rule::DropTable, format!("DROP TABLE {name}"));
            }
        }
    }

    pub(super) fn check_truncate(&mut self, t: &TruncateStmt) {
        for rel in t.relations.iter().filter_map(range_var) {
            let table = QName::of_range(rel);
            if self.exists(&table) {
                self.report(Rule::TruncateTable, format!("TRUNCATE {table}"));
            }
        }
    }

    pub(super) fn check_vacuum(&mut self, v: &VacuumStmt) {
        let full = v
            .options
            .iter()
            .any(|o| matches!(o.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "full"));
        if !v.is_vacuumcmd || !full {
            return;
        }
        let tables: Vec<String> = v
            .rels
            .iter()
            .filter_map(|r| match r.node.as_ref()? {
                NodeEnum::VacuumRelation(vr) => vr.relation.as_ref().map(QName::of_range),
                _ => None,
            })
            .filter(|t| self.exists(t))
            .map(|t| t.to_string())
            .collect();
        if v.rels.is_empty() || !tables.is_empty() {
            let target = if tables.is_empty() {
                "(every table)".to_owned()
            } else {
                tables.join(", ")
            };
            self.report(Rule::TableRewrite, format!("VACUUM FULL {target}"));
        }
    }

    pub(super) fn check_cluster(&mut self, c: &ClusterStmt) {
        let table = c.relation.as_ref().map(QName::of_range);
        if table.as_ref().is_none_or(|t| self.exists(t)) {
            let target =
                table.map_or_else(|| "(every clustered table)".to_owned(), |t| t.to_string());
            self.report(Rule::TableRewrite, format!("CLUSTER {target}"));
        }
    }

    pub(super) fn check_lock(&mut self, l: &LockStmt) {
        if l.mode < SHARE_LOCK {
            return;
        }
        for rel in l.relations.iter().filter_map(range_var) {
            let table = QName::of_range(rel);
            if self.exists(&table) {
                self.report(
                    Rule::LockTable,
                    format!("LOCK TABLE {table} in a mode that blocks writes"),
                );
            }
        }
    }

    pub(super) fn check_refresh(&mut self, r: &RefreshMatViewStmt) {
        let Some(view) = r.relation.as_ref().map(QName::of_range) else {
            return;
        };
        if !r.concurrent && self.exists(&view) {
            self.report(
                Rule::RefreshNotConcurrent,
                format!("REFRESH MATERIALIZED VIEW {view} without CONCURRENTLY"),
            );
        }
    }
}

impl Pass<'_> {
    /// A primary key added to a table that has one already fails.
    fn check_second_primary_key(
        &mut self,
        table: &QName,
        has_pk: bool,
        subtype: Option<AlterTableType>,
        def: Option<&NodeEnum>,
    ) {
        let adds_pk = match (subtype, def) {
            (Some(AlterTableType::AtAddConstraint), Some(NodeEnum::Constraint(c))) => {
                ast::is(c, ConstrType::ConstrPrimary)
            }
            (Some(AlterTableType::AtAddColumn), Some(NodeEnum::ColumnDef(col))) => {
                ast::column_constraints(col)
                    .iter()
                    .any(|c| ast::is(c, ConstrType::ConstrPrimary))
            }
            _ => false,
        };
        if adds_pk && has_pk {
            self.report(
                Rule::Contradiction,
                format!("{table} already has a primary key: a second one fails"),
            );
        }
    }

    /// `ALTER DOMAIN ... ADD CONSTRAINT` checks every column of that domain in every table.
    pub(super) fn check_alter_domain(&mut self, d: &pg_query::protobuf::AlterDomainStmt) {
        if d.subtype != "C" {
            return;
        }
        let Some(NodeEnum::Constraint(c)) = d.def.as_ref().and_then(|n| n.node.as_ref()) else {
            return;
        };
        let domain = QName::of_list(&d.type_name);
        if !c.skip_validation && !self.created_types.contains(&domain) {
            self.report_with(
                Rule::ConstraintWithoutNotValid,
                format!("ALTER DOMAIN {domain} ADD CONSTRAINT without NOT VALID"),
                "A domain constraint is checked against every column of the domain in every table, under locks that block writes. Add it NOT VALID, then ALTER DOMAIN ... VALIDATE CONSTRAINT in a later migration.".into(),
            );
        }
    }
}

fn range_var(node: &pg_query::protobuf::Node) -> Option<&RangeVar> {
    match node.node.as_ref()? {
        NodeEnum::RangeVar(r) => Some(r),
        _ => None,
    }
}
