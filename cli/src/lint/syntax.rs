//! Where a syntax error is. pg_query reports only the message of a parse
//! error (its cursor position stays inside the C library), so the place is
//! found again: the engine's splitter cuts the file into the statements
//! `db migrate` sends, the first that does not parse is the culprit, and
//! within it the token the message names is the first one at which a
//! prefix of the statement fails with the same message (an earlier token
//! with the same text parses, leaving the prefix merely incomplete).

/// The byte offset in `sql` of the first syntax error (of the statement
/// that holds it when the token cannot be told).
pub(super) fn error_offset(sql: &str) -> usize {
    for part in database::migrate::split_statements(sql) {
        let Err(error) = pg_query::parse(part, 0) else {
            continue;
        };
        let start = (part.as_ptr() as usize).saturating_sub(sql.as_ptr() as usize);
        return start + offset_in_statement(part, &error.to_string()).unwrap_or(0);
    }
    0
}

/// The offset in `statement` of the token `message` (pg_query's error) names.
fn offset_in_statement(statement: &str, message: &str) -> Option<usize> {
    let tokens = pg_query::scan(statement).ok()?.tokens;
    if message.ends_with("at end of input") {
        return tokens.last().map(|t| t.start as usize);
    }
    let (_, near) = message.split_once("at or near \"")?;
    let near = near.strip_suffix('"')?;
    tokens.iter().find_map(|t| {
        let (start, end) = (t.start as usize, t.end as usize);
        let same_text = statement.get(start..end) == Some(near);
        let fails_here = same_text
            && pg_query::parse(&statement[..end], 0).is_err_and(|e| e.to_string() == message);
        fails_here.then_some(start)
    })
}
