//! Write mode (`db studio --write`): edit a row, insert one, delete one.
//!
//! Every change goes through two steps: the form posts without `confirm`
//! and gets back the exact SQL with its bind values; the page's "Run"
//! button posts the same fields with `confirm=1`, and only then does the
//! statement run, in one transaction. Values travel as bind parameters,
//! cast to the column's type by the server; JSON is checked before it is
//! sent; errors come back as the crate's typed errors (which constraint,
//! which field).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use database::error::InvalidInput;

use super::Studio;
use super::catalog::{Catalog, Column, Kind, Table, quote_ident};
use super::form::{
    Fields, done, edit_failed, edit_form_html, editable, field, insert_failed, insert_form_html,
    preview,
};
use super::html::{self, enc, esc};
use super::query;
use super::stmt::{Dialect, Row};
use super::table::find;
use super::view::{cast, key_from, key_sql, pairs, row_pairs, row_stmt};

pub(super) fn refuse_read_only(studio: &Studio) -> Option<Response> {
    (!studio.write).then(|| {
        html::error(
            &studio.chrome(),
            StatusCode::FORBIDDEN,
            "read-only: start `db studio --write` to edit, insert or delete",
        )
    })
}

/// The table and row a write-mode request names (`/t/{name}/...?k=...`), or
/// the page that refuses it: 403 in read-only mode, 404 for a table not in
/// the catalog, 400 for a key that does not name one row.
#[allow(clippy::result_large_err)]
pub(super) fn addressed<'c>(
    studio: &Studio,
    catalog: &'c Catalog,
    name: &str,
    raw: Option<&str>,
) -> Result<(&'c Table, Vec<String>), Response> {
    if let Some(r) = refuse_read_only(studio) {
        return Err(r);
    }
    let table = find(studio, catalog, name)?;
    let key = key_from(table, &pairs(raw))
        .map_err(|why| html::error(&studio.chrome(), StatusCode::BAD_REQUEST, &why))?;
    Ok((table, key))
}

/// The value a form gives for `column`: `None` is NULL.
fn form_value(
    fields: &Fields,
    table: &Table,
    column: &Column,
) -> Result<Option<String>, database::Error> {
    if field(fields, &format!("n:{}", column.name)).is_some() {
        return Ok(None);
    }
    let v = field(fields, &format!("c:{}", column.name))
        .unwrap_or("")
        .to_owned();
    if column.kind == Kind::Json
        && let Err(e) = serde_json::from_str::<serde_json::Value>(&v)
    {
        return Err(database::Error::Invalid(InvalidInput::field(
            column.name.clone(),
            "json",
            format!("{} is not valid JSON: {e}", column.name),
        )));
    }
    if let Err(why) = table.value(column, &v) {
        return Err(database::Error::Invalid(InvalidInput::field(
            column.name.clone(),
            "type",
            why,
        )));
    }
    if column.kind == Kind::Enum && !column.labels.contains(&v) {
        return Err(database::Error::Invalid(InvalidInput::field(
            column.name.clone(),
            "enum",
            format!(
                "{} must be one of {}",
                column.name,
                column.labels.join(", ")
            ),
        )));
    }
    Ok(Some(v))
}

/// `RETURNING` the changed row on PostgreSQL (a write then says which row
/// it touched); nothing on SQLite, whose writes report a count.
pub(super) fn returning(table: &Table) -> String {
    match table.dialect {
        Dialect::Postgres => format!(" RETURNING {}", query::select_list(table)),
        Dialect::Sqlite => String::new(),
    }
}

/// `k=...` pairs of a key.
fn key_pairs(key: &[String]) -> Vec<(String, String)> {
    key.iter().map(|k| ("k".to_owned(), k.clone())).collect()
}

/// `addressed`, and the row itself: the page refusing it also when there
/// is no such row (404) or it cannot be read.
pub(super) async fn addressed_row<'c>(
    studio: &Studio,
    catalog: &'c Catalog,
    name: &str,
    raw: Option<&str>,
) -> Result<(&'c Table, Vec<String>, Row), Response> {
    let (table, key) = addressed(studio, catalog, name, raw)?;
    let read = query::read(
        &studio.source,
        studio.timeout_ms,
        vec![row_stmt(table, &key)],
    )
    .await;
    match read.map(|mut r| r.remove(0).pop()) {
        Ok(Some(row)) => Ok((table, key, row)),
        Ok(None) => Err(html::error(
            &studio.chrome(),
            StatusCode::NOT_FOUND,
            "no such row",
        )),
        Err(e) => Err(studio.db_error(&e)),
    }
}

/// `GET /t/{table}/edit?k=...`.
pub async fn edit_form(
    State(studio): State<Arc<Studio>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let catalog = studio.catalog();
    let (table, key, row) = match addressed_row(&studio, &catalog, &name, raw.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let k = html::query(&row_pairs(table, &row));
    let values = table
        .columns
        .iter()
        .zip(row)
        .filter(|(c, _)| editable(table, c))
        .map(|(c, v)| (c, v.clone(), Some(v)))
        .collect();
    html::page(
        &studio.chrome(),
        "Edit",
        &edit_form_html(table, &key, &k, values),
    )
    .into_response()
}

/// `POST /t/{table}/edit?k=...`: preview, or run with `confirm`.
pub async fn edit(
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
    for (k, _) in &fields {
        if let Some(col) = k.split_once(':').map(|(_, c)| c)
            && table.column(col).is_none()
        {
            return html::error(
                &studio.chrome(),
                StatusCode::BAD_REQUEST,
                &format!("unknown column {col:?} in table {}", table.name),
            );
        }
    }
    let mut stmt = table.stmt();
    let mut sets = Vec::new();
    for c in table
        .columns
        .iter()
        .filter(|c| c.writable && !table.primary_key.contains(&c.name))
    {
        if field(&fields, &format!("c:{}", c.name)).is_none()
            && field(&fields, &format!("n:{}", c.name)).is_none()
        {
            continue;
        }
        let value = match form_value(&fields, table, c) {
            Ok(v) => v,
            Err(e) => return edit_failed(&studio, table, &key, raw.as_deref(), &fields, &e),
        };
        let was_null = field(&fields, &format!("on:{}", c.name)) == Some("1");
        let original = if was_null {
            None
        } else {
            field(&fields, &format!("o:{}", c.name)).map(str::to_owned)
        };
        let unchanged = match (&value, &original) {
            (Some(a), Some(b)) if c.kind == Kind::Json => {
                serde_json::from_str::<serde_json::Value>(a).ok()
                    == serde_json::from_str::<serde_json::Value>(b).ok()
            }
            (a, b) => a == b,
        };
        if field(&fields, &format!("o:{}", c.name)).is_some() && unchanged {
            continue;
        }
        sets.push(format!(
            "{} = {}",
            quote_ident(&c.name),
            cast(&mut stmt, table, &c.name, value)
        ));
    }
    if sets.is_empty() {
        return html::error(&studio.chrome(), StatusCode::BAD_REQUEST, "nothing changed");
    }
    let cond = key_sql(&mut stmt, table, &key);
    stmt.sql = format!(
        "UPDATE {} SET {} WHERE {cond}{}",
        quote_ident(&table.name),
        sets.join(", "),
        returning(table)
    );
    let action = format!(
        "t/{}/edit?{}",
        enc(&table.name),
        raw.as_deref().unwrap_or("")
    );
    if field(&fields, "confirm") != Some("1") {
        return preview(
            &studio,
            &format!("Update {}", table.name),
            &action,
            &format!(
                "t/{}/row?{}",
                enc(&table.name),
                raw.as_deref().unwrap_or("")
            ),
            &stmt,
            &fields,
            "",
        );
    }
    match query::write(&studio.source, studio.timeout_ms, stmt.clone()).await {
        Ok(w) if w.rows == 0 => html::error(
            &studio.chrome(),
            StatusCode::NOT_FOUND,
            "the row is gone: nothing was changed",
        ),
        Ok(_) => {
            // The key is not editable: the row is still where it was.
            let link = format!(
                r#"<a id="back" href="t/{}/row?{}">Back to the row</a>"#,
                enc(&table.name),
                esc(&html::query(&key_pairs(&key)))
            );
            done(&studio, &format!("Updated {}", table.name), &stmt, &link)
        }
        Err(e) => edit_failed(&studio, table, &key, raw.as_deref(), &fields, &e),
    }
}

/// `GET /t/{table}/new`.
pub async fn insert_form(State(studio): State<Arc<Studio>>, Path(name): Path<String>) -> Response {
    if let Some(r) = refuse_read_only(&studio) {
        return r;
    }
    let catalog = studio.catalog();
    let table = match find(&studio, &catalog, &name) {
        Ok(t) => t,
        Err(r) => return r,
    };
    html::page(&studio.chrome(), "Insert", &insert_form_html(table, None)).into_response()
}

/// `POST /t/{table}/new`: preview, or run with `confirm`.
pub async fn insert(
    State(studio): State<Arc<Studio>>,
    Path(name): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Some(r) = refuse_read_only(&studio) {
        return r;
    }
    let catalog = studio.catalog();
    let table = match find(&studio, &catalog, &name) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut stmt = table.stmt();
    let (mut cols, mut vals) = (Vec::new(), Vec::new());
    let mut given: Vec<(String, String)> = Vec::new();
    for c in table.columns.iter().filter(|c| c.writable) {
        if field(&fields, &format!("d:{}", c.name)).is_some()
            || (field(&fields, &format!("c:{}", c.name)).is_none()
                && field(&fields, &format!("n:{}", c.name)).is_none())
        {
            continue;
        }
        let value = match form_value(&fields, table, c) {
            Ok(v) => v,
            Err(e) => return insert_failed(&studio, table, &fields, &e),
        };
        if let Some(v) = &value {
            given.push((c.name.clone(), v.clone()));
        }
        cols.push(quote_ident(&c.name));
        vals.push(cast(&mut stmt, table, &c.name, value));
    }
    stmt.sql = if cols.is_empty() {
        format!(
            "INSERT INTO {} DEFAULT VALUES{}",
            quote_ident(&table.name),
            returning(table)
        )
    } else {
        format!(
            "INSERT INTO {} ({}) VALUES ({}){}",
            quote_ident(&table.name),
            cols.join(", "),
            vals.join(", "),
            returning(table)
        )
    };
    let action = format!("t/{}/new", enc(&table.name));
    if field(&fields, "confirm") != Some("1") {
        return preview(
            &studio,
            &format!("Insert into {}", table.name),
            &action,
            &format!("t/{}", enc(&table.name)),
            &stmt,
            &fields,
            "",
        );
    }
    // The new row's key: from `RETURNING` (PostgreSQL), else from the form
    // when it gave every key column.
    let given_key: Option<Vec<String>> = table
        .primary_key
        .iter()
        .map(|k| given.iter().find(|(c, _)| c == k).map(|(_, v)| v.clone()))
        .collect();
    match query::write(&studio.source, studio.timeout_ms, stmt.clone()).await {
        Ok(w) => {
            let key = match w.returned.first() {
                Some(row) => Some(row_pairs(table, row)),
                None => given_key.map(|k| key_pairs(&k)),
            };
            let link = match key {
                Some(key) if !table.primary_key.is_empty() => format!(
                    r#"<a id="back" href="t/{}/row?{}">The new row</a>"#,
                    enc(&table.name),
                    esc(&html::query(&key))
                ),
                _ => format!(
                    r#"<a id="back" href="t/{}">The table</a>"#,
                    enc(&table.name)
                ),
            };
            done(
                &studio,
                &format!("Inserted into {}", table.name),
                &stmt,
                &link,
            )
        }
        Err(e) => insert_failed(&studio, table, &fields, &e),
    }
}
