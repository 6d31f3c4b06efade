//! sqlcommenter comments, opt-in (`DB_SQLCOMMENTER=true`): every statement
//! run under a context with a trace parent (`Ctx::trace_parent`) ends with
//! `/*traceparent='00-<trace id>-<parent id>-<flags>'*/`, so the server's
//! own views of it (`pg_stat_activity.query`, the statement in its logs,
//! `auto_explain`, `log_min_duration_statement`) name the trace that sent
//! it. `pg_stat_statements` ignores comments: its rows are not split.
//!
//! The price is the statement cache: SQL text that changes with every
//! request cannot be prepared once and reused, so in direct mode a
//! commented statement is prepared on every run (one more round trip) and
//! a statement under a context is no longer sent in one flight with its
//! `BEGIN` and `COMMIT`. Pooler mode prepares nothing by name, so it pays
//! only the longer text. BENCHMARKS.md has the measurement.
//!
//! The trace parent is a value the caller hands over: the incoming
//! request's `traceparent` header, or its OpenTelemetry span's ids
//! (`TraceParent::from_ids`). The library depends on no OpenTelemetry crate.

use std::fmt;
use std::sync::Arc;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

use crate::error::{Error, Result};

/// A W3C trace context `traceparent`: version 00, a trace id, a parent id
/// and the trace flags, in lowercase hex. Validated when built, so what
/// reaches SQL text is hex and dashes only.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceParent(Arc<str>);

impl TraceParent {
    /// Parses a `traceparent` header. Refuses with `Error::Invalid` (field
    /// `traceparent`) anything but four dash-separated lowercase hex fields
    /// of 2, 32, 16 and 2 digits, version `ff`, and an all-zero trace or
    /// parent id, as the W3C recommendation does. A later version's header
    /// is read by its first four fields, as the recommendation asks.
    pub fn parse(header: &str) -> Result<TraceParent> {
        let invalid = |why: &str| {
            Error::invalid(
                "traceparent",
                "format",
                format!("{why}: expected 00-<32 hex digits>-<16 hex digits>-<2 hex digits>"),
            )
        };
        let header = header.trim();
        let version = header.get(..2).ok_or_else(|| invalid("too short"))?;
        let fields = match version {
            "00" if header.len() != 55 => return Err(invalid("version 00 is 55 characters")),
            "ff" => return Err(invalid("version ff is not valid")),
            "00" => header,
            // A later version may append fields after a dash.
            _ if header.len() > 55 && header.as_bytes()[55] != b'-' => {
                return Err(invalid("a later version's fields follow a dash"));
            }
            _ => header.get(..55).ok_or_else(|| invalid("too short"))?,
        };
        let parts: Vec<&str> = fields.split('-').collect();
        let lowercase_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let [v, trace, parent, flags] = parts[..] else {
            return Err(invalid("four fields"));
        };
        if [v, trace, parent, flags]
            .iter()
            .zip([2, 32, 16, 2])
            .any(|(part, len)| part.len() != len || !lowercase_hex(part))
        {
            return Err(invalid("not lowercase hex of the right lengths"));
        }
        if trace.bytes().all(|b| b == b'0') || parent.bytes().all(|b| b == b'0') {
            return Err(invalid("an all-zero id"));
        }
        Ok(TraceParent(Arc::from(format!(
            "00-{trace}-{parent}-{flags}"
        ))))
    }

    /// The trace parent of a span with these ids (an OpenTelemetry
    /// `SpanContext`'s `trace_id()`, `span_id()` and `trace_flags()`, as
    /// integers). `Error::Invalid` when either id is zero.
    pub fn from_ids(trace_id: u128, parent_id: u64, flags: u8) -> Result<TraceParent> {
        if trace_id == 0 || parent_id == 0 {
            return Err(Error::invalid(
                "traceparent",
                "format",
                "a trace id and a parent id are never zero",
            ));
        }
        Ok(TraceParent(Arc::from(format!(
            "00-{trace_id:032x}-{parent_id:016x}-{flags:02x}"
        ))))
    }

    /// The header's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The comment appended to each statement.
    pub(crate) fn comment(&self) -> Arc<str> {
        Arc::from(format!(" /*traceparent='{}'*/", self.0))
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({})", self.0)
    }
}

/// A statement with a comment after it. Never cached as a prepared
/// statement: its text changes with every request.
pub(crate) struct Commented<Q> {
    pub(crate) query: Q,
    pub(crate) comment: Arc<str>,
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Commented<Q> {
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        pass.unsafe_to_cache_prepared();
        self.query.walk_ast(pass.reborrow())?;
        pass.push_sql(&self.comment);
        Ok(())
    }
}

impl<Q> QueryId for Commented<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Commented<Q> {
    type SqlType = Q::SqlType;
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_is_kept_as_it_came() {
        assert_eq!(TraceParent::parse(GOOD).unwrap().as_str(), GOOD);
        assert_eq!(
            TraceParent::parse(&format!("cc{}-later", &GOOD[2..]))
                .unwrap()
                .as_str(),
            GOOD
        );
        assert_eq!(
            TraceParent::from_ids(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 1)
                .unwrap()
                .as_str(),
            GOOD
        );
    }

    #[test]
    fn anything_that_could_end_a_comment_is_refused() {
        for bad in [
            "",
            "00",
            &GOOD.to_uppercase(),
            &GOOD.replace("-01", "-0*"),
            &format!("{GOOD}*/"),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7*/;--",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            &format!("ff{}", &GOOD[2..]),
            &format!("cc{}x", &GOOD[2..]),
        ] {
            let e = TraceParent::parse(bad).expect_err(bad);
            assert_eq!(e.invalid_fields(), ["traceparent"], "{bad}");
        }
        assert!(TraceParent::from_ids(0, 1, 1).is_err());
    }
}
