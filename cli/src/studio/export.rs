//! Export of a filtered view as CSV or JSON, streamed: a task reads the
//! view in keyset batches and sends each as a chunk, so memory holds one
//! batch, not the table. Each batch is its own short read-only transaction
//! (a long export does not hold one snapshot open); rows are in key order.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;

use super::Studio;
use super::html;
use super::query;
use super::table;
use super::view::{self, View};

/// Rows per batch.
const BATCH: usize = 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

/// `GET /t/{table}/export.csv`.
pub async fn csv(
    State(studio): State<Arc<Studio>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    export(studio, name, raw, Format::Csv).await
}

/// `GET /t/{table}/export.json` (one JSON array of objects).
pub async fn json(
    State(studio): State<Arc<Studio>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    export(studio, name, raw, Format::Json).await
}

fn csv_field(v: Option<&str>) -> String {
    match v {
        None => String::new(),
        Some(v) if v.contains([',', '"', '\n', '\r']) || v.is_empty() => {
            format!("\"{}\"", v.replace('"', "\"\""))
        }
        Some(v) => v.to_owned(),
    }
}

async fn export(
    studio: Arc<Studio>,
    name: String,
    raw: Option<String>,
    format: Format,
) -> Response {
    let catalog = studio.catalog();
    let table = match table::find(&studio, &catalog, &name) {
        Ok(t) => t.clone(),
        Err(r) => return r,
    };
    let pairs = view::pairs(raw.as_deref());
    let mut view = match View::parse(&table, &pairs) {
        Ok(v) => v,
        Err(why) => return html::error(&studio.chrome(), StatusCode::BAD_REQUEST, &why),
    };
    view.after = None;
    view.before = None;
    view.desc = false;
    view.size = BATCH;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    tokio::spawn(async move {
        let header = match format {
            Format::Csv => {
                let names: Vec<String> = columns.iter().map(|c| csv_field(Some(c))).collect();
                format!("{}\r\n", names.join(","))
            }
            Format::Json => "[".to_owned(),
        };
        if tx.send(Ok(header)).await.is_err() {
            return;
        }
        let mut first = true;
        loop {
            let (stmt, _) = view::page_stmt(&table, &view, BATCH);
            let rows = match query::read(&studio.source, studio.timeout_ms, vec![stmt]).await {
                Ok(mut r) => r.remove(0),
                Err(e) => {
                    // The status line is gone already: end the body early
                    // with an error, which the client sees as a broken transfer.
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let mut chunk = String::new();
            for row in &rows {
                match format {
                    Format::Csv => {
                        let fields: Vec<String> =
                            row.iter().map(|v| csv_field(v.as_deref())).collect();
                        chunk.push_str(&fields.join(","));
                        chunk.push_str("\r\n");
                    }
                    Format::Json => {
                        let object: serde_json::Map<String, serde_json::Value> = columns
                            .iter()
                            .zip(row)
                            .map(|(c, v)| {
                                (
                                    c.clone(),
                                    v.clone()
                                        .map(serde_json::Value::String)
                                        .unwrap_or(serde_json::Value::Null),
                                )
                            })
                            .collect();
                        if !first {
                            chunk.push(',');
                        }
                        first = false;
                        chunk.push('\n');
                        chunk.push_str(&serde_json::Value::Object(object).to_string());
                    }
                }
            }
            let done = rows.len() < BATCH || table.primary_key.is_empty();
            if let Some(last) = rows.last() {
                view.after = Some(view::key_of(&table, &view, last));
            }
            if tx.send(Ok(chunk)).await.is_err() {
                return; // the client went away
            }
            if done {
                break;
            }
        }
        if format == Format::Json {
            let _ = tx.send(Ok("\n]\n".to_owned())).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed();
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}.{ext}\""),
        )
        .body(Body::from_stream(stream))
        .expect("export response")
}
