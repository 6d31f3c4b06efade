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
use super::catalog::{Catalog, Column, Dialect, Kind, Table, quote_ident};
use super::html::{self, enc, esc};
use super::query::{self, Row, Stmt};
use super::table::find;
use super::view::{cast, key_from, key_sql, pairs, row_pairs, row_stmt};

pub(super) type Fields = Vec<(String, String)>;

pub(super) fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

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

fn input(column: &Column, value: Option<&str>, placeholder: &str) -> String {
    let id = format!("c-{}", column.name);
    let name = format!("c:{}", column.name);
    let v = value.unwrap_or("");
    let control = match column.kind {
        Kind::Enum => {
            let mut s = format!(r#"<select id="{}" name="{}">"#, esc(&id), esc(&name));
            for l in &column.labels {
                s.push_str(&format!(
                    r#"<option{}>{}</option>"#,
                    if l == v { " selected" } else { "" },
                    esc(l)
                ));
            }
            s.push_str("</select>");
            s
        }
        Kind::Bool => format!(
            r#"<select id="{}" name="{}"><option{}>true</option><option{}>false</option></select>"#,
            esc(&id),
            esc(&name),
            if v == "true" { " selected" } else { "" },
            if v == "false" { " selected" } else { "" }
        ),
        Kind::Json => {
            let pretty = serde_json::from_str::<serde_json::Value>(v)
                .ok()
                .and_then(|j| serde_json::to_string_pretty(&j).ok())
                .unwrap_or_else(|| v.to_owned());
            format!(
                r#"<textarea id="{}" name="{}" data-json placeholder="{}">{}</textarea>"#,
                esc(&id),
                esc(&name),
                esc(placeholder),
                esc(&pretty)
            )
        }
        _ => format!(
            r#"<input type="text" id="{}" name="{}" value="{}" placeholder="{}" size="50">"#,
            esc(&id),
            esc(&name),
            esc(v),
            esc(placeholder)
        ),
    };
    let null = if column.nullable {
        format!(
            r#" <label><input type="checkbox" name="n:{0}" value="1" data-null-for="{1}"{2}> NULL</label>"#,
            esc(&column.name),
            esc(&id),
            if value.is_none() { " checked" } else { "" }
        )
    } else {
        String::new()
    };
    format!("{control}{null}")
}

/// The preview: the SQL, its binds, and a form that posts the same fields with `confirm`.
pub(super) fn preview(
    studio: &Studio,
    title: &str,
    action: &str,
    back: &str,
    stmt: &Stmt,
    fields: &Fields,
    note: &str,
) -> Response {
    let mut b = format!(
        r#"<h1>{}</h1><p>This runs in one transaction:</p><pre class="sql" id="preview-sql">{}</pre><p>Bind values:</p><ol id="binds">"#,
        esc(title),
        esc(&stmt.sql)
    );
    for v in &stmt.binds {
        b.push_str(&match v {
            Some(v) => match v.storage() {
                Some(class) => format!(
                    r#"<li><code>{}</code> <span class="muted">{}</span></li>"#,
                    esc(&v.to_string()),
                    esc(&class)
                ),
                None => format!("<li><code>{}</code></li>", esc(&v.to_string())),
            },
            None => r#"<li><span class="null">NULL</span></li>"#.into(),
        });
    }
    b.push_str("</ol>");
    b.push_str(note);
    b.push_str(&format!(r#"<form method="post" action="{}">"#, esc(action)));
    for (k, v) in fields.iter().filter(|(k, _)| k != "confirm") {
        b.push_str(&format!(
            r#"<input type="hidden" name="{}" value="{}">"#,
            esc(k),
            esc(v)
        ));
    }
    b.push_str(r#"<input type="hidden" name="confirm" value="1"><button type="submit" id="confirm">Run it</button> "#);
    b.push_str(&format!(
        r#"<a id="cancel" href="{}">Cancel</a></form>"#,
        esc(back)
    ));
    html::page(&studio.chrome(), title, &b).into_response()
}

pub(super) fn done(studio: &Studio, title: &str, stmt: &Stmt, link: &str) -> Response {
    let b = format!(
        r#"<h1>{}</h1><p class="ok" id="done">Done.</p><pre class="sql">{}</pre><p>{link}</p>"#,
        esc(title),
        esc(&stmt.sql)
    );
    html::page(&studio.chrome(), title, &b).into_response()
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
    let mut b = format!(
        r#"<h1>Edit {} <span class="muted">{}</span></h1><form method="post" action="/t/{}/edit?{}" id="edit-form"><dl class="detail">"#,
        esc(&table.name),
        esc(&key.join(", ")),
        enc(&table.name),
        esc(&k)
    );
    for (c, v) in table.columns.iter().zip(&row) {
        if !c.writable || table.primary_key.contains(&c.name) {
            continue;
        }
        b.push_str(&format!(
            r#"<dt><label for="c-{0}">{0}</label><br><span class="muted">{1}</span></dt><dd>{2}<input type="hidden" name="o:{0}" value="{3}"><input type="hidden" name="on:{0}" value="{4}"></dd>"#,
            esc(&c.name),
            esc(&c.type_name),
            input(c, v.as_deref(), ""),
            esc(v.as_deref().unwrap_or("")),
            if v.is_none() { "1" } else { "" }
        ));
    }
    b.push_str(
        r#"</dl><p><button type="submit" id="preview">Preview the change</button></p></form>"#,
    );
    html::page(&studio.chrome(), "Edit", &b).into_response()
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
    let mut stmt = Stmt::on(table);
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
            Err(e) => return studio.db_error(&e),
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
        "/t/{}/edit?{}",
        enc(&table.name),
        raw.as_deref().unwrap_or("")
    );
    if field(&fields, "confirm") != Some("1") {
        return preview(
            &studio,
            &format!("Update {}", table.name),
            &action,
            &format!(
                "/t/{}/row?{}",
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
                r#"<a id="back" href="/t/{}/row?{}">Back to the row</a>"#,
                enc(&table.name),
                esc(&html::query(&key_pairs(&key)))
            );
            done(&studio, &format!("Updated {}", table.name), &stmt, &link)
        }
        Err(e) => studio.db_error(&e),
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
    let mut b = format!(
        r#"<h1>Insert into {}</h1><form method="post" action="/t/{}/new" id="insert-form"><dl class="detail">"#,
        esc(&table.name),
        enc(&table.name)
    );
    for c in table.columns.iter().filter(|c| c.writable) {
        let default = c
            .default
            .clone()
            .or_else(|| c.nullable.then(|| "NULL".to_owned()));
        let use_default = match &default {
            Some(d) => format!(
                r#" <label><input type="checkbox" name="d:{}" value="1" checked> default <code>{}</code></label>"#,
                esc(&c.name),
                esc(d)
            ),
            None => String::new(),
        };
        // SQLite stores the crate's ids as 16-byte BLOBs with no default: a
        // fresh (time-ordered) UUID is offered, as PostgreSQL's default would make.
        let fresh_id = (table.dialect == Dialect::Sqlite
            && c.kind == Kind::Bytes
            && default.is_none()
            && table.primary_key.contains(&c.name))
        .then(|| uuid::Uuid::now_v7().to_string());
        b.push_str(&format!(
            r#"<dt><label for="c-{0}">{0}</label><br><span class="muted">{1}</span></dt><dd>{2}{3}</dd>"#,
            esc(&c.name),
            esc(&c.type_name),
            input(
                c,
                Some(fresh_id.as_deref().unwrap_or("")),
                default.as_deref().unwrap_or("")
            ),
            use_default
        ));
    }
    b.push_str(
        r#"</dl><p><button type="submit" id="preview">Preview the insert</button></p></form>"#,
    );
    html::page(&studio.chrome(), "Insert", &b).into_response()
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
    let mut stmt = Stmt::on(table);
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
            Err(e) => return studio.db_error(&e),
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
    let action = format!("/t/{}/new", enc(&table.name));
    if field(&fields, "confirm") != Some("1") {
        return preview(
            &studio,
            &format!("Insert into {}", table.name),
            &action,
            &format!("/t/{}", enc(&table.name)),
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
                    r#"<a id="back" href="/t/{}/row?{}">The new row</a>"#,
                    enc(&table.name),
                    esc(&html::query(&key))
                ),
                _ => format!(
                    r#"<a id="back" href="/t/{}">The table</a>"#,
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
        Err(e) => studio.db_error(&e),
    }
}
