//! The table page: a filter form, the grid of one page, the pager and the
//! export links.
//!
//! A view's whole state is its URL: `fc`/`fo`/`fv` triples (filter
//! column, operator, value; repeated and combined with AND), `sort` and
//! `dir`, `size`, and a cursor `after` or `before` (the JSON array of the
//! boundary row's key: the sort column's value, then the primary key's).
//! `view` turns that state into SQL.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Studio;
use super::catalog::{Catalog, RowCount, Table};
use super::html::{self, cell, enc, esc};
use super::query;
use super::stmt::Row;
use super::view::{Filter, Op, View, key_of, page_stmt, pairs, row_pairs};

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

/// `Server-Timing`: the database's part (checkout, transaction, query) and
/// the handler's whole time (with parsing and rendering), in ms;
/// `scripts/studio-bench` reads it.
pub(super) fn server_timing(response: &mut Response, started: Instant, db: std::time::Duration) {
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
    let mut rows = match query::read(&studio.source, studio.timeout_ms, vec![stmt]).await {
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
        RowCount::MoreThan(n) => format!("more than {n} rows"),
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
        r#"<p><a id="export-csv" href="t/{0}/export.csv?{1}">Export CSV</a> · <a id="export-json" href="t/{0}/export.json?{1}">Export JSON</a>{2}</p>"#,
        enc(&table.name),
        esc(&q),
        if studio.write {
            format!(r#" · <a id="insert" href="t/{}/new">Insert a row</a>"#, enc(&table.name))
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
                r#"<a class="sort" href="t/{}?{}" title="sort by {2} (indexed)">{2}</a>"#,
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
                r#"<td><a class="open" href="t/{}/row?{}">open</a></td>"#,
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
pub(super) fn reference_href(
    catalog: &Catalog,
    fk: &super::catalog::ForeignKey,
    value: &str,
) -> String {
    let target_pk = catalog
        .table(&fk.ref_table)
        .map(|t| t.primary_key.clone())
        .unwrap_or_default();
    if target_pk == fk.ref_columns {
        format!(
            "t/{}/row?{}",
            enc(&fk.ref_table),
            html::query(&[("k".into(), value.into())])
        )
    } else {
        format!(
            "t/{}?{}",
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
            r#"<a id="{id}" href="t/{}?{}">{label}</a>"#,
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
        r#"<a href="t/{}?{}">First</a>"#,
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
        r#"<form class="filters" method="get" action="t/{}">"#,
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
