//! What the migrations before a statement have built: tables with their
//! columns, checks and indexes, and enum types. The linter replays every
//! earlier migration (and the statements of the current one before the
//! statement at hand) through [`Schema::apply`], so that it knows, for
//! example, that `SET NOT NULL` is backed by a validated
//! `CHECK (col IS NOT NULL)` or that `varchar(50)` to `text` is free.
//!
//! Only what the rules ask about is modelled. Anything the model does not
//! know is treated as unknown, and the rules stay conservative about it.

use std::collections::{BTreeMap, HashMap};

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType, ObjectType, RenameStmt};

use super::ast::{self, ColType, QName};

/// A column as the model knows it.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its declared type.
    pub ty: ColType,
    /// Declared `NOT NULL` (or part of the primary key).
    pub not_null: bool,
}

/// A check constraint.
#[derive(Debug, Clone)]
pub struct Check {
    /// Its name (PostgreSQL's generated name when the SQL gave none).
    pub name: String,
    /// `Some(col)` when the check is `col IS NOT NULL`.
    pub not_null_of: Option<String>,
    /// Validated (added without `NOT VALID`, or `VALIDATE`d since).
    pub validated: bool,
}

/// A table as the model knows it.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Columns by name.
    pub columns: BTreeMap<String, Column>,
    /// Check constraints.
    pub checks: Vec<Check>,
    /// The primary key constraint's name, if it has one.
    pub primary_key: Option<String>,
}

impl Table {
    /// A validated check proves `col` holds no NULL.
    pub fn has_validated_not_null_check(&self, col: &str) -> bool {
        self.checks
            .iter()
            .any(|c| c.validated && c.not_null_of.as_deref() == Some(col))
    }

    /// The name of a not-yet-validated `CHECK (col IS NOT NULL)`, if any.
    pub fn unvalidated_not_null_check(&self, col: &str) -> Option<&str> {
        self.checks
            .iter()
            .find(|c| !c.validated && c.not_null_of.as_deref() == Some(col))
            .map(|c| c.name.as_str())
    }
}

/// An index as the model knows it.
#[derive(Debug, Clone)]
pub struct Index {
    /// The table it indexes.
    pub table: QName,
    /// Its plain key columns (expressions are left out).
    pub columns: Vec<String>,
}

/// The schema built by the migrations so far.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// Tables by qualified name.
    pub tables: HashMap<QName, Table>,
    /// Indexes by qualified name (an index lives in its table's schema).
    pub indexes: HashMap<QName, Index>,
    /// Enum types and their labels.
    pub enums: HashMap<QName, Vec<String>>,
}

impl Schema {
    /// The column `table.col`, if the model knows it.
    pub fn column(&self, table: &QName, col: &str) -> Option<&Column> {
        self.tables.get(table)?.columns.get(col)
    }

    /// Replays one parsed statement.
    pub fn apply(&mut self, node: &NodeEnum) {
        match node {
            NodeEnum::CreateStmt(c) => {
                let Some(rel) = c.relation.as_ref() else {
                    return;
                };
                let name = QName::of_range(rel);
                let mut table = Table::default();
                for elt in &c.table_elts {
                    match elt.node.as_ref() {
                        Some(NodeEnum::ColumnDef(col)) => add_column(&mut table, &name, col),
                        Some(NodeEnum::Constraint(k)) => add_constraint(&mut table, &name, k),
                        _ => {}
                    }
                }
                self.tables.insert(name, table);
            }
            NodeEnum::AlterTableStmt(alter) => {
                let Some(rel) = alter.relation.as_ref() else {
                    return;
                };
                let name = QName::of_range(rel);
                let table = self.tables.entry(name.clone()).or_default();
                for cmd in &alter.cmds {
                    let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref() else {
                        continue;
                    };
                    let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
                    match (AlterTableType::try_from(cmd.subtype), def) {
                        (Ok(AlterTableType::AtAddColumn), Some(NodeEnum::ColumnDef(col))) => {
                            add_column(table, &name, col)
                        }
                        (Ok(AlterTableType::AtAddConstraint), Some(NodeEnum::Constraint(k))) => {
                            add_constraint(table, &name, k)
                        }
                        (Ok(AlterTableType::AtDropColumn), _) => {
                            table.columns.remove(&cmd.name);
                        }
                        (Ok(AlterTableType::AtSetNotNull), _) => {
                            if let Some(c) = table.columns.get_mut(&cmd.name) {
                                c.not_null = true;
                            }
                        }
                        (Ok(AlterTableType::AtDropNotNull), _) => {
                            if let Some(c) = table.columns.get_mut(&cmd.name) {
                                c.not_null = false;
                            }
                        }
                        (Ok(AlterTableType::AtAlterColumnType), Some(NodeEnum::ColumnDef(col))) => {
                            if let (Some(c), Some(t)) =
                                (table.columns.get_mut(&cmd.name), col.type_name.as_ref())
                            {
                                c.ty = ColType::of(t);
                            }
                        }
                        (Ok(AlterTableType::AtValidateConstraint), _) => {
                            for c in table.checks.iter_mut().filter(|c| c.name == cmd.name) {
                                c.validated = true;
                            }
                        }
                        (Ok(AlterTableType::AtDropConstraint), _) => {
                            table.checks.retain(|c| c.name != cmd.name);
                            if table.primary_key.as_deref() == Some(cmd.name.as_str()) {
                                table.primary_key = None;
                            }
                        }
                        _ => {}
                    }
                }
            }
            NodeEnum::IndexStmt(idx) => {
                if let Some(rel) = idx.relation.as_ref() {
                    let table = QName::of_range(rel);
                    if !idx.idxname.is_empty() {
                        let columns = idx
                            .index_params
                            .iter()
                            .filter_map(|p| match p.node.as_ref()? {
                                NodeEnum::IndexElem(e) if !e.name.is_empty() => {
                                    Some(e.name.clone())
                                }
                                _ => None,
                            })
                            .collect();
                        self.indexes
                            .insert(table.sibling(&idx.idxname), Index { table, columns });
                    }
                }
            }
            NodeEnum::DropStmt(drop) => {
                let kind = drop.remove_type;
                for name in drop.objects.iter().filter_map(ast::object_name) {
                    if kind == ObjectType::ObjectTable as i32 {
                        self.tables.remove(&name);
                        self.indexes.retain(|_, i| i.table != name);
                    } else if kind == ObjectType::ObjectIndex as i32 {
                        self.indexes.remove(&name);
                    } else if kind == ObjectType::ObjectType as i32 {
                        self.enums.remove(&name);
                    }
                }
            }
            NodeEnum::RenameStmt(r) => self.rename(r),
            NodeEnum::CreateEnumStmt(e) => {
                let labels = e
                    .vals
                    .iter()
                    .filter_map(ast::sval)
                    .map(str::to_owned)
                    .collect();
                self.enums.insert(QName::of_list(&e.type_name), labels);
            }
            NodeEnum::AlterEnumStmt(e) => {
                let labels = self.enums.entry(QName::of_list(&e.type_name)).or_default();
                if !e.old_val.is_empty() {
                    for l in labels.iter_mut().filter(|l| **l == e.old_val) {
                        l.clone_from(&e.new_val);
                    }
                } else if !labels.contains(&e.new_val) {
                    labels.push(e.new_val.clone());
                }
            }
            _ => {}
        }
    }

    fn rename(&mut self, r: &RenameStmt) {
        let Some(rel) = r.relation.as_ref() else {
            return;
        };
        let name = QName::of_range(rel);
        if r.rename_type == ObjectType::ObjectColumn as i32 {
            if let Some(t) = self.tables.get_mut(&name)
                && let Some(c) = t.columns.remove(&r.subname)
            {
                t.columns.insert(r.newname.clone(), c);
            }
        } else if r.rename_type == ObjectType::ObjectTable as i32 {
            if let Some(t) = self.tables.remove(&name) {
                let new = name.sibling(&r.newname);
                for index in self.indexes.values_mut().filter(|i| i.table == name) {
                    index.table = new.clone();
                }
                self.tables.insert(new, t);
            }
        } else if r.rename_type == ObjectType::ObjectIndex as i32
            && let Some(t) = self.indexes.remove(&name)
        {
            self.indexes.insert(name.sibling(&r.newname), t);
        }
    }
}

fn add_column(table: &mut Table, table_name: &QName, col: &pg_query::protobuf::ColumnDef) {
    let ty = col.type_name.as_ref().map(ColType::of).unwrap_or(ColType {
        name: String::new(),
        mods: vec![],
        array: false,
    });
    let mut not_null = col.is_not_null;
    for k in ast::column_constraints(col) {
        if ast::is(k, ConstrType::ConstrNotnull) || ast::is(k, ConstrType::ConstrPrimary) {
            not_null = true;
        }
        if ast::is(k, ConstrType::ConstrPrimary) {
            table.primary_key = Some(pk_name(table_name, &k.conname));
        }
        if ast::is(k, ConstrType::ConstrCheck) {
            let name = if k.conname.is_empty() {
                format!("{}_{}_check", table_name.name, col.colname)
            } else {
                k.conname.clone()
            };
            table.checks.push(Check {
                name,
                not_null_of: k.raw_expr.as_deref().and_then(ast::is_not_null_test),
                validated: !k.skip_validation,
            });
        }
    }
    table
        .columns
        .insert(col.colname.clone(), Column { ty, not_null });
}

fn add_constraint(table: &mut Table, table_name: &QName, k: &pg_query::protobuf::Constraint) {
    if ast::is(k, ConstrType::ConstrCheck) {
        let expr = k.raw_expr.as_deref();
        let name = if k.conname.is_empty() {
            // PostgreSQL names an unnamed check after the table and its first column.
            match expr.map(ast::column_refs).unwrap_or_default().first() {
                Some(col) => format!("{}_{col}_check", table_name.name),
                None => format!("{}_check", table_name.name),
            }
        } else {
            k.conname.clone()
        };
        table.checks.push(Check {
            name,
            not_null_of: expr.and_then(ast::is_not_null_test),
            validated: !k.skip_validation,
        });
    } else if ast::is(k, ConstrType::ConstrPrimary) {
        table.primary_key = Some(pk_name(table_name, &k.conname));
        for key in ast::key_names(&k.keys) {
            if let Some(c) = table.columns.get_mut(&key) {
                c.not_null = true;
            }
        }
    }
}

/// A primary key's name: the given one, or PostgreSQL's `<table>_pkey`.
fn pk_name(table: &QName, given: &str) -> String {
    if given.is_empty() {
        format!("{}_pkey", table.name)
    } else {
        given.to_owned()
    }
}
