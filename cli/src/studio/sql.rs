//! The SQL console: `GET /sql` shows it, `POST /sql` runs one statement.
//!
//! Read-only in every mode, twice over. First the statement is parsed with
//! PostgreSQL's own parser (pg_query) and refused before the server sees
//! it unless it is one plain query: no `SET`/`RESET` (which could turn the
//! transaction read-write, as pgweb's read-only mode learnt), no
//! transaction control, no `COPY`, no data-modifying `WITH`, no
//! `SELECT INTO`, no row locks, and no call to a built-in function with
//! side effects (`set_config`, advisory locks, `pg_terminate_backend`,
//! large objects, file access, `dblink`...). Then what passes runs inside
//! a `READ ONLY` transaction with a `statement_timeout`, which also stops
//! the side effects no parser can see (a user-defined function that writes).
//!
//! On SQLite the statement runs on a connection opened read-only, where no
//! statement can change the file; it must start as a query and be one
//! statement, and SQLite's `sqlite3_stmt_readonly` must confirm that it
//! does not write (`super::sqlite::console`), before it runs, with the
//! same time limit.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pg_query::NodeRef;

use super::Studio;
use super::html::{self, cell, esc};
use super::query;
use super::stmt::{ConsoleError, Dialect};

/// Rows shown at most.
const MAX_ROWS: usize = 1000;

/// Built-in functions with effects outside the query's result (matched on
/// the unqualified name, any schema).
const REFUSED_FUNCTIONS: &[&str] = &[
    "set_config",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_promote",
    "pg_notify",
    "pg_logical_emit_message",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_file_write",
    "nextval",
    "setval",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    // Run a query given as text (through SPI), past every check here.
    "ts_stat",
    "ts_rewrite",
    "pg_log_backend_memory_contexts",
    "pg_import_system_collations",
    "pg_start_backup",
    "pg_stop_backup",
    "txid_current",
    "pg_current_xact_id",
];

/// Function name prefixes refused the same way.
const REFUSED_PREFIXES: &[&str] = &[
    "pg_advisory_",
    "pg_try_advisory_",
    "lo_",
    "dblink",
    "pg_create_",
    "pg_drop_replication",
    "pg_replication_",
    "pg_stat_reset",
    "pg_stat_statements_reset",
    "pg_wal_replay_",
    "pg_copy_",
    "pg_logical_slot_",
    "pg_ls_",
    "pg_file_",
    "pg_backup_",
];

/// Why a statement may not run, or `None` when it is one plain query.
pub fn refusal(sql: &str) -> Option<String> {
    let parsed = match pg_query::parse(sql, 0) {
        Ok(p) => p,
        Err(e) => return Some(format!("not valid SQL: {e}")),
    };
    let stmts = &parsed.protobuf.stmts;
    if stmts.len() != 1 {
        return Some(format!("one statement at a time ({} given)", stmts.len()));
    }
    let top = stmts[0].stmt.as_ref().and_then(|s| s.node.as_ref());
    use pg_query::NodeEnum as N;
    match top {
        Some(N::SelectStmt(s)) => {
            if s.into_clause.is_some() {
                return Some("SELECT INTO creates a table: refused in the console".into());
            }
        }
        Some(N::VariableSetStmt(_)) | Some(N::VariableShowStmt(_)) => {
            return Some(
                "SET, RESET and SHOW are refused: settings could make the session read-write"
                    .into(),
            );
        }
        Some(N::TransactionStmt(_)) => {
            return Some(
                "BEGIN, COMMIT, ROLLBACK and SAVEPOINT are refused: each request is its own \
                 read-only transaction"
                    .into(),
            );
        }
        Some(N::CopyStmt(_)) => return Some("COPY is refused (TO PROGRAM, files)".into()),
        Some(other) => {
            let node = format!("{other:?}");
            return Some(format!(
                "{} statements are not allowed in the read-only console: it runs queries only \
                 (SELECT, VALUES, TABLE, WITH ... SELECT)",
                statement_kind(node.split('(').next().unwrap_or(""))
            ));
        }
        None => return Some("empty statement".into()),
    }
    for (node, _, _, _) in parsed.protobuf.nodes() {
        match node {
            NodeRef::InsertStmt(_)
            | NodeRef::UpdateStmt(_)
            | NodeRef::DeleteStmt(_)
            | NodeRef::MergeStmt(_) => {
                return Some("a data-modifying WITH is refused in the console".into());
            }
            NodeRef::SelectStmt(s) if !s.locking_clause.is_empty() => {
                return Some("FOR UPDATE/SHARE takes row locks: refused in the console".into());
            }
            NodeRef::SelectStmt(s) if s.into_clause.is_some() => {
                return Some("SELECT INTO creates a table: refused in the console".into());
            }
            NodeRef::FuncCall(f) => {
                let name = f
                    .funcname
                    .last()
                    .and_then(|n| match &n.node {
                        Some(N::String(s)) => Some(s.sval.to_ascii_lowercase()),
                        _ => None,
                    })
                    .unwrap_or_default();
                if REFUSED_FUNCTIONS.contains(&name.as_str())
                    || REFUSED_PREFIXES.iter().any(|p| name.starts_with(p))
                {
                    return Some(format!(
                        "function {name}() has side effects: refused in the console"
                    ));
                }
            }
            _ => {}
        }
    }
    None
}

/// The SQL words of a parser node's name, as a person writes the statement:
/// `DeleteStmt` is DELETE, `AlterTableStmt` ALTER TABLE.
fn statement_kind(node: &str) -> String {
    let named = match node {
        "CreateStmt" => "CREATE TABLE",
        "IndexStmt" => "CREATE INDEX",
        "ViewStmt" => "CREATE VIEW",
        "RuleStmt" => "CREATE RULE",
        "CreatedbStmt" => "CREATE DATABASE",
        "DropdbStmt" => "DROP DATABASE",
        "VacuumStmt" => "VACUUM/ANALYZE",
        "" => "these",
        _ => "",
    };
    if !named.is_empty() {
        return named.to_owned();
    }
    let mut words = String::new();
    for c in node.strip_suffix("Stmt").unwrap_or(node).chars() {
        if c.is_ascii_uppercase() && !words.is_empty() {
            words.push(' ');
        }
        words.push(c.to_ascii_uppercase());
    }
    words
}

/// The form's field.
#[derive(serde::Deserialize)]
pub struct Input {
    #[serde(default)]
    sql: String,
}

fn console(studio: &Studio, sql: &str, result: &str) -> String {
    format!(
        r#"<h1>SQL</h1><p class="muted">One query per run, in a read-only transaction with a {} ms statement timeout.</p>
<form method="post" action="sql" id="sql-form"><textarea name="sql" id="sql" spellcheck="false">{}</textarea><p><button type="submit" id="run">Run</button></p></form>{result}"#,
        studio.timeout_ms,
        esc(sql)
    )
}

/// `GET /sql`.
pub async fn form(State(studio): State<Arc<Studio>>) -> Response {
    html::page(&studio.chrome(), "SQL", &console(&studio, "SELECT 1", "")).into_response()
}

/// `POST /sql`.
pub async fn run(State(studio): State<Arc<Studio>>, Form(input): Form<Input>) -> Response {
    let sql = input.sql.trim().trim_end_matches(';').to_owned();
    // SQLite's statements are checked by SQLite itself (`super::sqlite::console`).
    let refused = match studio.source.dialect() {
        Dialect::Postgres => refusal(&sql),
        Dialect::Sqlite => None,
    };
    let failed = |message: String| {
        let body = console(
            &studio,
            &input.sql,
            &format!(r#"<p class="error" id="error">{}</p>"#, esc(&message)),
        );
        (
            StatusCode::BAD_REQUEST,
            html::page(&studio.chrome(), "SQL", &body),
        )
            .into_response()
    };
    if let Some(why) = refused {
        return failed(format!("refused: {why}"));
    }
    let started = std::time::Instant::now();
    let (names, rows) =
        match query::console(&studio.source, studio.timeout_ms, &sql, MAX_ROWS + 1).await {
            Ok(result) => result,
            Err(ConsoleError::Refused(why)) => return failed(format!("refused: {why}")),
            Err(ConsoleError::Failed(e)) => return failed(studio.describe(&e)),
        };
    let elapsed = started.elapsed();
    let mut out = String::new();
    let shown = rows.len().min(MAX_ROWS);
    out.push_str(&format!(
        r#"<p class="ok" id="result-count">{}{} row(s) in {:.1} ms</p>"#,
        if rows.len() > MAX_ROWS { "first " } else { "" },
        shown,
        elapsed.as_secs_f64() * 1000.0
    ));
    if !rows.is_empty() {
        out.push_str(r#"<div class="scroll"><table class="grid" id="result"><thead><tr>"#);
        for name in &names {
            out.push_str(&format!("<th>{}</th>", esc(name)));
        }
        out.push_str("</tr></thead><tbody>");
        for row in rows.iter().take(MAX_ROWS) {
            out.push_str("<tr>");
            for v in row {
                out.push_str(&format!("<td>{}</td>", cell(v.as_deref())));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
    }
    html::page(&studio.chrome(), "SQL", &console(&studio, &input.sql, &out)).into_response()
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn a_refusal_names_the_statement_as_sql_not_as_a_parser_node() {
        for (sql, kind) in [
            ("DELETE FROM users", "DELETE"),
            ("INSERT INTO users DEFAULT VALUES", "INSERT"),
            ("DROP TABLE users", "DROP"),
            ("ALTER TABLE users ADD x int", "ALTER TABLE"),
            ("CREATE TABLE x (a int)", "CREATE TABLE"),
            ("TRUNCATE users", "TRUNCATE"),
        ] {
            let why = refusal(sql).expect(sql);
            assert!(
                why.starts_with(&format!(
                    "{kind} statements are not allowed in the read-only console"
                )),
                "{sql}: {why}"
            );
            assert!(!why.contains("Stmt"), "{sql}: {why}");
        }
    }
}
