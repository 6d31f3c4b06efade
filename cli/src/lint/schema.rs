//! What the migrations before a statement have built: tables with their
//! columns, checks and indexes, and enum types. The linter replays every
//! earlier migration (and the statements of the current one before the
//! statement at hand) through [`Schema::apply`], so that it knows, for
//! example, that `SET NOT NULL` is backed by a validated
//! `CHECK (col IS NOT NULL)` or that `varchar(50)` to `text` is free.
//!
//! Only what the rules ask about is modelled. Anything the model does not
//! know is treated as unknown, and the rules stay conservative about it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableType, ConstrType, CreateStmt, ObjectType, PartitionCmd, RenameStmt,
};

use super::ast::{self, ColType, QName};
use super::volatility::Volatility;

/// A column as the model knows it.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its declared type.
    pub ty: ColType,
    /// Declared `NOT NULL` (or part of the primary key).
    pub not_null: bool,
    /// Has a `DEFAULT` (inserts that omit it get a value).
    pub has_default: bool,
}

/// What kind of relation a [`Table`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RelKind {
    /// A plain table (a partition too).
    #[default]
    Table,
    /// `PARTITION BY`: no rows of its own, its partitions hold them.
    Partitioned,
    /// `CREATE MATERIALIZED VIEW`.
    MaterializedView,
    /// `CREATE VIEW`.
    View,
}

/// A check constraint.
#[derive(Debug, Clone)]
pub struct Check {
    /// Its name (PostgreSQL's generated name when the SQL gave none).
    pub name: String,
    /// `Some(col)` when the check is `col IS NOT NULL`.
    pub not_null_of: Option<String>,
    /// The columns its expression reads.
    pub columns: Vec<String>,
    /// Validated (added without `NOT VALID`, or `VALIDATE`d since).
    pub validated: bool,
}

/// A table (or view, or materialized view) as the model knows it.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Table, partitioned table, view or materialized view.
    pub kind: RelKind,
    /// Columns by name.
    pub columns: BTreeMap<String, Column>,
    /// Check constraints.
    pub checks: Vec<Check>,
    /// The primary key constraint's name, if it has one.
    pub primary_key: Option<String>,
    /// The columns of the primary key and of each UNIQUE constraint (each
    /// has an index whose first column bounds a batch).
    pub unique_keys: Vec<Vec<String>>,
    /// A partitioned table's key columns (expressions left out).
    pub partition_key: Vec<String>,
    /// The partitioned table this one is a partition of.
    pub partition_of: Option<QName>,
    /// This partition is its parent's DEFAULT partition.
    pub default_partition: bool,
    /// `ENABLE ROW LEVEL SECURITY` was run on it.
    pub row_security: bool,
    /// `FORCE ROW LEVEL SECURITY` was run on it (the policies bind its owner too).
    pub force_row_security: bool,
    /// The names of its policies.
    pub policies: BTreeSet<String>,
}

impl Table {
    /// Holds tenant rows: it has a `tenant_id` column, or row-level security.
    pub fn is_tenant_table(&self) -> bool {
        self.row_security || self.columns.contains_key(TENANT_COLUMN)
    }

    /// Row-level security enabled and forced, with at least one policy.
    pub fn is_guarded(&self) -> bool {
        self.row_security && self.force_row_security && !self.policies.is_empty()
    }
}

/// The column that makes a table a tenant table (the project's naming rule).
pub const TENANT_COLUMN: &str = "tenant_id";

impl Table {
    /// A validated check proves `col` holds no NULL.
    pub fn has_validated_not_null_check(&self, col: &str) -> bool {
        self.checks
            .iter()
            .any(|c| c.validated && c.not_null_of.as_deref() == Some(col))
    }

    /// A validated check reads every one of `columns`: taken as proof that
    /// the rows fit a partition bound on them (PostgreSQL proves the
    /// implication; the model only sees which columns a check reads).
    pub fn has_validated_check_on(&self, columns: &[String]) -> bool {
        !columns.is_empty()
            && self
                .checks
                .iter()
                .any(|c| c.validated && columns.iter().all(|k| c.columns.contains(k)))
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
    /// Tables (and views) by qualified name.
    pub tables: HashMap<QName, Table>,
    /// Indexes by qualified name (an index lives in its table's schema).
    pub indexes: HashMap<QName, Index>,
    /// Enum types and their labels.
    pub enums: HashMap<QName, Vec<String>>,
    /// Functions the migrations created, by (lowercase name, argument
    /// count), with their declared volatility.
    pub functions: HashMap<(String, usize), Volatility>,
    /// The migrations' own functions whose body calls `current_setting`
    /// (lowercase names): a policy that calls one outside a sub-select
    /// reads the setting for every row.
    pub setting_readers: HashSet<String>,
}

impl Schema {
    /// The column `table.col`, if the model knows it.
    pub fn column(&self, table: &QName, col: &str) -> Option<&Column> {
        self.tables.get(table)?.columns.get(col)
    }

    /// Whether `table` is known to be partitioned.
    pub fn is_partitioned(&self, table: &QName) -> bool {
        self.tables
            .get(table)
            .is_some_and(|t| t.kind == RelKind::Partitioned)
    }

    /// The DEFAULT partition of `parent`, if the model knows one.
    pub fn default_partition_of(&self, parent: &QName) -> Option<&QName> {
        self.tables
            .iter()
            .find(|(_, t)| t.default_partition && t.partition_of.as_ref() == Some(parent))
            .map(|(name, _)| name)
    }

    /// The most volatile of the migrations' own functions called `name`
    /// (any argument count), if there is one.
    pub fn function_volatility(&self, name: &str) -> Option<Volatility> {
        self.functions
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| *v)
            .max()
    }

    /// Replays one parsed statement.
    pub fn apply(&mut self, node: &NodeEnum) {
        match node {
            NodeEnum::CreateStmt(c) => self.create_table(c),
            NodeEnum::CreateTableAsStmt(c) => {
                if let Some(rel) = c.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    let kind = if c.objtype == ObjectType::ObjectMatview as i32 {
                        RelKind::MaterializedView
                    } else {
                        RelKind::Table
                    };
                    self.tables
                        .entry(QName::of_range(rel))
                        .or_insert_with(|| Table {
                            kind,
                            ..Table::default()
                        });
                }
            }
            NodeEnum::SelectStmt(s) => {
                if let Some(rel) = s.into_clause.as_ref().and_then(|i| i.rel.as_ref()) {
                    self.tables.insert(QName::of_range(rel), Table::default());
                }
            }
            NodeEnum::ViewStmt(v) => {
                if let Some(rel) = v.view.as_ref() {
                    self.tables.insert(
                        QName::of_range(rel),
                        Table {
                            kind: RelKind::View,
                            ..Table::default()
                        },
                    );
                }
            }
            NodeEnum::CreateFunctionStmt(f) => {
                let name = ast::function_name(&f.funcname);
                let reads_setting = ast::function_body(f)
                    .is_some_and(|b| b.to_lowercase().contains("current_setting"))
                    || f.sql_body.as_deref().is_some_and(|b| {
                        ast::function_calls(b)
                            .iter()
                            .any(|c| c == "current_setting")
                    });
                if reads_setting {
                    self.setting_readers.insert(name.clone());
                }
                self.functions
                    .insert((name, f.parameters.len()), Volatility::declared(f));
            }
            NodeEnum::CreatePolicyStmt(p) => {
                if let Some(rel) = p.table.as_ref() {
                    self.tables
                        .entry(QName::of_range(rel))
                        .or_default()
                        .policies
                        .insert(p.policy_name.clone());
                }
            }
            NodeEnum::AlterTableStmt(alter) => {
                let Some(rel) = alter.relation.as_ref() else {
                    return;
                };
                // ALTER INDEX / ALTER SEQUENCE share the statement: no table there.
                if alter.objtype == ObjectType::ObjectIndex as i32
                    || alter.objtype == ObjectType::ObjectSequence as i32
                {
                    return;
                }
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
                        (Ok(AlterTableType::AtColumnDefault), def) => {
                            if let Some(c) = table.columns.get_mut(&cmd.name) {
                                c.has_default = def
                                    .is_some_and(|d| !matches!(d, NodeEnum::AConst(k) if k.isnull));
                            }
                        }
                        (Ok(AlterTableType::AtEnableRowSecurity), _) => table.row_security = true,
                        (Ok(AlterTableType::AtDisableRowSecurity), _) => table.row_security = false,
                        (Ok(AlterTableType::AtForceRowSecurity), _) => {
                            table.force_row_security = true
                        }
                        (Ok(AlterTableType::AtNoForceRowSecurity), _) => {
                            table.force_row_security = false
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
                for cmd in &alter.cmds {
                    if let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref()
                        && let Some(NodeEnum::PartitionCmd(p)) =
                            cmd.def.as_ref().and_then(|d| d.node.as_ref())
                    {
                        self.partition_cmd(&name, cmd.subtype, p);
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
            NodeEnum::DropStmt(drop) if drop.remove_type == ObjectType::ObjectPolicy as i32 => {
                // Each object is the table's name with the policy's last.
                for object in &drop.objects {
                    if let Some(NodeEnum::List(parts)) = object.node.as_ref()
                        && let Some((policy, table)) = parts.items.split_last()
                        && let Some(policy) = ast::sval(policy)
                        && let Some(t) = self.tables.get_mut(&QName::of_list(table))
                    {
                        t.policies.remove(policy);
                    }
                }
            }
            NodeEnum::DropStmt(drop) => {
                let kind = drop.remove_type;
                for name in drop.objects.iter().filter_map(ast::object_name) {
                    if kind == ObjectType::ObjectTable as i32
                        || kind == ObjectType::ObjectView as i32
                        || kind == ObjectType::ObjectMatview as i32
                    {
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
        } else if is_relation_rename(r) {
            if let Some(t) = self.tables.remove(&name) {
                let new = name.sibling(&r.newname);
                for index in self.indexes.values_mut().filter(|i| i.table == name) {
                    index.table = new.clone();
                }
                for child in self.tables.values_mut() {
                    if child.partition_of.as_ref() == Some(&name) {
                        child.partition_of = Some(new.clone());
                    }
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

impl Schema {
    fn create_table(&mut self, c: &CreateStmt) {
        let Some(rel) = c.relation.as_ref() else {
            return;
        };
        let name = QName::of_range(rel);
        if c.if_not_exists && self.tables.contains_key(&name) {
            return;
        }
        let mut table = Table::default();
        for elt in &c.table_elts {
            match elt.node.as_ref() {
                Some(NodeEnum::ColumnDef(col)) => add_column(&mut table, &name, col),
                Some(NodeEnum::Constraint(k)) => add_constraint(&mut table, &name, k),
                _ => {}
            }
        }
        if let Some(spec) = c.partspec.as_ref() {
            table.kind = RelKind::Partitioned;
            table.partition_key = spec
                .part_params
                .iter()
                .filter_map(|p| match p.node.as_ref()? {
                    NodeEnum::PartitionElem(e) if !e.name.is_empty() => Some(e.name.clone()),
                    _ => None,
                })
                .collect();
        }
        if let Some(bound) = c.partbound.as_ref() {
            table.partition_of = c.inh_relations.iter().find_map(|r| match r.node.as_ref()? {
                NodeEnum::RangeVar(r) => Some(QName::of_range(r)),
                _ => None,
            });
            table.default_partition = bound.is_default;
        }
        self.tables.insert(name, table);
    }

    /// `ATTACH PARTITION` / `DETACH PARTITION` on `parent`.
    fn partition_cmd(&mut self, parent: &QName, subtype: i32, p: &PartitionCmd) {
        let Some(child) = p.name.as_ref().map(QName::of_range) else {
            return;
        };
        let child = self.tables.entry(child).or_default();
        match AlterTableType::try_from(subtype) {
            Ok(AlterTableType::AtAttachPartition) => {
                child.partition_of = Some(parent.clone());
                child.default_partition = p.bound.as_ref().is_some_and(|b| b.is_default);
            }
            Ok(AlterTableType::AtDetachPartition) if !p.concurrent => {
                child.partition_of = None;
                child.default_partition = false;
            }
            Ok(AlterTableType::AtDetachPartitionFinalize) => {
                child.partition_of = None;
                child.default_partition = false;
            }
            _ => {}
        }
    }
}

/// `RENAME TO` of a table, view or materialized view (not of a column or index).
pub fn is_relation_rename(r: &RenameStmt) -> bool {
    [
        ObjectType::ObjectTable,
        ObjectType::ObjectView,
        ObjectType::ObjectMatview,
        ObjectType::ObjectForeignTable,
    ]
    .iter()
    .any(|k| r.rename_type == *k as i32)
}

fn add_column(table: &mut Table, table_name: &QName, col: &pg_query::protobuf::ColumnDef) {
    let ty = col.type_name.as_ref().map(ColType::of).unwrap_or(ColType {
        name: String::new(),
        mods: vec![],
        array: false,
    });
    let mut not_null = col.is_not_null;
    let mut has_default = col.raw_default.is_some();
    for k in ast::column_constraints(col) {
        if ast::is(k, ConstrType::ConstrNotnull) || ast::is(k, ConstrType::ConstrPrimary) {
            not_null = true;
        }
        // Serial and identity columns fill themselves, as a default does.
        if (ast::is(k, ConstrType::ConstrDefault)
            && !k.raw_expr.as_deref().is_some_and(ast::is_null_const))
            || ast::is(k, ConstrType::ConstrIdentity)
            || ast::is(k, ConstrType::ConstrGenerated)
        {
            has_default = true;
        }
        if ast::is(k, ConstrType::ConstrPrimary) {
            table.primary_key = Some(pk_name(table_name, &k.conname));
        }
        if ast::is(k, ConstrType::ConstrPrimary) || ast::is(k, ConstrType::ConstrUnique) {
            table.unique_keys.push(vec![col.colname.clone()]);
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
                columns: k
                    .raw_expr
                    .as_deref()
                    .map(ast::column_refs)
                    .unwrap_or_default(),
                validated: !k.skip_validation,
            });
        }
    }
    has_default |= ty.is_serial();
    table.columns.insert(
        col.colname.clone(),
        Column {
            ty,
            not_null,
            has_default,
        },
    );
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
            columns: expr.map(ast::column_refs).unwrap_or_default(),
            validated: !k.skip_validation,
        });
    } else if ast::is(k, ConstrType::ConstrPrimary) {
        table.primary_key = Some(pk_name(table_name, &k.conname));
        for key in ast::key_names(&k.keys) {
            if let Some(c) = table.columns.get_mut(&key) {
                c.not_null = true;
            }
        }
        table.unique_keys.push(ast::key_names(&k.keys));
    } else if ast::is(k, ConstrType::ConstrUnique) && k.indexname.is_empty() {
        table.unique_keys.push(ast::key_names(&k.keys));
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
