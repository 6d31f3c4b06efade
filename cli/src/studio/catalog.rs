//! What the studio knows about the database: tables, columns, keys,
//! indexes, foreign keys and enum labels, read once from the server's
//! catalog and refreshed when the home page is shown.
//!
//! Every table and column name the studio puts into SQL comes from here:
//! a name from a URL or a form is looked up in this catalog and refused
//! when it is not found, so no caller-supplied text ever becomes an
//! identifier. [`read`] is the one entry: PostgreSQL's catalog is read
//! here, SQLite's (`sqlite_schema` and the `pragma_*` functions) in
//! `super::sqlite`; both fill the same [`Catalog`].

use std::collections::BTreeMap;

use database::Conn;
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text};
use diesel_async::RunQueryDsl;

use super::stmt::{Dialect, Stmt, Value, blob_of};

/// Tables at or below this planner estimate are counted exactly on the home page.
pub const EXACT_COUNT_LIMIT: i64 = 100_000;

/// The domain of `table` (`database::DOMAINS`: its module's folder), or `other` (migration bookkeeping, tables a
/// developer added by hand).
pub fn domain_of(table: &str) -> &'static str {
    database::DOMAINS
        .iter()
        .find(|(_, tables)| tables.contains(&table))
        .map(|(d, _)| *d)
        .unwrap_or("other")
}

/// How a column's values are shown and edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Timestamp,
    Bool,
    Number,
    Enum,
    /// Bytes (`bytea`, SQLite `BLOB`): shown as a UUID when 16 bytes long
    /// on SQLite (how the crate stores ids there), else as `\x` hex.
    Bytes,
    Text,
}

/// One column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// The type as the server spells it (`format_type`), used in casts.
    pub type_name: String,
    pub kind: Kind,
    pub nullable: bool,
    /// The default expression, when there is one.
    pub default: Option<String>,
    /// The labels of an enum column, in their order.
    pub labels: Vec<String>,
    /// Generated or identity-always columns cannot be written.
    pub writable: bool,
}

/// A foreign key from `columns` of one table to `ref_columns` of `ref_table`.
#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub table: String,
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    /// `ON DELETE`: `a` no action, `r` restrict, `c` cascade, `n` set null, `d` set default.
    pub on_delete: String,
}

/// One table.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    /// The backend the table lives in (the SQL its statements are written in).
    pub dialect: Dialect,
    pub columns: Vec<Column>,
    /// The primary key's columns, in key order (empty: no primary key).
    pub primary_key: Vec<String>,
    /// Columns that lead some index: the ones a view may sort by.
    pub indexed: Vec<String>,
    /// Foreign keys of this table.
    pub references: Vec<ForeignKey>,
    /// Foreign keys of other tables (or this one) that point here.
    pub referenced_by: Vec<ForeignKey>,
    /// Row count: exact, or the planner's estimate.
    pub rows: RowCount,
}

/// A table's size as the home page shows it.
#[derive(Debug, Clone, Copy)]
pub enum RowCount {
    Exact(i64),
    Estimate(i64),
    /// More than this many (counted up to it: SQLite without `ANALYZE`
    /// statistics has no estimate, and a full count reads the whole table).
    MoreThan(i64),
}

impl Table {
    /// An empty statement on this table's backend.
    pub fn stmt(&self) -> Stmt {
        Stmt::new(self.dialect)
    }

    /// The column called `name`, if the catalog has one.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The value of column `name` in `row` (a row of all the table's
    /// columns, in order); `None` for NULL or a column the table lacks.
    pub fn value_in(&self, row: &[Option<String>], name: &str) -> Option<String> {
        let i = self.columns.iter().position(|c| c.name == name)?;
        row[i].clone()
    }

    /// Whether a view may sort by `name` (it leads an index).
    pub fn sortable(&self, name: &str) -> bool {
        self.indexed.iter().any(|c| c == name)
    }

    /// The bind value of `text` typed for `column`. PostgreSQL: the text
    /// itself (the statement casts it to the column's type, and the server
    /// says what does not fit). SQLite: the column's storage class, and
    /// `Err` naming the column when the text does not fit it (SQLite itself
    /// would store it as text, or compare it as such, without a word).
    pub fn value(&self, column: &Column, text: &str) -> Result<Value, String> {
        if self.dialect == Dialect::Postgres {
            return Ok(Value::Text(text.to_owned()));
        }
        let name = &column.name;
        match column.kind {
            Kind::Bool => match text.to_ascii_lowercase().as_str() {
                "true" | "t" | "1" => Ok(Value::Int(1)),
                "false" | "f" | "0" => Ok(Value::Int(0)),
                _ => Err(format!("{name} is a boolean: true or false, not {text:?}")),
            },
            Kind::Number => number(text).ok_or_else(|| format!("{name} is a number, not {text:?}")),
            // No declared type: SQLite stores what it is given, so the text
            // is taken for the kind of value it spells.
            _ if column.type_name.is_empty() => Ok(number(text)
                .or_else(|| {
                    text.strip_prefix("\\x")
                        .and_then(|h| hex::decode(h).ok())
                        .map(Value::Blob)
                })
                .unwrap_or_else(|| Value::Text(text.to_owned()))),
            Kind::Bytes => blob_of(text.trim()).map(Value::Blob).ok_or_else(|| {
                format!("{name} holds bytes: a UUID or \\x and hex digits, not {text:?}")
            }),
            _ => Ok(Value::Text(text.to_owned())),
        }
    }

    /// The foreign key whose single column is `column`, if any.
    pub fn reference_of(&self, column: &str) -> Option<&ForeignKey> {
        self.references
            .iter()
            .find(|fk| fk.columns.len() == 1 && fk.columns[0] == column)
    }
}

/// `text` as an integer, else as a finite real number.
fn number(text: &str) -> Option<Value> {
    let t = text.trim();
    t.parse::<i64>().map(Value::Int).ok().or_else(|| {
        t.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Value::Real)
    })
}

/// Every table of the browsed schema, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub tables: BTreeMap<String, Table>,
}

impl Catalog {
    /// The table called `name`, if the catalog has one.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    type_name: String,
    #[diesel(sql_type = Text)]
    udt: String,
    #[diesel(sql_type = Text)]
    typtype: String,
    #[diesel(sql_type = Text)]
    category: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
    #[diesel(sql_type = Nullable<Text>)]
    default_expr: Option<String>,
    #[diesel(sql_type = Bool)]
    writable: bool,
    #[diesel(sql_type = BigInt)]
    estimate: i64,
}

#[derive(QueryableByName)]
struct ConstraintRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Array<Text>)]
    cols: Vec<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ref_table: Option<String>,
    #[diesel(sql_type = Nullable<Array<Text>>)]
    ref_cols: Option<Vec<String>>,
    #[diesel(sql_type = Text)]
    on_delete: String,
}

#[derive(QueryableByName)]
struct PairRow {
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

const COLUMNS_SQL: &str = "\
SELECT c.relname::text AS table_name, a.attname::text AS column_name,
       format_type(a.atttypid, a.atttypmod) AS type_name, t.typname::text AS udt,
       t.typtype::text AS typtype, t.typcategory::text AS category,
       NOT a.attnotnull AS nullable, pg_get_expr(d.adbin, d.adrelid) AS default_expr,
       (a.attgenerated = '' AND a.attidentity <> 'a') AS writable,
       c.reltuples::bigint AS estimate
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
ORDER BY c.relname, a.attnum";

const CONSTRAINTS_SQL: &str = "\
SELECT c.relname::text AS table_name, con.contype::text AS kind,        ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i) AS cols,
       f.relname::text AS ref_table,
       CASE WHEN con.contype = 'f' THEN
         ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i)
       END AS ref_cols,
       con.confdeltype::text AS on_delete
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class f ON f.oid = con.confrelid
WHERE n.nspname = 'public' AND con.contype IN ('p', 'f')
ORDER BY c.relname, con.conname";

const INDEXED_SQL: &str = "\
SELECT c.relname::text AS a, a.attname::text AS b
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE n.nspname = 'public' AND i.indisvalid
ORDER BY 1, 2";

const ENUMS_SQL: &str = "\
SELECT t.typname::text AS a, e.enumlabel::text AS b
FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
ORDER BY t.typname, e.enumsortorder";

/// PostgreSQL's catalog (`pg_catalog`), schema `public`.
pub(super) async fn read_postgres(conn: &mut Conn) -> Result<Catalog, diesel::result::Error> {
    let columns: Vec<ColumnRow> = diesel::sql_query(COLUMNS_SQL).load(conn).await?;
    let constraints: Vec<ConstraintRow> = diesel::sql_query(CONSTRAINTS_SQL).load(conn).await?;
    let indexed: Vec<PairRow> = diesel::sql_query(INDEXED_SQL).load(conn).await?;
    let enums: Vec<PairRow> = diesel::sql_query(ENUMS_SQL).load(conn).await?;
    let mut labels: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in enums {
        labels.entry(e.a).or_default().push(e.b);
    }
    let mut catalog = Catalog::default();
    for c in columns {
        let kind = match (c.typtype.as_str(), c.category.as_str(), c.udt.as_str()) {
            ("e", _, _) => Kind::Enum,
            (_, _, "json" | "jsonb") => Kind::Json,
            (_, _, "bytea") => Kind::Bytes,
            (_, "D", _) => Kind::Timestamp,
            (_, "B", _) => Kind::Bool,
            (_, "N", _) => Kind::Number,
            _ => Kind::Text,
        };
        let table = catalog
            .tables
            .entry(c.table_name.clone())
            .or_insert_with(|| Table {
                name: c.table_name.clone(),
                dialect: Dialect::Postgres,
                columns: Vec::new(),
                primary_key: Vec::new(),
                indexed: Vec::new(),
                references: Vec::new(),
                referenced_by: Vec::new(),
                rows: RowCount::Estimate(c.estimate),
            });
        table.columns.push(Column {
            name: c.column_name,
            type_name: c.type_name,
            kind,
            nullable: c.nullable,
            default: c.default_expr,
            labels: labels.get(&c.udt).cloned().unwrap_or_default(),
            writable: c.writable,
        });
    }
    for i in indexed {
        if let Some(t) = catalog.tables.get_mut(&i.a)
            && !t.indexed.contains(&i.b)
        {
            t.indexed.push(i.b);
        }
    }
    let mut incoming = Vec::new();
    for con in constraints {
        let Some(t) = catalog.tables.get_mut(&con.table_name) else {
            continue;
        };
        if con.kind == "p" {
            t.primary_key = con.cols;
        } else if let (Some(ref_table), Some(ref_cols)) = (con.ref_table, con.ref_cols) {
            let fk = ForeignKey {
                table: con.table_name.clone(),
                columns: con.cols,
                ref_table,
                ref_columns: ref_cols,
                on_delete: con.on_delete,
            };
            t.references.push(fk.clone());
            incoming.push(fk);
        }
    }
    for fk in incoming {
        if let Some(t) = catalog.tables.get_mut(&fk.ref_table) {
            t.referenced_by.push(fk);
        }
    }
    // Exact counts where they are cheap; a never-analysed table (-1) is
    // counted too, since its estimate says nothing.
    let small: Vec<String> = catalog
        .tables
        .values()
        .filter(|t| matches!(t.rows, RowCount::Estimate(n) if n < EXACT_COUNT_LIMIT))
        .map(|t| t.name.clone())
        .collect();
    if !small.is_empty() {
        let sql = small
            .iter()
            .map(|name| {
                format!(
                    "SELECT {} AS name, count(*) AS n FROM {}",
                    quote_literal(name),
                    quote_ident(name)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let counts: Vec<CountRow> = diesel::sql_query(sql).load(conn).await?;
        for c in counts {
            if let Some(t) = catalog.tables.get_mut(&c.name) {
                t.rows = RowCount::Exact(c.n);
            }
        }
    }
    Ok(catalog)
}

/// `"name"`, with inner quotes doubled. Only ever applied to names taken
/// from the catalog.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with inner quotes doubled (catalog names in SQL text only).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
