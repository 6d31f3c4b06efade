//! The write mode's pages: the edit and insert forms (empty, from the row,
//! or as a failed write left them, so nothing typed is lost), the preview
//! of a change and the page that says it was done.

use axum::response::{IntoResponse, Response};

use super::Studio;
use super::catalog::{Column, Kind, Table};
use super::html::{self, enc, esc};
use super::stmt::{Dialect, Stmt};

/// A posted form's fields, in the order they came.
pub(super) type Fields = Vec<(String, String)>;

/// The value of the posted field `name`.
pub(super) fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
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

/// Whether the edit form offers `column` (the key is not editable).
pub(super) fn editable(table: &Table, column: &Column) -> bool {
    column.writable && !table.primary_key.contains(&column.name)
}

/// A column of the edit form: the value to show (`None`: NULL) and, when
/// known, the value it had (`Some(None)`: NULL).
pub(super) type Field<'c> = (&'c Column, Option<String>, Option<Option<String>>);

/// The edit form of the row `key` (`k`: its query string): each column with
/// the value to show and, when known, the value it had (unchanged columns
/// are left out of the `UPDATE`).
pub(super) fn edit_form_html(
    table: &Table,
    key: &[String],
    k: &str,
    values: Vec<Field<'_>>,
) -> String {
    let mut b = format!(
        r#"<h1>Edit {} <span class="muted">{}</span></h1><form method="post" action="t/{}/edit?{}" id="edit-form"><dl class="detail">"#,
        esc(&table.name),
        esc(&key.join(", ")),
        enc(&table.name),
        esc(k)
    );
    for (c, shown, original) in values {
        let original = match original {
            Some(v) => format!(
                r#"<input type="hidden" name="o:{0}" value="{1}"><input type="hidden" name="on:{0}" value="{2}">"#,
                esc(&c.name),
                esc(v.as_deref().unwrap_or("")),
                if v.is_none() { "1" } else { "" }
            ),
            None => String::new(),
        };
        b.push_str(&format!(
            r#"<dt><label for="c-{0}">{0}</label><br><span class="muted">{1}</span></dt><dd>{2}{3}</dd>"#,
            esc(&c.name),
            esc(&c.type_name),
            input(c, shown.as_deref(), ""),
            original
        ));
    }
    b.push_str(
        r#"</dl><p><button type="submit" id="preview">Preview the change</button></p></form>"#,
    );
    b
}

/// The page of an edit that failed (refused input, or the server's error):
/// the error, and the form again with what was typed, so nothing is lost.
pub(super) fn edit_failed(
    studio: &Studio,
    table: &Table,
    key: &[String],
    raw: Option<&str>,
    fields: &Fields,
    e: &database::Error,
) -> Response {
    let values = table
        .columns
        .iter()
        .filter(|c| editable(table, c))
        .filter(|c| {
            ["c", "n", "o"]
                .iter()
                .any(|p| field(fields, &format!("{p}:{}", c.name)).is_some())
        })
        .map(|c| {
            let original = field(fields, &format!("o:{}", c.name)).map(|o| {
                (field(fields, &format!("on:{}", c.name)) != Some("1")).then(|| o.to_owned())
            });
            let shown = if field(fields, &format!("n:{}", c.name)).is_some() {
                None
            } else {
                field(fields, &format!("c:{}", c.name))
                    .map(str::to_owned)
                    .or_else(|| original.clone().flatten())
            };
            (c, shown, original)
        })
        .collect();
    let k = raw.unwrap_or("");
    let back = format!(
        r#"<a id="back" href="t/{}/row?{}">the row as it is</a>"#,
        enc(&table.name),
        esc(k)
    );
    failed_write(studio, e, &back, &edit_form_html(table, key, k, values))
}

/// An error page that keeps the user's input: the error, a way back, and
/// `form` (the form they posted, filled in as they left it).
fn failed_write(studio: &Studio, e: &database::Error, back: &str, form: &str) -> Response {
    let body = format!(
        r#"<p class="error" id="error">{}</p><p id="kept">Nothing was written. Your input is kept below: correct it and preview again, or go back to {back}.</p>{form}"#,
        esc(&studio.describe(e))
    );
    (
        studio.status_of(e),
        html::page(&studio.chrome(), "Not written", &body),
    )
        .into_response()
}

/// The insert form of `table`: empty (defaults ticked), or as `kept` left
/// it when an insert failed.
pub(super) fn insert_form_html(table: &Table, kept: Option<&Fields>) -> String {
    let mut b = format!(
        r#"<h1>Insert into {}</h1><form method="post" action="t/{}/new" id="insert-form"><dl class="detail">"#,
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
                r#" <label><input type="checkbox" name="d:{}" value="1"{}> default <code>{}</code></label>"#,
                esc(&c.name),
                match kept {
                    Some(fields) if field(fields, &format!("d:{}", c.name)).is_none() => "",
                    _ => " checked",
                },
                esc(d)
            ),
            None => String::new(),
        };
        let value = match kept {
            Some(fields) if field(fields, &format!("n:{}", c.name)).is_some() => None,
            Some(fields) => Some(
                field(fields, &format!("c:{}", c.name))
                    .unwrap_or("")
                    .to_owned(),
            ),
            // SQLite stores the crate's ids as 16-byte BLOBs with no default: a
            // fresh (time-ordered) UUID is offered, as PostgreSQL's default would make.
            None if table.dialect == Dialect::Sqlite
                && c.kind == Kind::Bytes
                && default.is_none()
                && table.primary_key.contains(&c.name) =>
            {
                Some(uuid::Uuid::now_v7().to_string())
            }
            None => Some(String::new()),
        };
        b.push_str(&format!(
            r#"<dt><label for="c-{0}">{0}</label><br><span class="muted">{1}</span></dt><dd>{2}{3}</dd>"#,
            esc(&c.name),
            esc(&c.type_name),
            input(c, value.as_deref(), default.as_deref().unwrap_or("")),
            use_default
        ));
    }
    b.push_str(
        r#"</dl><p><button type="submit" id="preview">Preview the insert</button></p></form>"#,
    );
    b
}

/// The page of an insert that failed, with the form as it was posted.
pub(super) fn insert_failed(
    studio: &Studio,
    table: &Table,
    fields: &Fields,
    e: &database::Error,
) -> Response {
    let back = format!(
        r#"<a id="back" href="t/{}">the table</a>"#,
        enc(&table.name)
    );
    failed_write(studio, e, &back, &insert_form_html(table, Some(fields)))
}
