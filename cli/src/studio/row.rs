//! The row page: every value formatted by its kind, foreign keys as links,
//! and "referenced by" with a count per referencing foreign key.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Studio;
use super::catalog::{Catalog, ForeignKey, Kind, Table, quote_ident};
use super::html::{self, enc, esc};
use super::query;
use super::stmt::Row;
use super::table::{find, reference_href, server_timing};
use super::view::{cast, key_from, pairs, row_pairs, row_stmt};

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
    let found = match query::read(
        &studio.source,
        studio.timeout_ms,
        vec![row_stmt(table, &key)],
    )
    .await
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
    let counts = match referencing(&studio, &catalog, table, &row).await {
        Ok(c) => c,
        Err(e) => return studio.db_error(&e),
    };
    let mut b = format!(
        r#"<h1>{} <span class="muted">{}</span></h1><p><a href="t/{}">← all rows</a>"#,
        esc(&table.name),
        esc(&key.join(", ")),
        enc(&table.name)
    );
    if studio.write {
        let k = esc(&html::query(&row_pairs(table, &row)));
        b.push_str(&format!(
            r#" · <a id="edit" href="t/{0}/edit?{k}">Edit</a> · <a id="delete" href="t/{0}/delete?{k}">Delete</a>"#,
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
    for Reference { fk, values, rows } in &counts {
        let mut p = Vec::new();
        for (c, v) in fk.columns.iter().zip(values) {
            p.push(("fc".into(), c.clone()));
            p.push(("fo".into(), "eq".into()));
            p.push(("fv".into(), v.clone().unwrap_or_default()));
        }
        b.push_str(&format!(
            r#"<li><a class="ref" data-table="{0}" href="t/{1}?{2}">{0}</a> <span class="muted">({3})</span> <span class="count">{4}</span></li>"#,
            esc(&fk.table),
            enc(&fk.table),
            esc(&html::query(&p)),
            esc(&fk.columns.join(", ")),
            rows
        ));
    }
    b.push_str("</ul>");
    let mut response =
        html::page(&studio.chrome(), &format!("{} row", table.name), &b).into_response();
    let elapsed = started.elapsed();
    server_timing(&mut response, started, elapsed);
    response
}

/// The rows of one foreign key that reference a row.
pub(super) struct Reference {
    pub fk: ForeignKey,
    /// The referenced row's values of the key's columns.
    pub values: Vec<Option<String>>,
    /// How many rows reference it.
    pub rows: i64,
}

/// Per foreign key that points at `table`, how many rows reference `row`:
/// one count each, all in one read transaction (the row page lists them;
/// the delete page says what a delete would do to them).
pub(super) async fn referencing(
    studio: &Studio,
    catalog: &Catalog,
    table: &Table,
    row: &Row,
) -> Result<Vec<Reference>, database::Error> {
    let mut found = Vec::new();
    let mut stmts = Vec::new();
    for fk in &table.referenced_by {
        let values: Vec<Option<String>> = fk
            .ref_columns
            .iter()
            .map(|c| table.value_in(row, c))
            .collect();
        // A NULL is referenced by nothing.
        if values.iter().any(Option::is_none) {
            continue;
        }
        let Some(child) = catalog.table(&fk.table) else {
            continue;
        };
        let mut s = child.stmt();
        let conds: Vec<String> = fk
            .columns
            .iter()
            .zip(&values)
            .map(|(c, v)| format!("{} = {}", quote_ident(c), cast(&mut s, child, c, v.clone())))
            .collect();
        s.sql = query::count_sql(child.dialect, &fk.table, &conds.join(" AND "));
        stmts.push(s);
        found.push(Reference {
            fk: fk.clone(),
            values,
            rows: 0,
        });
    }
    let counts = query::read(&studio.source, studio.timeout_ms, stmts).await?;
    for (r, rows) in found.iter_mut().zip(counts) {
        r.rows = rows
            .first()
            .and_then(|row| row[0].as_deref())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
    }
    Ok(found)
}

/// A value in the row detail, by kind: JSON pretty and foldable,
/// timestamps in UTC (the script adds local time), enums as labels, long
/// text folded.
fn detail_value(kind: Kind, value: Option<&str>) -> String {
    let Some(v) = value else {
        return r#"<span class="null">NULL</span>"#.into();
    };
    match kind {
        Kind::Json => match serde_json::from_str::<serde_json::Value>(v) {
            Ok(json) => {
                let pretty = serde_json::to_string_pretty(&json).unwrap_or_else(|_| v.to_owned());
                let mut tree = String::new();
                json_tree(&json, &mut tree);
                format!(
                    r#"<div class="json-tree">{tree}</div><details class="json-text"><summary>as text ({} characters)</summary><pre class="json">{}</pre></details>"#,
                    v.len(),
                    esc(&pretty)
                )
            }
            Err(_) => format!(r#"<pre class="json">{}</pre>"#, esc(v)),
        },
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

/// A JSON value as nested `<details>`: every object and array folds on its
/// own (the browser does the folding, no script needed).
fn json_tree(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    let (open, close, n, what) = match value {
        Value::Object(m) => ("{", "}", m.len(), "keys"),
        Value::Array(a) => ("[", "]", a.len(), "items"),
        Value::String(s) => {
            out.push_str(&format!(
                r#"<span class="js">{}</span>"#,
                esc(&Value::String(s.clone()).to_string())
            ));
            return;
        }
        Value::Null => {
            out.push_str(r#"<span class="null">null</span>"#);
            return;
        }
        other => {
            out.push_str(&format!(
                r#"<span class="jn">{}</span>"#,
                esc(&other.to_string())
            ));
            return;
        }
    };
    if n == 0 {
        out.push_str(&format!("{open}{close}"));
        return;
    }
    let what = if n == 1 {
        what.trim_end_matches('s')
    } else {
        what
    };
    out.push_str(&format!(
        r#"<details class="jv" open><summary>{open} {n} {what} {close}</summary><ul>"#
    ));
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                out.push_str(&format!(r#"<li><span class="jk">{}</span>: "#, esc(k)));
                json_tree(v, out);
                out.push_str("</li>");
            }
        }
        Value::Array(a) => {
            for v in a {
                out.push_str("<li>");
                json_tree(v, out);
                out.push_str("</li>");
            }
        }
        _ => {}
    }
    out.push_str("</ul></details>");
}
