//! The page templates: one layout (`assets/layout.html`) and escaping
//! helpers. Every piece of data that reaches a page goes through `esc`
//! (text and attributes) or `enc` (URL components). Links are relative
//! (`t/users`, `sql`): the layout's `<base>` puts them under the studio's
//! path prefix.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

const LAYOUT: &str = include_str!("assets/layout.html");

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a URL query component.
pub fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A query string from pairs (`a=1&b=2`), encoded.
pub fn query(pairs: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// What the layout shows in its header, and where the studio's pages live.
pub struct Chrome {
    pub write: bool,
    /// The studio's random path prefix (`/3f9a...`): the page's `<base>`,
    /// against which every link of every page is written (relative).
    pub base: String,
}

/// A whole page: `title` (escaped here) and `body` (already HTML).
pub fn page(chrome: &Chrome, title: &str, body: &str) -> Html<String> {
    let mode = if chrome.write {
        r#"<span class="mode write" title="started with --write">write mode</span>"#
    } else {
        r#"<span class="mode" title="start with --write to edit">read-only</span>"#
    };
    Html(
        LAYOUT
            .replace("{{base}}", &esc(&chrome.base))
            .replace("{{title}}", &esc(title))
            .replace("{{mode}}", mode)
            .replace("{{body}}", body),
    )
}

/// An error page with `status`.
pub fn error(chrome: &Chrome, status: StatusCode, message: &str) -> Response {
    let body = format!(
        r#"<h1>{}</h1><p class="error" id="error">{}</p><p><a href="./">All tables</a></p>"#,
        status.as_u16(),
        esc(message)
    );
    (
        status,
        page(chrome, status.canonical_reason().unwrap_or("error"), &body),
    )
        .into_response()
}

/// Long values are folded: the first `FOLD_AT` characters show, the rest opens on click.
pub const FOLD_AT: usize = 80;

/// A cell's text for the grid: NULL marked, long text cut.
pub fn cell(value: Option<&str>) -> String {
    match value {
        None => r#"<span class="null">NULL</span>"#.into(),
        Some(v) if v.chars().count() > FOLD_AT => {
            let head: String = v.chars().take(FOLD_AT).collect();
            format!(r#"<span title="{}">{}…</span>"#, esc(v), esc(&head))
        }
        Some(v) => esc(v),
    }
}
