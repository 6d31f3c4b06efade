//! Hazard family "indexes": building, dropping and rebuilding indexes, and
//! the constraints that build one (UNIQUE, PRIMARY KEY, EXCLUDE).

use pg_query::NodeEnum;
use pg_query::protobuf::{ConstrType, Constraint, DropStmt, IndexStmt, ObjectType, ReindexStmt};

use super::ast::{self, QName};
use super::{Pass, Rule};

impl Pass<'_> {
    pub(super) fn check_create_index(&mut self, idx: &IndexStmt) {
        let Some(rel) = idx.relation.as_ref() else {
            return;
        };
        let table = QName::of_range(rel);
        if self.check_partitioned_index(&table, idx) {
            return;
        }
        let name = if idx.idxname.is_empty() {
            "(unnamed)".to_owned()
        } else {
            format!("\"{}\"", idx.idxname)
        };
        if idx.concurrent && self.in_transaction {
            self.report(
                Rule::ConcurrentlyInTransaction,
                format!("CREATE INDEX CONCURRENTLY {name} on {table} in a migration that runs in a transaction"),
            );
        }
        if !idx.concurrent && self.exists(&table) {
            let existing = self.existing(&table);
            self.report(
                Rule::IndexNotConcurrent,
                format!("CREATE INDEX {name} on {existing} without CONCURRENTLY"),
            );
        }
    }

    pub(super) fn check_drop_index(&mut self, drop: &DropStmt) {
        if drop.remove_type != ObjectType::ObjectIndex as i32 {
            return;
        }
        for name in drop.objects.iter().filter_map(ast::object_name) {
            if drop.concurrent && self.in_transaction {
                self.report(
                    Rule::ConcurrentlyInTransaction,
                    format!(
                        "DROP INDEX CONCURRENTLY {name} in a migration that runs in a transaction"
                    ),
                );
            }
            if drop.concurrent || self.created_indexes.contains(&name) {
                continue;
            }
            let table = self.schema.indexes.get(&name).map(|i| i.table.clone());
            if table.as_ref().is_some_and(|t| !self.exists(t)) {
                continue;
            }
            let on = table.map(|t| format!(" on {t}")).unwrap_or_default();
            self.report(
                Rule::DropIndexNotConcurrent,
                format!("DROP INDEX {name}{on} without CONCURRENTLY"),
            );
        }
    }

    pub(super) fn check_reindex(&mut self, r: &ReindexStmt) {
        let concurrent = r.params.iter().any(|p| {
            matches!(p.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "concurrently")
        });
        let target = match r.relation.as_ref() {
            Some(rel) => QName::of_range(rel).to_string(),
            None => format!("\"{}\"", r.name),
        };
        if concurrent && self.in_transaction {
            self.report(
                Rule::ConcurrentlyInTransaction,
                format!("REINDEX CONCURRENTLY {target} in a migration that runs in a transaction"),
            );
        }
        if !concurrent {
            if let Some(rel) = r.relation.as_ref() {
                let name = QName::of_range(rel);
                if self.created_indexes.contains(&name) || !self.exists(&name) {
                    return;
                }
            }
            self.report(
                Rule::ReindexNotConcurrent,
                format!("REINDEX {target} without CONCURRENTLY"),
            );
        }
    }

    /// `ADD CONSTRAINT ... UNIQUE | PRIMARY KEY | EXCLUDE` on an existing table.
    pub(super) fn check_index_constraint(&mut self, table: &QName, c: &Constraint) {
        let name = if c.conname.is_empty() {
            String::new()
        } else {
            format!(" \"{}\"", c.conname)
        };
        if ast::is(c, ConstrType::ConstrUnique) && c.indexname.is_empty() {
            self.report(
                Rule::AddUniqueConstraint,
                format!("ADD CONSTRAINT{name} UNIQUE on {table} builds its index under lock"),
            );
        } else if ast::is(c, ConstrType::ConstrPrimary) {
            if c.indexname.is_empty() {
                self.report(
                    Rule::AddPrimaryKey,
                    format!("ADD PRIMARY KEY{name} on {table} builds its index under lock"),
                );
                return;
            }
            // USING INDEX: only the NOT NULL of its columns can still scan.
            let index = table.sibling(&c.indexname);
            let columns = self
                .schema
                .indexes
                .get(&index)
                .map(|i| i.columns.clone())
                .unwrap_or_default();
            let nullable: Vec<String> = columns
                .into_iter()
                .filter(|col| {
                    let proven = self.schema.tables.get(table).is_some_and(|t| {
                        t.columns.get(col).is_some_and(|c| c.not_null)
                            || (self.options.pg_version >= 12
                                && t.has_validated_not_null_check(col))
                    });
                    !proven
                })
                .collect();
            if !nullable.is_empty() {
                self.report_with(
                    Rule::AddPrimaryKey,
                    format!(
                        "ADD PRIMARY KEY{name} USING INDEX \"{}\" on {table}: column(s) {} may hold NULL, so it scans the table to set NOT NULL",
                        c.indexname,
                        nullable.join(", ")
                    ),
                    "Adding a primary key sets NOT NULL on its columns, scanning the table under an ACCESS EXCLUSIVE lock. Make them NOT NULL first with the CHECK (col IS NOT NULL) NOT VALID / VALIDATE / SET NOT NULL recipe.".into(),
                );
            }
        } else if ast::is(c, ConstrType::ConstrExclusion) {
            let existing = self.existing(table);
            self.report(
                Rule::AddExclusionConstraint,
                format!("ADD CONSTRAINT{name} EXCLUDE on {existing}"),
            );
        }
    }
}
