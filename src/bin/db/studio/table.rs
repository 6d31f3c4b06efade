//! The table view (filters, sort, keyset pages) and the row detail
//! (formatted values, foreign keys both ways).
//!
//! A view's whole state is its URL: `fc`/`fo`/`fv` triples (filter
//! column, operator, value; repeated and combined with AND), `sort` and
//! `dir`, `size`, and a cursor `after` or `before` (the JSON array of the
//! boundary row's key: the sort column's value, then the primary key's).
//! Pages are found by comparing keys, never with `OFFSET`, so page 10,000
//! costs what page 1 costs.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Studio;
use super::catalog::{Catalog, Kind, RowCount, Table, quote_ident};
use super::html::{self, cell, enc, esc};
use super::query::{self, Row, Stmt};

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

    fn label(self) -> &'static str {
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

/// The table `name` of `catalog`, or a 404 page (the handler's whole
/// answer, so it is returned as is rather than boxed).
#[allow(clippy::result_large_err)]
pub fn find<'c>(studio: &Studio, catalog: &'c Catalog, name: &str) -> Result<&'c Table, Response> {
    catalog.table(name).ok_or_else(|| {
        html::error(
            &studio.chrome(),
            StatusCode::NOT_FOUND,
            &format!("unknown table {name:?}: not in the catalog"),
        )
    })
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
            view.filters.push(Filter {
                column,
                op,
                value: fv.get(i).cloned().unwrap_or_default(),
            });
        }
        if view.sort.is_some()
            && view.sort.as_deref() == table.primary_key.first().map(|s| s.as_str())
            && table.primary_key.len() == 1
        {
            view.sort = None; // the key order is the default order
        }
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

fn cast(stmt: &mut Stmt, table: &Table, column: &str, value: Option<String>) -> String {
    let ty = &table.column(column).expect("checked column").type_name;
    format!("CAST({} AS {ty})", stmt.bind(value))
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
                    let pattern = format!(
                        "%{}%",
                        f.value
                            .replace('\\', "\\\\")
                            .replace('%', "\\%")
                            .replace('_', "\\_")
                    );
                    format!("{col}::text ILIKE {}", stmt.bind(Some(pattern)))
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

/// The statement of one page (`limit` rows in display order, or reversed
/// when `reversed()` says so) and whether its rows come back reversed.
pub fn page_stmt(table: &Table, view: &View, limit: usize) -> (Stmt, bool) {
    let mut stmt = Stmt::default();
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
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
        query::row_json(&names, None),
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
        .map(|k| {
            let i = table
                .columns
                .iter()
                .position(|c| &c.name == k)
                .expect("key column");
            row[i].clone()
        })
        .collect()
}

/// `k=...` pairs naming `row` by its primary key.
pub fn row_pairs(table: &Table, row: &Row) -> Vec<(String, String)> {
    table
        .primary_key
        .iter()
        .map(|k| {
            let i = table
                .columns
                .iter()
                .position(|c| &c.name == k)
                .expect("key column");
            ("k".to_owned(), row[i].clone().unwrap_or_default())
        })
        .collect()
}

/// `Server-Timing`: the database's part (checkout, transaction, query) and
/// the handler's whole time (with parsing and rendering), in ms;
/// `scripts/studio-bench` reads it.
fn server_timing(response: &mut Response, started: Instant, db: std::time::Duration) {
    let total = started.elapsed().as_secs_f64() * 1000.0;
    let db = db.as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("db;dur={db:.2}, total;dur={total:.2}")) {
        response.headers_mut().insert("server-timing", v);
    }
}

/// `GET /t/{table}`: one page of a table.
pub async fn view(
    State(studio): State<Arc<Studio>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let started = Instant::now();
    let catalog = studio.catalog();
    let table = match find(&studio, &catalog, &name) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let pairs = pairs(raw.as_deref());
    let view = match View::parse(table, &pairs) {
        Ok(v) => v,
        Err(why) => return html::error(&studio.chrome(), StatusCode::BAD_REQUEST, &why),
    };
    let (stmt, reversed) = page_stmt(table, &view, view.size + 1);
    let db_started = Instant::now();
    let mut rows = match query::read(&studio.db, studio.timeout_ms, vec![stmt]).await {
        Ok(mut r) => r.remove(0),
        Err(e) => return studio.db_error(&e),
    };
    let db_time = db_started.elapsed();
    let more = rows.len() > view.size;
    rows.truncate(view.size);
    if reversed {
        rows.reverse();
    }
    let body = render_view(&studio, &catalog, table, &view, &rows, more);
    let mut response = html::page(&studio.chrome(), &table.name, &body).into_response();
    server_timing(&mut response, started, db_time);
    response
}

fn render_view(
    studio: &Studio,
    catalog: &Catalog,
    table: &Table,
    view: &View,
    rows: &[Row],
    more: bool,
) -> String {
    let mut b = String::new();
    let count = match table.rows {
        RowCount::Exact(n) => format!("{n} rows"),
        RowCount::Estimate(n) => format!("~{} rows (estimate)", n.max(0)),
    };
    b.push_str(&format!(
        r#"<h1 id="table-name">{}</h1><p class="muted">{count}{}</p>"#,
        esc(&table.name),
        if table.primary_key.is_empty() {
            " · no primary key: only the first page can be shown"
        } else {
            ""
        }
    ));
    b.push_str(&filter_form(table, view));
    let base = view.base_pairs();
    let q = html::query(&base);
    b.push_str(&format!(
        r#"<p><a id="export-csv" href="/t/{0}/export.csv?{1}">Export CSV</a> · <a id="export-json" href="/t/{0}/export.json?{1}">Export JSON</a>{2}</p>"#,
        enc(&table.name),
        esc(&q),
        if studio.write {
            format!(r#" · <a id="insert" href="/t/{}/new">Insert a row</a>"#, enc(&table.name))
        } else {
            String::new()
        }
    ));
    b.push_str(&pager(table, view, rows, more));
    b.push_str(r#"<div class="scroll"><table class="grid" id="rows"><thead><tr><th></th>"#);
    for c in &table.columns {
        let head = if table.sortable(&c.name) {
            let mut p: Vec<(String, String)> = base
                .iter()
                .filter(|(k, _)| k != "sort" && k != "dir")
                .cloned()
                .collect();
            p.push(("sort".into(), c.name.clone()));
            let now_asc = view.sort.as_deref() == Some(&c.name) && !view.desc;
            if now_asc {
                p.push(("dir".into(), "desc".into()));
            }
            format!(
                r#"<a class="sort" href="/t/{}?{}" title="sort by {2} (indexed)">{2}</a>"#,
                enc(&table.name),
                esc(&html::query(&p)),
                esc(&c.name)
            )
        } else {
            esc(&c.name)
        };
        b.push_str(&format!(
            r#"<th>{head}<span class="type">{}</span></th>"#,
            esc(&c.type_name)
        ));
    }
    b.push_str("</tr></thead><tbody>");
    for row in rows {
        b.push_str("<tr>");
        if table.primary_key.is_empty() {
            b.push_str("<td></td>");
        } else {
            b.push_str(&format!(
                r#"<td><a class="open" href="/t/{}/row?{}">open</a></td>"#,
                enc(&table.name),
                esc(&html::query(&row_pairs(table, row)))
            ));
        }
        for (c, v) in table.columns.iter().zip(row) {
            let text = cell(v.as_deref());
            match (table.reference_of(&c.name), v) {
                (Some(fk), Some(v)) => b.push_str(&format!(
                    r#"<td><a class="fk" href="{}">{text}</a></td>"#,
                    esc(&reference_href(catalog, fk, v))
                )),
                _ => b.push_str(&format!("<td>{text}</td>")),
            }
        }
        b.push_str("</tr>");
    }
    b.push_str("</tbody></table></div>");
    if rows.is_empty() {
        b.push_str(r#"<p class="muted" id="no-rows">No rows.</p>"#);
    }
    b
}

/// Where a foreign-key value leads: the referenced row, or a filtered view
/// when the key it references is not that table's primary key.
fn reference_href(catalog: &Catalog, fk: &super::catalog::ForeignKey, value: &str) -> String {
    let target_pk = catalog
        .table(&fk.ref_table)
        .map(|t| t.primary_key.clone())
        .unwrap_or_default();
    if target_pk == fk.ref_columns {
        format!(
            "/t/{}/row?{}",
            enc(&fk.ref_table),
            html::query(&[("k".into(), value.into())])
        )
    } else {
        format!(
            "/t/{}?{}",
            enc(&fk.ref_table),
            html::query(&[
                ("fc".into(), fk.ref_columns[0].clone()),
                ("fo".into(), "eq".into()),
                ("fv".into(), value.into())
            ])
        )
    }
}

fn pager(table: &Table, view: &View, rows: &[Row], more: bool) -> String {
    if table.primary_key.is_empty() || rows.is_empty() {
        return String::new();
    }
    let backward = view.before.is_some();
    let has_prev = if backward { more } else { view.after.is_some() };
    let has_next = if backward { true } else { more };
    let link = |cursor: &str, key: Vec<Option<String>>, id: &str, label: &str| {
        let mut p = view.base_pairs();
        p.push((cursor.into(), serde_json::to_string(&key).expect("json")));
        format!(
            r#"<a id="{id}" href="/t/{}?{}">{label}</a>"#,
            enc(&table.name),
            esc(&html::query(&p))
        )
    };
    let prev = if has_prev {
        link(
            "before",
            key_of(table, view, &rows[0]),
            "prev",
            "← Previous",
        )
    } else {
        r#"<span class="disabled">← Previous</span>"#.into()
    };
    let next = if has_next {
        link(
            "after",
            key_of(table, view, &rows[rows.len() - 1]),
            "next",
            "Next →",
        )
    } else {
        r#"<span class="disabled">Next →</span>"#.into()
    };
    let first = format!(
        r#"<a href="/t/{}?{}">First</a>"#,
        enc(&table.name),
        esc(&html::query(&view.base_pairs()))
    );
    format!(
        r#"<div class="pager">{first} {prev} {next} <span class="muted">{} rows on this page</span></div>"#,
        rows.len()
    )
}

fn filter_form(table: &Table, view: &View) -> String {
    let mut b = format!(
        r#"<form class="filters" method="get" action="/t/{}">"#,
        enc(&table.name)
    );
    let blank = Filter {
        column: String::new(),
        op: Op::Eq,
        value: String::new(),
    };
    for f in view.filters.iter().chain(std::iter::once(&blank)) {
        b.push_str(
            r#"<fieldset class="filter"><select name="fc"><option value="">column…</option>"#,
        );
        for c in &table.columns {
            b.push_str(&format!(
                r#"<option{}>{}</option>"#,
                if c.name == f.column { " selected" } else { "" },
                esc(&c.name)
            ));
        }
        b.push_str(r#"</select><select name="fo">"#);
        for op in Op::ALL {
            b.push_str(&format!(
                r#"<option value="{}"{}>{}</option>"#,
                op.code(),
                if op == f.op { " selected" } else { "" },
                esc(op.label())
            ));
        }
        b.push_str(&format!(
            r#"</select><input type="text" name="fv" value="{}" placeholder="value"></fieldset>"#,
            esc(&f.value)
        ));
    }
    b.push_str(r#"<button type="button" id="add-filter" class="secondary">+ filter</button>"#);
    b.push_str(r#"<label>sort <select name="sort"><option value="">primary key</option>"#);
    for c in table.columns.iter().filter(|c| table.sortable(&c.name)) {
        b.push_str(&format!(
            r#"<option{}>{}</option>"#,
            if view.sort.as_deref() == Some(&c.name) {
                " selected"
            } else {
                ""
            },
            esc(&c.name)
        ));
    }
    b.push_str(&format!(
        r#"</select></label><select name="dir"><option value="asc">asc</option><option value="desc"{}>desc</option></select>"#,
        if view.desc { " selected" } else { "" }
    ));
    b.push_str(&format!(
        r#"<label>rows <input type="text" name="size" value="{}" size="4"></label><button type="submit" id="apply">Apply</button></form>"#,
        view.size
    ));
    b
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
    let mut stmt = Stmt::default();
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let cond = key_sql(&mut stmt, table, key);
    stmt.sql = format!(
        "SELECT {} FROM {} WHERE {cond}",
        query::row_json(&names, None),
        quote_ident(&table.name)
    );
    stmt
}

/// `GET /t/{table}/row?k=...`: one row, and what references it.
pub async fn row(
    State(studio): State<Arc<Studio>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let catalog = studio.catalog();
    let table = match find(&studio, &catalog, &name) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let key = match key_from(table, &pairs(raw.as_deref())) {
        Ok(k) => k,
        Err(why) => return html::error(&studio.chrome(), StatusCode::BAD_REQUEST, &why),
    };
    let started = Instant::now();
    let found = match query::read(&studio.db, studio.timeout_ms, vec![row_stmt(table, &key)]).await
    {
        Ok(mut r) => r.remove(0).pop(),
        Err(e) => return studio.db_error(&e),
    };
    let Some(row) = found else {
        return html::error(
            &studio.chrome(),
            StatusCode::NOT_FOUND,
            &format!("no row of {} with that key", table.name),
        );
    };
    // One count per referencing foreign key, all in one transaction.
    let mut counts = Vec::new();
    let mut stmts = Vec::new();
    for fk in &table.referenced_by {
        let values: Vec<Option<String>> = fk
            .ref_columns
            .iter()
            .map(|c| {
                table
                    .columns
                    .iter()
                    .position(|x| &x.name == c)
                    .and_then(|i| row[i].clone())
            })
            .collect();
        if values.iter().any(Option::is_none) {
            continue;
        }
        let Some(child) = catalog.table(&fk.table) else {
            continue;
        };
        let mut s = Stmt::default();
        let conds: Vec<String> = fk
            .columns
            .iter()
            .zip(&values)
            .map(|(c, v)| format!("{} = {}", quote_ident(c), cast(&mut s, child, c, v.clone())))
            .collect();
        s.sql = format!(
            "SELECT json_build_array(count(*)::text)::text AS r FROM {} WHERE {}",
            quote_ident(&fk.table),
            conds.join(" AND ")
        );
        stmts.push(s);
        counts.push((fk, values));
    }
    let results = match query::read(&studio.db, studio.timeout_ms, stmts).await {
        Ok(r) => r,
        Err(e) => return studio.db_error(&e),
    };
    let mut b = format!(
        r#"<h1>{} <span class="muted">{}</span></h1><p><a href="/t/{}">← all rows</a>"#,
        esc(&table.name),
        esc(&key.join(", ")),
        enc(&table.name)
    );
    if studio.write {
        let k = esc(&html::query(&row_pairs(table, &row)));
        b.push_str(&format!(
            r#" · <a id="edit" href="/t/{0}/edit?{k}">Edit</a> · <a id="delete" href="/t/{0}/delete?{k}">Delete</a>"#,
            enc(&table.name)
        ));
    }
    b.push_str(r#"</p><dl class="detail" id="detail">"#);
    for (c, v) in table.columns.iter().zip(&row) {
        b.push_str(&format!(
            r#"<dt>{}<br><span class="muted">{}</span></dt><dd data-column="{0}">"#,
            esc(&c.name),
            esc(&c.type_name)
        ));
        match (v, table.reference_of(&c.name)) {
            (Some(v), Some(fk)) => b.push_str(&format!(
                r#"<a class="fk" href="{}">{}</a> <span class="muted">→ {}</span>"#,
                esc(&reference_href(&catalog, fk, v)),
                esc(v),
                esc(&fk.ref_table)
            )),
            (v, _) => b.push_str(&detail_value(c.kind, v.as_deref())),
        }
        b.push_str("</dd>");
    }
    b.push_str("</dl>");
    b.push_str(r#"<h2>Referenced by</h2><ul id="referenced-by">"#);
    if counts.is_empty() {
        b.push_str(r#"<li class="muted">nothing references this table</li>"#);
    }
    for ((fk, values), rows) in counts.iter().zip(results) {
        let n = rows
            .first()
            .and_then(|r| r[0].clone())
            .unwrap_or_else(|| "0".into());
        let mut p = Vec::new();
        for (c, v) in fk.columns.iter().zip(values) {
            p.push(("fc".into(), c.clone()));
            p.push(("fo".into(), "eq".into()));
            p.push(("fv".into(), v.clone().unwrap_or_default()));
        }
        b.push_str(&format!(
            r#"<li><a class="ref" data-table="{0}" href="/t/{1}?{2}">{0}</a> <span class="muted">({3})</span> <span class="count">{4}</span></li>"#,
            esc(&fk.table),
            enc(&fk.table),
            esc(&html::query(&p)),
            esc(&fk.columns.join(", ")),
            esc(&n)
        ));
    }
    b.push_str("</ul>");
    let mut response =
        html::page(&studio.chrome(), &format!("{} row", table.name), &b).into_response();
    let elapsed = started.elapsed();
    server_timing(&mut response, started, elapsed);
    response
}

/// A value in the row detail, by kind: JSON pretty and foldable,
/// timestamps in UTC (the script adds local time), enums as labels, long
/// text folded.
fn detail_value(kind: Kind, value: Option<&str>) -> String {
    let Some(v) = value else {
        return r#"<span class="null">NULL</span>"#.into();
    };
    match kind {
        Kind::Json => {
            let pretty = serde_json::from_str::<serde_json::Value>(v)
                .ok()
                .and_then(|j| serde_json::to_string_pretty(&j).ok())
                .unwrap_or_else(|| v.to_owned());
            format!(
                r#"<details class="json" open><summary>JSON, {} characters</summary><pre class="json">{}</pre></details>"#,
                v.len(),
                esc(&pretty)
            )
        }
        Kind::Timestamp if v.len() >= 19 && (v.ends_with("+00") || v.ends_with("+00:00")) => {
            let iso = format!(
                "{}Z",
                v.trim_end_matches("+00:00")
                    .trim_end_matches("+00")
                    .replacen(' ', "T", 1)
            );
            format!(
                r#"<time datetime="{}">{} UTC</time>"#,
                esc(&iso),
                esc(v.trim_end_matches("+00:00").trim_end_matches("+00"))
            )
        }
        Kind::Enum => format!(r#"<span class="enum">{}</span>"#, esc(v)),
        _ if v.chars().count() > html::FOLD_AT => {
            let head: String = v.chars().take(html::FOLD_AT).collect();
            format!(
                r#"<details class="long"><summary>{}… ({} characters)</summary><pre>{}</pre></details>"#,
                esc(&head),
                v.chars().count(),
                esc(v)
            )
        }
        _ => esc(v),
    }
}
