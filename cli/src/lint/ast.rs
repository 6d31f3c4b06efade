//! Small readers over pg_query's parse tree: schema-qualified names, column
//! types, and a generic walk (through the tree's serde form) for function
//! calls and string constants anywhere in an expression.

use std::fmt;

use pg_query::NodeEnum;
use pg_query::protobuf::{self, ConstrType, Node};

/// A schema-qualified name. Unqualified names are taken to be in `public`
/// (the default `search_path`), so `orders` and `public.orders` are one
/// table and `archive.orders` another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QName {
    /// The schema (`public` when the SQL named none).
    pub schema: String,
    /// The object's own name.
    pub name: String,
}

impl QName {
    /// `schema.name`, or `name` alone when `schema` is empty.
    pub fn new(schema: &str, name: &str) -> Self {
        let schema = if schema.is_empty() { "public" } else { schema };
        Self {
            schema: schema.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The table a `RangeVar` names.
    pub fn of_range(r: &protobuf::RangeVar) -> Self {
        Self::new(&r.schemaname, &r.relname)
    }

    /// The name an `[schema.]name` list of String nodes spells (DROP's objects, enum type names).
    pub fn of_list(items: &[Node]) -> Self {
        let parts: Vec<&str> = items.iter().filter_map(sval).collect();
        match parts.as_slice() {
            [.., schema, name] => Self::new(schema, name),
            [name] => Self::new("", name),
            [] => Self::new("", ""),
        }
    }

    /// The same name in the same schema: an index lives in its table's schema.
    pub fn sibling(&self, name: &str) -> Self {
        Self::new(&self.schema, name)
    }
}

impl fmt::Display for QName {
    /// Printed the way a reader wrote it: `public` is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.schema == "public" {
            write!(f, "\"{}\"", self.name)
        } else {
            write!(f, "\"{}\".\"{}\"", self.schema, self.name)
        }
    }
}

/// The text of a String node.
pub fn sval(node: &Node) -> Option<&str> {
    match node.node.as_ref()? {
        NodeEnum::String(s) => Some(&s.sval),
        _ => None,
    }
}

/// The name of a DROP object entry that is a plain `[schema.]name` list.
pub fn object_name(node: &Node) -> Option<QName> {
    match node.node.as_ref()? {
        NodeEnum::List(list) => Some(QName::of_list(&list.items)),
        NodeEnum::String(s) => Some(QName::new("", &s.sval)),
        _ => None,
    }
}

/// A column type reduced to what the rules compare: base name without
/// `pg_catalog`, type modifiers, and whether it is an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColType {
    /// `int4`, `varchar`, `numeric`, `timestamptz`, `serial`, a user type's name, ...
    pub name: String,
    /// `varchar(50)` -> `[50]`, `numeric(10,2)` -> `[10, 2]`.
    pub mods: Vec<i64>,
    /// `text[]`.
    pub array: bool,
}

impl ColType {
    /// Reads a `TypeName`.
    pub fn of(t: &protobuf::TypeName) -> Self {
        let name = t
            .names
            .iter()
            .filter_map(sval)
            .rfind(|n| *n != "pg_catalog")
            .unwrap_or_default()
            .to_owned();
        let mods = t
            .typmods
            .iter()
            .filter_map(|m| match m.node.as_ref()? {
                NodeEnum::AConst(c) => match c.val.as_ref()? {
                    protobuf::a_const::Val::Ival(i) => Some(i64::from(i.ival)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        Self {
            name,
            mods,
            array: !t.array_bounds.is_empty(),
        }
    }

    /// `varchar(50)`, `int4`, `text[]`: for messages.
    pub fn display(&self) -> String {
        let mods = if self.mods.is_empty() {
            String::new()
        } else {
            let m: Vec<String> = self.mods.iter().map(i64::to_string).collect();
            format!("({})", m.join(","))
        };
        // PostgreSQL's internal names, spelled the way migrations write them.
        let name = match self.name.as_str() {
            "int2" => "smallint",
            "int4" => "integer",
            "int8" => "bigint",
            "float4" => "real",
            "float8" => "double precision",
            "bool" => "boolean",
            "bpchar" => "char",
            other => other,
        };
        format!("{name}{mods}{}", if self.array { "[]" } else { "" })
    }

    /// `serial`, `bigserial`, `smallserial` and their aliases.
    pub fn is_serial(&self) -> bool {
        matches!(
            self.name.as_str(),
            "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2"
        )
    }

    /// 16- or 32-bit integers, serial or not.
    pub fn is_small_int(&self) -> bool {
        matches!(
            self.name.as_str(),
            "int2" | "int4" | "serial" | "serial4" | "smallserial" | "serial2"
        )
    }
}

/// The constraints attached to a column definition, by kind.
pub fn column_constraints(col: &protobuf::ColumnDef) -> Vec<&protobuf::Constraint> {
    col.constraints
        .iter()
        .filter_map(|c| match c.node.as_ref()? {
            NodeEnum::Constraint(k) => Some(k.as_ref()),
            _ => None,
        })
        .collect()
}

/// Whether `c` is of kind `t`.
pub fn is(c: &protobuf::Constraint, t: ConstrType) -> bool {
    c.contype == t as i32
}

/// The column names of a constraint's key list (`UNIQUE (a, b)`).
pub fn key_names(keys: &[Node]) -> Vec<String> {
    keys.iter().filter_map(sval).map(str::to_owned).collect()
}

/// A function's own name: the last part of `[schema.]name`, lowercase.
pub fn function_name(names: &[Node]) -> String {
    names
        .iter()
        .filter_map(sval)
        .next_back()
        .unwrap_or_default()
        .to_lowercase()
}

/// Every function called anywhere in `node` (last part of the name, lowercase).
pub fn function_calls(node: &Node) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(node) {
        walk(&value, &mut |key, v| {
            if key == "FuncCall"
                && let Some(names) = v.get("funcname").and_then(|n| n.as_array())
                && let Some(last) = names.iter().rev().find_map(json_sval)
            {
                out.push(last.to_lowercase());
            }
        });
    }
    out
}

/// Every function called in `node` outside a sub-select (last part of the
/// name, lowercase): the calls a policy makes for each row it checks (an
/// uncorrelated sub-select runs once per statement, as an InitPlan).
pub fn function_calls_outside_subselects(node: &Node) -> Vec<String> {
    fn visit(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    if k == "SubLink" {
                        continue;
                    }
                    if k == "FuncCall"
                        && let Some(names) = child.get("funcname").and_then(|n| n.as_array())
                        && let Some(last) = names.iter().rev().find_map(json_sval)
                    {
                        out.push(last.to_lowercase());
                    }
                    visit(child, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| visit(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(node) {
        visit(&value, &mut out);
    }
    out
}

/// The body of a `CREATE FUNCTION` (`AS '...'` or `$$...$$`), when it is text.
pub fn function_body(f: &protobuf::CreateFunctionStmt) -> Option<String> {
    f.options.iter().find_map(|o| match o.node.as_ref()? {
        NodeEnum::DefElem(d) if d.defname == "as" => match d.arg.as_deref()?.node.as_ref()? {
            NodeEnum::List(l) => Some(
                l.items
                    .iter()
                    .filter_map(sval)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            NodeEnum::String(s) => Some(s.sval.clone()),
            _ => None,
        },
        _ => None,
    })
}

/// Every string constant anywhere in `node` (`'active'`).
pub fn string_constants(node: &Node) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(node) {
        walk(&value, &mut |key, v| {
            if key == "AConst"
                && let Some(s) = v
                    .get("val")
                    .and_then(|v| v.get("Sval"))
                    .and_then(|s| s.get("sval"))
                    .and_then(|s| s.as_str())
            {
                out.push(s.to_owned());
            }
        });
    }
    out
}

fn json_sval(v: &serde_json::Value) -> Option<&str> {
    v.get("node")
        .and_then(|n| n.get("String"))
        .and_then(|s| s.get("sval"))
        .and_then(|s| s.as_str())
}

fn walk(v: &serde_json::Value, visit: &mut impl FnMut(&str, &serde_json::Value)) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                visit(k, child);
                walk(child, visit);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, visit)),
        _ => {}
    }
}

/// If `expr` is `col IS NOT NULL` (the check that lets SET NOT NULL skip its scan), the column.
pub fn is_not_null_test(expr: &Node) -> Option<String> {
    match expr.node.as_ref()? {
        NodeEnum::NullTest(t) if t.nulltesttype == protobuf::NullTestType::IsNotNull as i32 => {
            match t.arg.as_ref()?.node.as_ref()? {
                NodeEnum::ColumnRef(c) => c.fields.iter().rev().find_map(sval).map(str::to_owned),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Every table (or view) a statement or query names in a FROM, JOIN or
/// subquery: each `RangeVar` anywhere in `node`.
pub fn range_vars(node: &Node) -> Vec<QName> {
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(node) {
        walk(&value, &mut |key, v| {
            if key == "RangeVar"
                && let Some(name) = v.get("relname").and_then(|n| n.as_str())
            {
                let schema = v.get("schemaname").and_then(|n| n.as_str()).unwrap_or("");
                out.push(QName::new(schema, name));
            }
        });
    }
    out
}

/// The columns an expression refers to (for naming an unnamed check like PostgreSQL does).
pub fn column_refs(expr: &Node) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(value) = serde_json::to_value(expr) {
        walk(&value, &mut |key, v| {
            if key == "ColumnRef"
                && let Some(fields) = v.get("fields").and_then(|f| f.as_array())
                && let Some(last) = fields.iter().rev().find_map(json_sval)
                && !out.iter().any(|c: &String| c == last)
            {
                out.push(last.to_owned());
            }
        });
    }
    out
}

/// Whether a default expression is the NULL constant.
pub fn is_null_const(expr: &Node) -> bool {
    matches!(expr.node.as_ref(), Some(NodeEnum::AConst(c)) if c.isnull)
}
