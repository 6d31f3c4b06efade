//! How a trace is printed: in `db lint`'s `PATH:LINE: [trace] message`
//! form (the statements that touched an existing relation, rewrote one or
//! failed, then a summary line), in JSON (every statement), and as GitHub
//! annotations.

use super::{Lock, Probe, Trace, Traced, session::strength};
use crate::lint::output::{escape_data, escape_property};

/// Whether a statement is worth a line of text: it took a lock on a
/// relation that existed before its migration, rewrote one, failed, or was
/// sampled (its figures need saying so).
fn notable(t: &Traced) -> bool {
    t.error.is_some() || t.sampled || !t.rewritten.is_empty() || t.locks.iter().any(|l| l.new)
}

/// The message of one statement (after `PATH:LINE: [trace] `).
pub fn message(t: &Traced) -> String {
    let mut parts = Vec::new();
    if t.sampled {
        parts.push("sampled from a second session (short locks can be missed)".to_owned());
    }
    if let Some(e) = &t.error {
        parts.push(format!("failed: {}", one_line(e, 200)));
        return format!("{}: {}", one_line(&t.sql, 70), parts.join("; "));
    }
    // Per relation, the strongest mode this statement took, and the one held
    // since an earlier statement of the transaction when that is stronger.
    let new = strongest(t.locks.iter().filter(|l| l.granted && l.new));
    let held = strongest(t.locks.iter().filter(|l| l.granted && !l.new));
    let taken = describe(new.iter());
    let kept = describe(held.iter().filter(|h| {
        new.iter()
            .find(|n| n.relation == h.relation)
            .is_none_or(|n| strength(h.mode) > strength(n.mode))
    }));
    let waited = describe(strongest(t.locks.iter().filter(|l| !l.granted)).iter());
    if !taken.is_empty() {
        let until = if t.in_transaction {
            " until COMMIT"
        } else {
            ""
        };
        parts.push(format!("takes {taken}{until}"));
    }
    if !kept.is_empty() {
        parts.push(format!("still holds {kept}"));
    }
    if !waited.is_empty() {
        parts.push(format!("waited for {waited}"));
    }
    if taken.is_empty() && kept.is_empty() && waited.is_empty() {
        parts.push("no lock on an existing relation".to_owned());
    }
    parts.push(if t.rewritten.is_empty() {
        "no rewrite".to_owned()
    } else {
        format!("rewrote {}", t.rewritten.join(", "))
    });
    if let Some(scanned) = t.scanned.as_ref().filter(|s| !s.is_empty()) {
        parts.push(format!("scanned {}", scanned.join(", ")));
    }
    parts.push(format!("{:.1} ms", t.duration_ms));
    if !t.probes.is_empty() {
        parts.push(format!(
            "{}, {}",
            who_waits(&t.probes, "readers", |p| Some(p.reader_blocked)),
            who_waits(&t.probes, "writers", |p| p.writer_blocked)
        ));
    }
    format!("{}: {}", one_line(&t.sql, 70), parts.join("; "))
}

/// The strongest mode per relation, tables first; an index's weak locks
/// (any read or write of its table takes them) are left out.
fn strongest<'a>(locks: impl Iterator<Item = &'a Lock>) -> Vec<&'a Lock> {
    let mut best: Vec<&Lock> = Vec::new();
    for l in locks.filter(|l| l.kind != "index" || strength(l.mode) >= strength("SHARE")) {
        match best.iter_mut().find(|b| b.relation == l.relation) {
            Some(b) if strength(l.mode) > strength(b.mode) => *b = l,
            Some(_) => {}
            None => best.push(l),
        }
    }
    best.sort_by_key(|l| (l.kind == "index", l.relation.clone()));
    best
}

/// `SHARE on "users", ACCESS EXCLUSIVE on index "users_email_idx"`.
fn describe<'a>(locks: impl Iterator<Item = &'a &'a Lock>) -> String {
    locks
        .map(|l| {
            let kind = if l.kind == "table" {
                String::new()
            } else {
                format!("{} ", l.kind)
            };
            format!("{} on {kind}{}", l.mode, l.relation)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `writers wait on "users"` or `writers proceed`.
fn who_waits(probes: &[Probe], who: &str, blocked: impl Fn(&Probe) -> Option<bool>) -> String {
    let on: Vec<&str> = probes
        .iter()
        .filter(|p| blocked(p) == Some(true))
        .map(|p| p.relation.as_str())
        .collect();
    if on.is_empty() {
        format!("{who} proceed")
    } else {
        format!("{who} wait on {}", on.join(", "))
    }
}

fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() > max {
        format!("{}...", joined.chars().take(max - 3).collect::<String>())
    } else {
        joined
    }
}

/// The trace as text: one line per notable statement, then a summary.
pub fn text(trace: &Trace) -> String {
    if let Some(note) = &trace.note {
        return format!("Trace: {note}.\n");
    }
    let mut out = String::new();
    for t in trace.statements.iter().filter(|t| notable(t)) {
        out.push_str(&format!("{}:{}: [trace] {}\n", t.file, t.line, message(t)));
    }
    out.push_str(&summary(trace));
    out.push('\n');
    out
}

fn summary(trace: &Trace) -> String {
    let count = |f: &dyn Fn(&Traced) -> bool| trace.statements.iter().filter(|t| f(t)).count();
    let locking = count(&|t| t.locks.iter().any(|l| l.new));
    let rewrites = count(&|t| !t.rewritten.is_empty());
    let waited_on = |who: &str, blocked: &dyn Fn(&Probe) -> bool| {
        let mut on: Vec<&str> = trace
            .statements
            .iter()
            .flat_map(|t| &t.probes)
            .filter(|p| blocked(p))
            .map(|p| p.relation.as_str())
            .collect();
        on.sort_unstable();
        on.dedup();
        if on.is_empty() {
            format!("no {who} waited")
        } else {
            format!("{who}s waited on {}", on.join(", "))
        }
    };
    let failed = if trace.failed() {
        "; a statement FAILED and the rest was not traced"
    } else {
        ""
    };
    format!(
        "Traced {} statement(s) of {} migration(s) on PostgreSQL {} (throwaway database {}, dropped): \
         {locking} took a lock on an existing relation, {rewrites} rewrote a table; while the locks were \
         held, {}, {}{failed}.",
        trace.statements.len(),
        trace.migrations.len(),
        trace.server_version,
        trace.database,
        waited_on("writer", &|p| p.writer_blocked == Some(true)),
        waited_on("reader", &|p| p.reader_blocked),
    )
}

/// The trace as a JSON value (the `trace` member of `db lint --format json`).
pub fn json(trace: &Trace) -> serde_json::Value {
    let statements: Vec<serde_json::Value> = trace
        .statements
        .iter()
        .map(|t| {
            serde_json::json!({
                "file": t.file,
                "line": t.line,
                "migration": t.version,
                "statement": t.sql,
                "in_transaction": t.in_transaction,
                "sampled": t.sampled,
                "duration_ms": (t.duration_ms * 10.0).round() / 10.0,
                "locks": t.locks.iter().map(|l| serde_json::json!({
                    "relation": l.relation,
                    "kind": l.kind,
                    "mode": l.mode,
                    "granted": l.granted,
                    "taken_here": l.new,
                })).collect::<Vec<_>>(),
                "rewritten": t.rewritten,
                "scanned": t.scanned,
                "probes": t.probes.iter().map(|p| serde_json::json!({
                    "relation": p.relation,
                    "reader_blocked": p.reader_blocked,
                    "writer_blocked": p.writer_blocked,
                })).collect::<Vec<_>>(),
                "error": t.error,
                "message": message(t),
            })
        })
        .collect();
    serde_json::json!({
        "server_version": trace.server_version,
        "database": trace.database,
        "migrations": trace.migrations,
        "statements": statements,
        "failed": trace.failed(),
        "note": trace.note,
    })
}

/// GitHub Actions annotations: a notice per notable statement, an error for a failure.
pub fn github(trace: &Trace) -> String {
    let mut out = String::new();
    for t in trace.statements.iter().filter(|t| notable(t)) {
        let level = if t.error.is_some() { "error" } else { "notice" };
        out.push_str(&format!(
            "::{level} file={},line={},title=trace::{}\n",
            escape_property(&t.file),
            t.line,
            escape_data(&message(t)),
        ));
    }
    out
}
