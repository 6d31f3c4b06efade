//! A table view's state and its SQL: the filters, the sort, the page size
//! and the keyset cursor, parsed from the URL and checked against the
//! catalog, and the statements that read a page or one row. Pages are
//! found by comparing keys, never with `OFFSET`, so page 10,000 costs what
//! page 1 costs.

use super::catalog::{Kind, Table, quote_ident};
use super::query;
use super::stmt::{Dialect, Row, Stmt, Value};

/// Rows per page unless `size` says otherwise, and the most it may say.
pub const DEFAULT_SIZE: usize = 50;
pub const MAX_SIZE: usize = 500;

/// A filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Contains,
    Lt,
    Gt,
    IsNull,
    NotNull,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Eq,
        Op::Contains,
        Op::Lt,
        Op::Gt,
        Op::IsNull,
        Op::NotNull,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Contains => "contains",
            Op::Lt => "lt",
            Op::Gt => "gt",
            Op::IsNull => "null",
            Op::NotNull => "notnull",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Contains => "contains",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::IsNull => "is null",
            Op::NotNull => "is not null",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.code() == s)
    }
}

/// One filter; the column is known to exist.
#[derive(Debug, Clone)]
pub struct Filter {
    pub column: String,
    pub op: Op,
    pub value: String,
}

/// A view's state, parsed from its URL and checked against the catalog.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub filters: Vec<Filter>,
    pub sort: Option<String>,
    pub desc: bool,
    pub after: Option<Vec<Option<String>>>,
    pub before: Option<Vec<Option<String>>>,
    pub size: usize,
}

/// Query pairs in order (repeated keys kept).
pub fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

impl View {
    /// Parses and checks a view; `Err` names the bad part (a 400).
    pub fn parse(table: &Table, pairs: &[(String, String)]) -> Result<View, String> {
        let mut view = View {
            size: DEFAULT_SIZE,
            ..View::default()
        };
        let (mut fc, mut fo, mut fv) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v) in pairs {
            match k.as_str() {
                "fc" => fc.push(v.clone()),
                "fo" => fo.push(v.clone()),
                "fv" => fv.push(v.clone()),
                "sort" if !v.is_empty() => {
                    if table.column(v).is_none() {
                        return Err(format!("unknown column {v:?} in table {}", table.name));
                    }
                    if !table.sortable(v) {
                        return Err(format!(
                            "column {v:?} has no index: sorting by it would read the whole table"
                        ));
                    }
                    view.sort = Some(v.clone());
                }
                "dir" => view.desc = v == "desc",
                "size" => {
                    view.size = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_SIZE).contains(n))
                        .ok_or_else(|| format!("size must be 1 to {MAX_SIZE}"))?
                }
                "after" | "before" => {
                    let key: Vec<Option<String>> =
                        serde_json::from_str(v).map_err(|_| format!("{k} is not a page cursor"))?;
                    if k == "after" {
                        view.after = Some(key);
                    } else {
                        view.before = Some(key);
                    }
                }
                _ => {}
            }
        }
        for (i, column) in fc.into_iter().enumerate() {
            if column.is_empty() {
                continue;
            }
            if table.column(&column).is_none() {
                return Err(format!("unknown column {column:?} in table {}", table.name));
            }
            let op_text = fo.get(i).map(String::as_str).unwrap_or("eq");
            let op = Op::parse(op_text).ok_or_else(|| format!("unknown operator {op_text:?}"))?;
            let value = fv.get(i).cloned().unwrap_or_default();
            if matches!(op, Op::Eq | Op::Lt | Op::Gt) {
                let c = table.column(&column).expect("checked above");
                table.value(c, &value)?;
            }
            view.filters.push(Filter { column, op, value });
        }
        if view.sort.is_some()
            && view.sort.as_deref() == table.primary_key.first().map(|s| s.as_str())
            && table.primary_key.len() == 1
        {
            view.sort = None; // the key order is the default order
        }
        // A cursor's values came from rows the studio showed: they are not
        // checked against the column (on SQLite a column may hold values of
        // any storage class; `cast` binds what does not fit as text).
        let key_len = key_columns(table, &view).len();
        for key in view.after.iter().chain(view.before.iter()) {
            if key.len() != key_len {
                return Err("the page cursor does not fit this view".into());
            }
        }
        Ok(view)
    }

    /// The URL pairs of this view without its cursor.
    pub fn base_pairs(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for f in &self.filters {
            p.push(("fc".into(), f.column.clone()));
            p.push(("fo".into(), f.op.code().into()));
            p.push(("fv".into(), f.value.clone()));
        }
        if let Some(s) = &self.sort {
            p.push(("sort".into(), s.clone()));
        }
        if self.desc {
            p.push(("dir".into(), "desc".into()));
        }
        if self.size != DEFAULT_SIZE {
            p.push(("size".into(), self.size.to_string()));
        }
        p
    }
}

/// The columns a page cursor holds: the sort column (when not the key),
/// then the primary key.
pub fn key_columns(table: &Table, view: &View) -> Vec<String> {
    let mut k = Vec::new();
    if let Some(s) = &view.sort
        && !table.primary_key.contains(s)
    {
        k.push(s.clone());
    }
    k.extend(table.primary_key.iter().cloned());
    k
}

/// The placeholder of `value` bound for `column`: cast to the column's type
/// on PostgreSQL, of the column's storage class on SQLite. A filter's or a
/// form's text is checked with `Table::value` first (a 400/422 naming the
/// column); a key or cursor that does not fit its column is bound as text,
/// which finds the text a SQLite column may hold, or nothing.
pub(super) fn cast(stmt: &mut Stmt, table: &Table, column: &str, value: Option<String>) -> String {
    let c = table.column(column).expect("checked column");
    match table.dialect {
        Dialect::Postgres => format!("CAST({} AS {})", stmt.bind_text(value), c.type_name),
        Dialect::Sqlite => {
            let value = value.map(|text| table.value(c, &text).unwrap_or(Value::Text(text)));
            stmt.bind(value)
        }
    }
}

/// `WHERE` parts of the filters.
pub fn filter_sql(stmt: &mut Stmt, table: &Table, filters: &[Filter]) -> Vec<String> {
    filters
        .iter()
        .map(|f| {
            let col = quote_ident(&f.column);
            match f.op {
                Op::Eq => format!(
                    "{col} = {}",
                    cast(stmt, table, &f.column, Some(f.value.clone()))
                ),
                Op::Lt => format!(
                    "{col} < {}",
                    cast(stmt, table, &f.column, Some(f.value.clone()))
                ),
                Op::Gt => format!(
                    "{col} > {}",
                    cast(stmt, table, &f.column, Some(f.value.clone()))
                ),
                Op::Contains => {
                    let bytes = table.dialect == Dialect::Sqlite
                        && table
                            .column(&f.column)
                            .is_some_and(|c| c.kind == Kind::Bytes);
                    // Bytes on SQLite are matched in hex (a UUID without its dashes).
                    let needle = if bytes {
                        let v = f.value.strip_prefix("\\x").unwrap_or(&f.value);
                        v.replace('-', "").to_ascii_lowercase()
                    } else {
                        f.value.clone()
                    };
                    let pattern = format!(
                        "%{}%",
                        needle
                            .replace('\\', "\\\\")
                            .replace('%', "\\%")
                            .replace('_', "\\_")
                    );
                    let p = stmt.bind_text(Some(pattern));
                    match table.dialect {
                        Dialect::Postgres => format!("{col}::text ILIKE {p}"),
                        // SQLite's LIKE ignores ASCII case, and has no escape character unless named.
                        Dialect::Sqlite if bytes => {
                            format!("lower(hex({col})) LIKE {p} ESCAPE '\\'")
                        }
                        // What is shown is what is searched (`true`, not `1`).
                        Dialect::Sqlite => format!(
                            "CAST({} AS TEXT) LIKE {p} ESCAPE '\\'",
                            query::sqlite_shown(table.column(&f.column).expect("checked column"))
                        ),
                    }
                }
                Op::IsNull => format!("{col} IS NULL"),
                Op::NotNull => format!("{col} IS NOT NULL"),
            }
        })
        .collect()
}

/// The condition "after `key` in the canonical order" (`greater`) or
/// "before it": the canonical order is the sort column ascending with
/// NULLs last, then the primary key ascending.
fn keyset_sql(
    stmt: &mut Stmt,
    table: &Table,
    view: &View,
    key: &[Option<String>],
    greater: bool,
) -> String {
    let cols = key_columns(table, view);
    let sort_extra = cols.len() > table.primary_key.len();
    let op = if greater { ">" } else { "<" };
    let nullable_sort = sort_extra && table.column(&cols[0]).is_some_and(|c| c.nullable);
    if !nullable_sort && key.iter().all(Option::is_some) {
        // One row comparison: an index on the sort column (or the primary
        // key) finds the first row directly.
        let lhs: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
        let rhs: Vec<String> = cols
            .iter()
            .zip(key)
            .map(|(c, v)| cast(stmt, table, c, v.clone()))
            .collect();
        return format!("({}) {op} ({})", lhs.join(", "), rhs.join(", "));
    }
    // A nullable sort column: NULLs sort last, and a row comparison with a
    // NULL is unknown, so the cases are spelled out.
    let (pk_cols, pk_vals) = if sort_extra {
        (&cols[1..], &key[1..])
    } else {
        (&cols[..], key)
    };
    let lhs: Vec<String> = pk_cols.iter().map(|c| quote_ident(c)).collect();
    let rhs: Vec<String> = pk_cols
        .iter()
        .zip(pk_vals)
        .map(|(c, v)| cast(stmt, table, c, v.clone()))
        .collect();
    let pk_cmp = format!("({}) {op} ({})", lhs.join(", "), rhs.join(", "));
    if !sort_extra {
        return pk_cmp;
    }
    let s = quote_ident(&cols[0]);
    match &key[0] {
        Some(v) => {
            let x = cast(stmt, table, &cols[0], Some(v.clone()));
            if greater {
                format!("({s} > {x} OR ({s} = {x} AND {pk_cmp}) OR {s} IS NULL)")
            } else {
                format!("({s} < {x} OR ({s} = {x} AND {pk_cmp}))")
            }
        }
        None if greater => format!("({s} IS NULL AND {pk_cmp})"),
        None => format!("({s} IS NOT NULL OR {pk_cmp})"),
    }
}

fn order_sql(table: &Table, view: &View, reversed: bool) -> String {
    let cols = key_columns(table, view);
    if cols.is_empty() {
        return String::new();
    }
    let sort_extra = cols.len() > table.primary_key.len();
    let dir = if reversed { "DESC" } else { "ASC" };
    let parts: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 && sort_extra {
                let nulls = if reversed {
                    "NULLS FIRST"
                } else {
                    "NULLS LAST"
                };
                format!("{} {dir} {nulls}", quote_ident(c))
            } else {
                format!("{} {dir}", quote_ident(c))
            }
        })
        .collect();
    format!(" ORDER BY {}", parts.join(", "))
}

/// The statement of one page of `limit` rows, and whether its rows come
/// back in reverse display order (a `before` page reads backwards).
pub fn page_stmt(table: &Table, view: &View, limit: usize) -> (Stmt, bool) {
    let mut stmt = table.stmt();
    let mut conds = filter_sql(&mut stmt, table, &view.filters);
    // Displayed ascending: `after` reads forward, `before` reads backward.
    // Descending is the canonical order read backward.
    let (cursor, forward) = match (&view.after, &view.before) {
        (Some(k), _) => (Some(k), true),
        (None, Some(k)) => (Some(k), false),
        _ => (None, true),
    };
    let canonical_forward = forward != view.desc;
    if let Some(key) = cursor
        && !table.primary_key.is_empty()
    {
        conds.push(keyset_sql(&mut stmt, table, view, key, canonical_forward));
    }
    let mut sql = format!(
        "SELECT {} FROM {}",
        query::select_list(table),
        quote_ident(&table.name)
    );
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    sql.push_str(&order_sql(table, view, !canonical_forward));
    sql.push_str(&format!(" LIMIT {limit}"));
    stmt.sql = sql;
    (stmt, !forward)
}

/// The key of `row` (values of `key_columns`, in order).
pub fn key_of(table: &Table, view: &View, row: &Row) -> Vec<Option<String>> {
    key_columns(table, view)
        .iter()
        .map(|k| table.value_in(row, k))
        .collect()
}

/// `k=...` pairs naming `row` by its primary key.
pub fn row_pairs(table: &Table, row: &Row) -> Vec<(String, String)> {
    table
        .primary_key
        .iter()
        .map(|k| ("k".to_owned(), table.value_in(row, k).unwrap_or_default()))
        .collect()
}

/// The primary-key values from `k=` pairs, checked against the table.
pub fn key_from(table: &Table, pairs: &[(String, String)]) -> Result<Vec<String>, String> {
    if table.primary_key.is_empty() {
        return Err(format!(
            "table {} has no primary key: rows cannot be addressed",
            table.name
        ));
    }
    let k: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "k")
        .map(|(_, v)| v.clone())
        .collect();
    if k.len() != table.primary_key.len() {
        return Err(format!(
            "a row of {} is named by {} key value(s) ({})",
            table.name,
            table.primary_key.len(),
            table.primary_key.join(", ")
        ));
    }
    Ok(k)
}

/// `WHERE` text that selects the row with primary key `key`.
pub fn key_sql(stmt: &mut Stmt, table: &Table, key: &[String]) -> String {
    table
        .primary_key
        .iter()
        .zip(key)
        .map(|(c, v)| {
            format!(
                "{} = {}",
                quote_ident(c),
                cast(stmt, table, c, Some(v.clone()))
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The statement that reads one row by key.
pub fn row_stmt(table: &Table, key: &[String]) -> Stmt {
    let mut stmt = table.stmt();
    let cond = key_sql(&mut stmt, table, key);
    stmt.sql = format!(
        "SELECT {} FROM {} WHERE {cond}",
        query::select_list(table),
        quote_ident(&table.name)
    );
    stmt
}
