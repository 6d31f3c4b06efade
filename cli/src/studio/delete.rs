//! Deleting a row in write mode: the page first shows the statement, its
//! binds and, per referencing foreign key, how many rows the delete would
//! also delete, set to NULL, or be blocked by; only its "Run it" deletes.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::Studio;
use super::catalog::{Table, quote_ident};
use super::form::{Fields, field};
use super::form::{done, preview};
use super::html::{self, enc, esc};
use super::query;
use super::row::{Reference, referencing};
use super::stmt::{Row, Stmt};
use super::view::key_sql;
use super::write::{addressed, addressed_row, returning};

/// `DELETE` of the row with primary key `key`, returning it.
fn delete_stmt(table: &Table, key: &[String]) -> Stmt {
    let mut stmt = table.stmt();
    let cond = key_sql(&mut stmt, table, key);
    stmt.sql = format!(
        "DELETE FROM {} WHERE {cond}{}",
        quote_ident(&table.name),
        returning(table)
    );
    stmt
}

/// What deleting `row` does to the rows that reference it (one level): per
/// foreign key, the action and how many rows it touches.
async fn cascades(studio: &Studio, table: &Table, row: &Row) -> Result<String, database::Error> {
    let catalog = studio.catalog();
    let mut b = String::from(r#"<h2>What else this changes</h2><ul id="cascades">"#);
    let mut any = false;
    for Reference { fk, rows, .. } in referencing(studio, &catalog, table, row).await? {
        if rows == 0 {
            continue;
        }
        any = true;
        let action = match fk.on_delete.as_str() {
            "c" => "deleted too (ON DELETE CASCADE)",
            "n" => "set to NULL (ON DELETE SET NULL)",
            "d" => "set to their default (ON DELETE SET DEFAULT)",
            _ => "block the delete (ON DELETE RESTRICT / NO ACTION)",
        };
        b.push_str(&format!(
            r#"<li data-table="{0}"><strong>{1}</strong> row(s) of {0} ({2}): {3}</li>"#,
            esc(&fk.table),
            rows,
            esc(&fk.columns.join(", ")),
            action
        ));
    }
    if !any {
        b.push_str("<li>No other rows reference this one.</li>");
    }
    b.push_str("</ul><p class=\"muted\">Counts are one level deep; cascades of cascades are not counted.</p>");
    Ok(b)
}

/// `GET /t/{table}/delete?k=...`: the statement, its binds and the cascades.
pub async fn delete_form(
    State(studio): State<Arc<Studio>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let catalog = studio.catalog();
    let (table, key, row) = match addressed_row(&studio, &catalog, &name, raw.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let note = match cascades(&studio, table, &row).await {
        Ok(n) => n,
        Err(e) => return studio.db_error(&e),
    };
    let action = format!(
        "t/{}/delete?{}",
        enc(&table.name),
        raw.as_deref().unwrap_or("")
    );
    preview(
        &studio,
        &format!("Delete from {}", table.name),
        &action,
        &format!(
            "t/{}/row?{}",
            enc(&table.name),
            raw.as_deref().unwrap_or("")
        ),
        &delete_stmt(table, &key),
        &Vec::new(),
        &note,
    )
}

/// `POST /t/{table}/delete?k=...` with `confirm`.
pub async fn delete(
    State(studio): State<Arc<Studio>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    Form(fields): Form<Fields>,
) -> Response {
    let catalog = studio.catalog();
    let (table, key) = match addressed(&studio, &catalog, &name, raw.as_deref()) {
        Ok(found) => found,
        Err(r) => return r,
    };
    if field(&fields, "confirm") != Some("1") {
        return html::error(
            &studio.chrome(),
            StatusCode::BAD_REQUEST,
            "open the delete page first: it shows what the delete does",
        );
    }
    let stmt = delete_stmt(table, &key);
    match query::write(&studio.source, studio.timeout_ms, stmt.clone()).await {
        Ok(w) if w.rows == 0 => html::error(
            &studio.chrome(),
            StatusCode::NOT_FOUND,
            "the row is gone: nothing was deleted",
        ),
        Ok(_) => done(
            &studio,
            &format!("Deleted from {}", table.name),
            &stmt,
            &format!(
                r#"<a id="back" href="t/{}">Back to {}</a>"#,
                enc(&table.name),
                esc(&table.name)
            ),
        ),
        Err(e) => studio.db_error(&e),
    }
}
