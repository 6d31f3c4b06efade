//! Code inside `DO` blocks: its PL/pgSQL body is parsed with PostgreSQL's
//! own PL/pgSQL parser (through pg_query, which takes a `CREATE FUNCTION`,
//! so the body is wrapped in one) and every SQL statement in it, at any
//! depth of IF and LOOP, is linted as if it stood in the file at its own
//! line. `EXECUTE` of a string constant is the statement it spells;
//! `EXECUTE` of a string built at run time (`format(...)`, `||`) cannot be
//! checked, and a `dynamic-sql` warning says so rather than passing it.
//!
//! A block runs as one unit inside a transaction whatever the migration's
//! mode: what cannot run in a transaction block fails there, and its locks
//! last until it ends.

use pg_query::NodeEnum;
use pg_query::protobuf::DoStmt;
use serde_json::Value;

use super::{Pass, Rule};

/// A statement found in a PL/pgSQL body.
enum Inner {
    /// SQL known before the block runs (a plain statement, or `EXECUTE 'constant'`).
    Sql(String),
    /// `EXECUTE` of an expression computed at run time.
    Dynamic(String),
}

impl Pass<'_> {
    pub(super) fn check_do(&mut self, d: &DoStmt) {
        let mut body = None;
        let mut language = "plpgsql".to_owned();
        for arg in &d.args {
            let Some(NodeEnum::DefElem(e)) = arg.node.as_ref() else {
                continue;
            };
            let value = e.arg.as_deref().and_then(super::ast::sval);
            match (e.defname.as_str(), value) {
                ("as", Some(v)) => body = Some((v.to_owned(), e.arg_location)),
                ("language", Some(v)) => language = v.to_lowercase(),
                _ => {}
            }
        }
        let Some((body, at)) = body else {
            return;
        };
        if language != "plpgsql" {
            self.report(
                Rule::DynamicSql,
                format!("DO block in language {language}: lint reads PL/pgSQL only"),
            );
            return;
        }
        let first_line = self.body_first_line(at);
        let wrapped = format!(
            "CREATE FUNCTION lint_do_block() RETURNS void LANGUAGE plpgsql AS $lint_do_body${body}$lint_do_body$"
        );
        let tree = match pg_query::parse_plpgsql(&wrapped) {
            Ok(tree) => tree,
            Err(e) => {
                self.report(Rule::Syntax, format!("in the DO block: {e}"));
                return;
            }
        };
        let mut inner = Vec::new();
        collect(&tree, &mut inner);
        // serde_json orders an object's keys, not the body's statements: sort by line.
        inner.sort_by_key(|(line, _)| *line);
        let (outer_line, outer_in_transaction) = (self.line, self.in_transaction);
        let outer_locks = self.locked_tables.clone();
        self.in_transaction = true;
        for (lineno, statement) in inner {
            self.line = first_line + lineno.saturating_sub(1);
            match statement {
                Inner::Dynamic(expr) => self.report(
                    Rule::DynamicSql,
                    format!(
                        "EXECUTE {} in a DO block: built at run time, not checked",
                        shorten(&expr)
                    ),
                ),
                Inner::Sql(sql) => self.check_inner_sql(&sql),
            }
        }
        self.line = outer_line;
        self.in_transaction = outer_in_transaction;
        if !outer_in_transaction {
            // The block's own transaction ended with it, and its locks.
            self.locked_tables = outer_locks;
        }
    }

    fn check_inner_sql(&mut self, sql: &str) {
        let parsed = match pg_query::parse(sql, 0) {
            Ok(p) => p,
            Err(e) => {
                self.report(Rule::Syntax, format!("in the DO block: {e}"));
                return;
            }
        };
        for raw in &parsed.protobuf.stmts {
            if let Some(stmt) = raw.stmt.as_deref()
                && let Some(node) = stmt.node.as_ref()
            {
                self.check(stmt, node);
                self.after(node);
            }
        }
    }

    /// The file line of the body's first line: the body starts right after
    /// the opening quote (`$tag$` or `'`) at byte `at` of the file.
    fn body_first_line(&self, at: i32) -> usize {
        let Ok(at) = usize::try_from(at) else {
            return self.line;
        };
        let rest = self.sql.get(at..).unwrap_or_default();
        let open = match rest.strip_prefix('$') {
            Some(tag) => tag.find('$').map_or(0, |p| p + 2),
            None => 1,
        };
        super::line_of(self.sql, at + open)
    }
}

/// The statements of a PL/pgSQL tree (pg_query's JSON), with their body lines.
fn collect(value: &Value, out: &mut Vec<(usize, Inner)>) {
    match value {
        Value::Object(map) => {
            for (key, node) in map {
                let line = node.get("lineno").and_then(Value::as_u64).unwrap_or(1) as usize;
                let expr = |field: &str| {
                    node.get(field)
                        .and_then(|e| e.get("PLpgSQL_expr"))
                        .and_then(|e| e.get("query"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                match key.as_str() {
                    "PLpgSQL_stmt_execsql" => {
                        if let Some(sql) = expr("sqlstmt") {
                            out.push((line, Inner::Sql(sql)));
                        }
                    }
                    "PLpgSQL_stmt_dynexecute" | "PLpgSQL_stmt_dynfors" => {
                        if let Some(query) = expr("query") {
                            out.push((
                                line,
                                constant_text(&query).map_or(Inner::Dynamic(query), Inner::Sql),
                            ));
                        }
                    }
                    _ => {}
                }
                collect(node, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
        _ => {}
    }
}

/// The text of a string constant expression (`'ALTER TABLE ...'`, `$x$...$x$`).
fn constant_text(expr: &str) -> Option<String> {
    let parsed = pg_query::parse(&format!("SELECT {expr}"), 0).ok()?;
    let stmt = parsed.protobuf.stmts.first()?.stmt.as_deref()?;
    let NodeEnum::SelectStmt(select) = stmt.node.as_ref()? else {
        return None;
    };
    let [target] = select.target_list.as_slice() else {
        return None;
    };
    let NodeEnum::ResTarget(target) = target.node.as_ref()? else {
        return None;
    };
    let mut value = target.val.as_deref()?;
    if let Some(NodeEnum::TypeCast(cast)) = value.node.as_ref() {
        value = cast.arg.as_deref()?;
    }
    match value.node.as_ref()? {
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            pg_query::protobuf::a_const::Val::Sval(s) => Some(s.sval.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// An expression cut to one short line, for a message.
fn shorten(expr: &str) -> String {
    let one_line = expr.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 60 {
        format!("{}...", one_line.chars().take(57).collect::<String>())
    } else {
        one_line
    }
}
