//! Running one migration's script: in one transaction, or statement by
//! statement (`run_in_transaction = false`) with its progress recorded so an
//! interrupted run resumes where it stopped.

use diesel::result::Error as DieselError;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use super::error::{Failure, MigrationError, Script};
use super::history::{self, ProgressRow};
use super::source::Migration;
use super::split_statements;

/// Where in `sql` (1-based line) the 1-based character `position` falls.
fn line_at(sql: &str, position: usize) -> usize {
    1 + sql
        .chars()
        .take(position.saturating_sub(1))
        .filter(|&c| c == '\n')
        .count()
}

/// The 1-based line of `file` on which the slice `part` of it starts.
fn line_of_part(file: &str, part: &str) -> usize {
    let offset = (part.as_ptr() as usize).saturating_sub(file.as_ptr() as usize);
    1 + file[..offset.min(file.len())].matches('\n').count()
}

/// The server's message with its detail and hint, once (not "X: X").
fn server_message(e: &DieselError) -> (String, Option<usize>) {
    match e {
        DieselError::DatabaseError(_, info) => {
            let mut text = info.message().to_owned();
            if let Some(d) = info.details() {
                text.push_str(&format!(" (detail: {d})"));
            }
            if let Some(h) = info.hint() {
                text.push_str(&format!(" (hint: {h})"));
            }
            let position = info
                .statement_position()
                .and_then(|p| usize::try_from(p).ok());
            (text, position)
        }
        other => (other.to_string(), None),
    }
}

/// A failure of `script` of `m`. `part` is the text that was sent (the
/// whole script or one statement of it), so the server's position can be
/// turned into a line of the file.
fn failed(
    m: &Migration,
    script: Script,
    file: &str,
    part: &str,
    statement: Option<(usize, usize)>,
    e: &DieselError,
    advice: Option<String>,
) -> MigrationError {
    let (message, position) = server_message(e);
    let line = match position {
        Some(p) => Some(line_of_part(file, part) + line_at(part, p) - 1),
        // Statement by statement, the statement's first line is known.
        None if statement.is_some() => Some(line_of_part(file, part)),
        None => None,
    };
    let location = match line {
        Some(l) => format!("migrations/{}/{script}:{l}", m.name),
        None => format!("migrations/{}/{script}", m.name),
    };
    let advice = advice.or_else(|| lock_timeout_advice(&message));
    MigrationError::Failed(Box::new(Failure {
        version: m.version.clone(),
        name: m.name.clone(),
        script,
        location,
        statement,
        message,
        advice,
    }))
}

fn lock_timeout_advice(message: &str) -> Option<String> {
    message.contains("lock timeout").then(|| {
        "another session held a lock on the table this statement changes for longer than \
         DB_MIGRATION_DDL_LOCK_TIMEOUT_MS; find it with `SELECT pid, application_name, state, \
         xact_start, query FROM pg_stat_activity WHERE wait_event_type IS NULL AND xact_start \
         IS NOT NULL`, let it finish (or end it), and re-run"
            .to_owned()
    })
}

/// `CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name ...` -> `name`.
pub(super) fn concurrent_index_name(statement: &str) -> Option<String> {
    let words: Vec<String> = statement
        .split_whitespace()
        .take(8)
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let mut i = 0;
    let mut next = |expected: &str| {
        let ok = words.get(i).is_some_and(|w| w == expected);
        if ok {
            i += 1;
        }
        ok
    };
    if !next("create") {
        return None;
    }
    next("unique");
    if !(next("index") && next("concurrently")) {
        return None;
    }
    if next("if") && !(next("not") && next("exists")) {
        return None;
    }
    let raw = statement.split_whitespace().nth(i)?;
    (!raw.eq_ignore_ascii_case("on")).then(|| raw.to_owned())
}

/// Applies `m`. A transactional migration runs as one batch in one
/// transaction with its bookkeeping. One that runs outside a transaction
/// goes statement by statement (a multi-statement string would be an
/// implicit transaction, where `CONCURRENTLY` is refused), recording after
/// each how many completed, and resumes after `progress` when given.
pub(super) async fn apply(
    conn: &mut AsyncPgConnection,
    m: &Migration,
    progress: Option<&ProgressRow>,
) -> Result<(), MigrationError> {
    if m.run_in_transaction {
        return conn
            .transaction::<_, MigrationError, _>(async |conn| {
                conn.batch_execute(&m.up_sql)
                    .await
                    .map_err(|e| failed(m, Script::Up, &m.up_sql, &m.up_sql, None, &e, None))?;
                history::insert_version(conn, m).await?;
                Ok(())
            })
            .await;
    }
    let statements = split_statements(&m.up_sql);
    let total = statements.len();
    let done = progress.map_or(0, |p| usize::try_from(p.statements_done).unwrap_or(0));
    if done > 0 {
        tracing::warn!(migration = %m.name, "resuming after statement {done} of {total} (an earlier run was interrupted)");
    }
    for (i, statement) in statements.iter().enumerate().skip(done) {
        let number = i + 1;
        // The statement an earlier run was in when it stopped may have left
        // an INVALID index behind; CREATE INDEX would then fail with "already
        // exists". Only an index this very statement creates is dropped.
        // If it finished but the run stopped before recording it, the index
        // exists and is valid: the statement is done.
        if i == done
            && progress.is_some()
            && let Some(index) = concurrent_index_name(statement)
        {
            match history::index_validity(conn, &index).await? {
                Some(false) => {
                    tracing::warn!(migration = %m.name, "dropping invalid index {index} left by the interrupted run, to build it again");
                    conn.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))
                        .await
                        .map_err(|e| {
                            failed(
                                m,
                                Script::Up,
                                &m.up_sql,
                                statement,
                                Some((number, total)),
                                &e,
                                None,
                            )
                        })?;
                }
                Some(true) => {
                    tracing::warn!(migration = %m.name, "index {index} of statement {number} was built before the interruption; not building it again");
                    if number < total {
                        history::record_progress(conn, m, number, total).await?;
                    }
                    continue;
                }
                None => {}
            }
        }
        if let Err(e) = conn.batch_execute(statement).await {
            let invalid = match concurrent_index_name(statement) {
                Some(index) => history::index_validity(conn, &index)
                    .await
                    .ok()
                    .flatten()
                    .filter(|valid| !valid)
                    .map(|_| index),
                None => None,
            };
            let mut advice = if i == 0 {
                "nothing of this migration is applied; fix it and re-run `db migrate`".to_owned()
            } else {
                format!(
                    "it runs outside a transaction: statements 1 to {i} stay applied; fix \
                     statement {number} and re-run `db migrate`, which resumes at statement {number}"
                )
            };
            if let Some(index) = invalid {
                advice.push_str(&format!(
                    "; the failed statement left the INVALID index {index}, which the re-run \
                     drops and builds again (or drop it yourself: DROP INDEX CONCURRENTLY {index})"
                ));
            }
            return Err(failed(
                m,
                Script::Up,
                &m.up_sql,
                statement,
                Some((number, total)),
                &e,
                Some(advice),
            ));
        }
        if number < total {
            history::record_progress(conn, m, number, total).await?;
        }
    }
    conn.transaction::<_, DieselError, _>(async |conn| history::insert_version(conn, m).await)
        .await?;
    Ok(())
}

/// Reverts `m` with its `down.sql`. In the caller's transaction when `m`
/// is transactional (a rollback of several is all or nothing); statement by
/// statement otherwise.
pub(super) async fn revert(
    conn: &mut AsyncPgConnection,
    m: &Migration,
) -> Result<(), MigrationError> {
    let down = m.down_sql.as_deref().unwrap_or_default();
    if m.run_in_transaction {
        conn.batch_execute(down).await.map_err(|e| {
            failed(
                m,
                Script::Down,
                down,
                down,
                None,
                &e,
                Some("nothing was reverted".into()),
            )
        })?;
    } else {
        let statements = split_statements(down);
        let total = statements.len();
        for (i, statement) in statements.iter().enumerate() {
            conn.batch_execute(statement).await.map_err(|e| {
                let advice = format!(
                    "down.sql runs outside a transaction: statements 1 to {i} of it ran and \
                     stay; the migration is still recorded as applied; fix the database by \
                     hand and re-run `db rollback`"
                );
                failed(
                    m,
                    Script::Down,
                    down,
                    statement,
                    Some((i + 1, total)),
                    &e,
                    Some(advice),
                )
            })?;
        }
    }
    history::delete_version(conn, &m.version).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_positions() {
        let sql = "-- c\nSELECT 1;\nSELEC 2;\n";
        assert_eq!(line_at(sql, sql.find("SELEC 2").unwrap() + 1), 3);
        let part = &sql[sql.find("SELEC 2").unwrap()..];
        assert_eq!(line_of_part(sql, part), 3);
    }

    #[test]
    fn finds_concurrent_index_names() {
        assert_eq!(
            concurrent_index_name("CREATE INDEX CONCURRENTLY idx_a ON t (a)").as_deref(),
            Some("idx_a")
        );
        assert_eq!(
            concurrent_index_name(
                "create unique index concurrently if not exists s.idx_b on t (b)"
            )
            .as_deref(),
            Some("s.idx_b")
        );
        assert_eq!(
            concurrent_index_name("CREATE INDEX CONCURRENTLY ON t (a)"),
            None
        );
        assert_eq!(concurrent_index_name("CREATE INDEX idx ON t (a)"), None);
    }
}
