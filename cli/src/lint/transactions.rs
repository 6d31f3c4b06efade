//! Hazard family "transactions": statements that cannot run in a
//! transaction block, transaction control inside a transactional migration,
//! strong locks taken without a `lock_timeout`, and migrations that only
//! `db migrate` can run (the diesel CLI sends a non-transactional
//! migration as one batch, an implicit transaction).

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType, TransactionStmtKind};

use super::ast::QName;
use super::{Pass, Rule};

/// `LOCK TABLE ... IN ACCESS EXCLUSIVE MODE` (pg_query's `LockMode`).
const ACCESS_EXCLUSIVE: i32 = 8;
/// SHARE and up block writes.
const SHARE: i32 = 5;

impl Pass<'_> {
    pub(super) fn check_transaction(&mut self, node: &NodeEnum) {
        if let NodeEnum::TransactionStmt(t) = node
            && self.in_transaction
        {
            let kind = TransactionStmtKind::try_from(t.kind).ok();
            let word = match kind {
                Some(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart) => {
                    Some("BEGIN")
                }
                Some(TransactionStmtKind::TransStmtCommit) => Some("COMMIT"),
                Some(TransactionStmtKind::TransStmtRollback) => Some("ROLLBACK"),
                Some(TransactionStmtKind::TransStmtPrepare) => Some("PREPARE TRANSACTION"),
                _ => None,
            };
            if let Some(word) = word {
                self.report(
                    Rule::TransactionControl,
                    format!("{word} in a migration that already runs in a transaction"),
                );
            }
        }
        if let Some(what) = cannot_run_in_transaction(node, self.options.pg_version) {
            if self.in_transaction {
                // CONCURRENTLY and ADD VALUE have rules (and messages) of their own.
                if !what.contains("CONCURRENTLY") && !what.contains("ADD VALUE") {
                    self.report(
                        Rule::NotInTransaction,
                        format!("{what} in a migration that runs in a transaction"),
                    );
                }
            } else if self.statement_count > 1 {
                self.report_diesel_batch(format!(
                    "{what} in a run_in_transaction = false migration of {} statements: `diesel migration run` fails on it",
                    self.statement_count
                ));
            }
        }
        // DROP INDEX locks the index's table, which only the schema model knows.
        let dropped_index_table = match node {
            NodeEnum::DropStmt(d)
                if !d.concurrent && d.remove_type == ObjectType::ObjectIndex as i32 =>
            {
                d.objects
                    .iter()
                    .filter_map(super::ast::object_name)
                    .find_map(|i| self.schema.indexes.get(&i).map(|i| i.table.clone()))
                    .map(|t| (t, "ACCESS EXCLUSIVE"))
            }
            _ => None,
        };
        if !self.lock_timeout_set
            && !self.lock_timeout_reported
            && let Some((table, lock)) = strong_lock(node).or(dropped_index_table)
            && self.exists(&table)
        {
            self.lock_timeout_reported = true;
            self.report(
                Rule::MissingLockTimeout,
                format!("{lock} lock on {table} taken without SET lock_timeout first"),
            );
        }
    }

    /// One diesel-CLI interop warning per migration.
    pub(super) fn report_diesel_batch(&mut self, message: String) {
        if !self.diesel_batch_reported {
            self.diesel_batch_reported = true;
            self.report(Rule::DieselCliBatch, message);
        }
    }
}

/// What in `node` PostgreSQL refuses inside a transaction block, if anything.
pub(super) fn cannot_run_in_transaction(node: &NodeEnum, pg_version: u32) -> Option<&'static str> {
    match node {
        NodeEnum::IndexStmt(i) if i.concurrent => Some("CREATE INDEX CONCURRENTLY"),
        NodeEnum::DropStmt(d) if d.concurrent => Some("DROP INDEX CONCURRENTLY"),
        NodeEnum::ReindexStmt(r) => {
            let concurrent = r.params.iter().any(|p| {
                matches!(p.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "concurrently")
            });
            if concurrent {
                Some("REINDEX CONCURRENTLY")
            } else if r.relation.is_none() && r.kind >= 3 {
                Some("REINDEX SCHEMA/DATABASE/SYSTEM")
            } else {
                None
            }
        }
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd => Some("VACUUM"),
        NodeEnum::CreatedbStmt(_) => Some("CREATE DATABASE"),
        NodeEnum::DropdbStmt(_) => Some("DROP DATABASE"),
        NodeEnum::AlterSystemStmt(_) => Some("ALTER SYSTEM"),
        NodeEnum::CreateTableSpaceStmt(_) => Some("CREATE TABLESPACE"),
        NodeEnum::DropTableSpaceStmt(_) => Some("DROP TABLESPACE"),
        NodeEnum::AlterEnumStmt(e) if e.old_val.is_empty() && pg_version < 12 => {
            Some("ALTER TYPE ... ADD VALUE (before PostgreSQL 12)")
        }
        NodeEnum::AlterTableStmt(a) if detaches_concurrently(a) => {
            Some("DETACH PARTITION CONCURRENTLY")
        }
        _ => None,
    }
}

fn detaches_concurrently(a: &pg_query::protobuf::AlterTableStmt) -> bool {
    a.cmds.iter().any(|c| match c.node.as_ref() {
        Some(NodeEnum::AlterTableCmd(cmd)) => {
            match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::PartitionCmd(p)) => p.concurrent,
                _ => false,
            }
        }
        None | Some(_) => false,
    })
}

/// ALTER TABLE subcommands that take less than ACCESS EXCLUSIVE.
fn weak_alter(subtype: i32) -> bool {
    matches!(
        AlterTableType::try_from(subtype),
        Ok(AlterTableType::AtValidateConstraint
            | AlterTableType::AtSetStatistics
            | AlterTableType::AtClusterOn
            | AlterTableType::AtDropCluster
            | AlterTableType::AtSetOptions
            | AlterTableType::AtResetOptions)
    )
}

/// The existing table whose ACCESS EXCLUSIVE lock `node` takes (held until
/// the migration's transaction ends).
pub(super) fn access_exclusive_target(node: &NodeEnum) -> Option<QName> {
    match node {
        NodeEnum::AlterTableStmt(a) => {
            let strong = a.cmds.iter().any(|c| match c.node.as_ref() {
                Some(NodeEnum::AlterTableCmd(cmd)) => !weak_alter(cmd.subtype),
                _ => false,
            });
            if strong {
                a.relation.as_ref().map(QName::of_range)
            } else {
                None
            }
        }
        NodeEnum::RenameStmt(r)
            if r.rename_type == ObjectType::ObjectTable as i32
                || r.rename_type == ObjectType::ObjectColumn as i32 =>
        {
            r.relation.as_ref().map(QName::of_range)
        }
        NodeEnum::LockStmt(l) if l.mode == ACCESS_EXCLUSIVE => {
            l.relations.iter().find_map(|r| match r.node.as_ref()? {
                NodeEnum::RangeVar(r) => Some(QName::of_range(r)),
                _ => None,
            })
        }
        NodeEnum::ClusterStmt(c) => c.relation.as_ref().map(QName::of_range),
        _ => None,
    }
}

/// A lock that blocks writes (or reads) on an existing table, for the lock-timeout warning.
fn strong_lock(node: &NodeEnum) -> Option<(QName, &'static str)> {
    if let Some(t) = access_exclusive_target(node) {
        return Some((t, "ACCESS EXCLUSIVE"));
    }
    match node {
        NodeEnum::IndexStmt(i) if !i.concurrent => {
            i.relation.as_ref().map(|r| (QName::of_range(r), "SHARE"))
        }
        NodeEnum::DropStmt(d) if !d.concurrent && d.remove_type == ObjectType::ObjectTable as i32 => {
            d.objects
                .iter()
                .find_map(super::ast::object_name)
                .map(|t| (t, "ACCESS EXCLUSIVE"))
        }
        NodeEnum::TruncateStmt(t) => t.relations.iter().find_map(|r| match r.node.as_ref()? {
            NodeEnum::RangeVar(r) => Some((QName::of_range(r), "ACCESS EXCLUSIVE")),
            _ => None,
        }),
        NodeEnum::LockStmt(l) if l.mode >= SHARE => l.relations.iter().find_map(|r| match r.node.as_ref()? {
            NodeEnum::RangeVar(r) => Some((QName::of_range(r), "write-blocking")),
            _ => None,
        }),
        NodeEnum::RuleStmt(r) => r
            .relation
            .as_ref()
            .map(|r| (QName::of_range(r), "ACCESS EXCLUSIVE")),
        NodeEnum::CreateTrigStmt(t) => t.relation.as_ref().map(|r| (QName::of_range(r), "SHARE ROW EXCLUSIVE")),
        NodeEnum::ReindexStmt(r) => r.relation.as_ref().map(|r| (QName::of_range(r), "SHARE")),
        NodeEnum::VacuumStmt(v) => v.rels.iter().find_map(|r| match r.node.as_ref()? {
            NodeEnum::VacuumRelation(vr) if v.options.iter().any(|o| matches!(o.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "full")) => {
                vr.relation.as_ref().map(|r| (QName::of_range(r), "ACCESS EXCLUSIVE"))
            }
            _ => None,
        }),
        _ => None,
    }
}
