//! Running one migration's script: in one transaction, or statement by
//! statement (`run_in_transaction = false`) with its progress recorded so an
//! interrupted run resumes where it stopped. Each statement of the latter
//! commits together with its progress record whenever the server lets it
//! run in a transaction block: exactly once, whatever kills the run.

use crate::db::Conn;
use diesel::result::Error as DieselError;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};

use super::error::{Failure, MigrationError, Script};
use super::history::{self, ProgressRow};
use super::source::Migration;
use super::split_statements;

/// The migration session's own settings, captured at the start of a run and
/// put back after each migration: a migration's `SET` (say, a shorter
/// `lock_timeout` it chose for itself) must not carry over to the next.
pub(super) struct SessionSettings(Vec<(String, String)>);

impl SessionSettings {
    const NAMES: [&str; 3] = [
        "statement_timeout",
        "lock_timeout",
        "client_connection_check_interval",
    ];

    pub(super) async fn capture(conn: &mut Conn) -> Result<Self, DieselError> {
        #[derive(diesel::QueryableByName)]
        struct Setting {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            value: Option<String>,
        }
        let mut saved = Vec::new();
        for name in Self::NAMES {
            // missing_ok: client_connection_check_interval is PostgreSQL 14+.
            let s: Setting = diesel_async::RunQueryDsl::get_result(
                diesel::sql_query("SELECT current_setting($1, true) AS value")
                    .bind::<diesel::sql_types::Text, _>(name),
                conn,
            )
            .await?;
            if let Some(value) = s.value {
                saved.push((name.to_owned(), value));
            }
        }
        Ok(Self(saved))
    }

    pub(super) async fn restore(&self, conn: &mut Conn) -> Result<(), DieselError> {
        conn.batch_execute("RESET ALL").await?;
        for (name, value) in &self.0 {
            diesel_async::RunQueryDsl::execute(
                diesel::sql_query("SELECT set_config($1, $2, false)")
                    .bind::<diesel::sql_types::Text, _>(name)
                    .bind::<diesel::sql_types::Text, _>(value),
                conn,
            )
            .await?;
        }
        Ok(())
    }
}

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
    let advice = if connection_lost(e) {
        Some(lost_connection_advice(script, statement))
    } else {
        advice.or_else(|| lock_timeout_advice(&message))
    };
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

/// Whether the migration session itself was lost (the server stopped,
/// crashed or failed over), rather than a statement being refused.
fn connection_lost(e: &DieselError) -> bool {
    use diesel::result::DatabaseErrorKind as K;
    match e {
        DieselError::DatabaseError(K::ClosedConnection | K::UnableToSendCommand, _) => true,
        DieselError::DatabaseError(_, info) => {
            info.message().starts_with(crate::error::OUTCOME_UNKNOWN)
                || crate::error::is_outage_message(info.message())
        }
        _ => false,
    }
}

/// What to do after losing the server mid-migration: nothing to fix, run
/// again where writes are accepted; the state is the one a killed `db
/// migrate` leaves, which the next run knows how to resume.
fn lost_connection_advice(script: Script, statement: Option<(usize, usize)>) -> String {
    let lost = "the connection to the server was lost (it stopped, crashed or failed over): \
                nothing in the migration needs fixing";
    let again = "once a server accepts writes again (after a failover, the new primary: a \
                 DATABASE_URL that names every host with target_session_attrs=read-write finds \
                 it), run the command again; `db status` shows where it stands";
    match (script, statement) {
        (Script::Up, Some((number, _))) => format!(
            "{lost}. It runs outside a transaction: {}statement {number} may or may not have \
             completed on the server; {again}: `db migrate` resumes at statement {number}, as \
             after a killed `db migrate`",
            if number > 1 {
                format!("statements 1 to {} are recorded as done, ", number - 1)
            } else {
                String::new()
            }
        ),
        _ => format!(
            "{lost}. The server rolled back the transaction unless its COMMIT was already \
             under way; {again}"
        ),
    }
}

fn lock_timeout_advice(message: &str) -> Option<String> {
    message.contains("lock timeout").then(|| {
        "another session held a lock on a table this migration changes for longer than \
         DB_MIGRATION_DDL_LOCK_TIMEOUT_MS; let it finish (or end it) and re-run"
            .to_owned()
    })
}

/// After a lock timeout: the sessions with the oldest open transactions in
/// this database (the usual blockers: an `idle in transaction` client, a
/// long report), named so the operator can act.
pub(super) async fn name_lock_holders(conn: &mut Conn, e: &mut MigrationError) {
    let MigrationError::Failed(failure) = e else {
        return;
    };
    if !failure.message.contains("lock timeout") {
        return;
    }
    #[derive(diesel::QueryableByName)]
    struct Holder {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    let holders: Result<Vec<Holder>, _> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT format('pid %s (%s, %s since %s): %s', pid, \
                    coalesce(nullif(application_name, ''), 'no application_name'), state, \
                    to_char(xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS UTC'), \
                    left(query, 80)) AS line \
             FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
               AND xact_start IS NOT NULL \
             ORDER BY xact_start LIMIT 3",
        ),
        conn,
    )
    .await;
    if let Ok(holders) = holders
        && !holders.is_empty()
    {
        let list: Vec<String> = holders.into_iter().map(|h| h.line).collect();
        let advice = failure.advice.get_or_insert_with(String::new);
        advice.push_str(&format!(
            "; open transactions, oldest first (end one with SELECT pg_terminate_backend(pid)): {}",
            list.join("; ")
        ));
    }
}

/// `statement` without the comments and blank space before its first word
/// (the splitter keeps a statement's leading comments with it).
fn without_leading_comments(mut statement: &str) -> &str {
    loop {
        statement = statement.trim_start();
        if let Some(rest) = statement.strip_prefix("--") {
            statement = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = statement.strip_prefix("/*") {
            statement = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return statement;
        }
    }
}

/// Whether a statement runs `CONCURRENTLY` (waits for other transactions
/// by design: `lock_timeout` must not cancel it half-way).
fn is_concurrent(statement: &str) -> bool {
    without_leading_comments(statement)
        .split_whitespace()
        .take(6)
        .any(|w| w.eq_ignore_ascii_case("concurrently"))
}

/// Runs one statement of a non-transactional migration. A `CONCURRENTLY`
/// statement waits for older transactions by design, and the migration
/// session's `lock_timeout` would cancel it half-way, leaving an INVALID
/// index: it runs with no lock timeout, restored afterwards.
async fn run_statement(conn: &mut Conn, statement: &str) -> Result<(), DieselError> {
    if !is_concurrent(statement) {
        return conn.batch_execute(statement).await;
    }
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let saved: Setting = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query("SELECT current_setting('lock_timeout') AS value"),
        conn,
    )
    .await?;
    conn.batch_execute("SET lock_timeout = 0").await?;
    let result = conn.batch_execute(statement).await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("SELECT set_config('lock_timeout', $1, false)")
            .bind::<diesel::sql_types::Text, _>(&saved.value),
        conn,
    )
    .await?;
    result
}

/// Whether the server refused `e`'s statement because it cannot run inside
/// a transaction block (SQLSTATE 25001; diesel-async keeps only the message
/// of this kind, in the server's default English).
fn cannot_run_in_transaction(e: &DieselError) -> bool {
    matches!(e, DieselError::DatabaseError(_, info)
        if info.message().contains("cannot run inside a transaction block")
            || info.message().contains("cannot be executed within a transaction block")
            || info.message().contains("cannot be executed inside a transaction block"))
}

/// `CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name ...` -> `name`.
pub(super) fn concurrent_index_name(statement: &str) -> Option<String> {
    let statement = without_leading_comments(statement);
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
    conn: &mut Conn,
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
    } else if progress.is_none() {
        // Recorded before the first statement, so a run killed inside it
        // (a long CREATE INDEX CONCURRENTLY) shows as started, not pending.
        history::record_progress(conn, m, 0, total).await?;
    }
    for (i, statement) in statements.iter().enumerate().skip(done) {
        let number = i + 1;
        let fail = |e: &DieselError, advice: Option<String>| {
            failed(
                m,
                Script::Up,
                &m.up_sql,
                statement,
                Some((number, total)),
                e,
                advice,
            )
        };
        // What a failed statement leaves, and how to go on.
        let resume_advice = || {
            if i == 0 {
                "nothing of this migration is applied; fix it and re-run `db migrate`".to_owned()
            } else {
                format!(
                    "it runs outside a transaction: statements 1 to {i} stay applied; fix \
                     statement {number} and re-run `db migrate`, which resumes at statement {number}"
                )
            }
        };
        let index = concurrent_index_name(statement);
        // The statement an earlier run was in when it stopped may have left
        // an INVALID index of the very name it creates; CREATE INDEX would
        // then fail with "already exists" (or, with IF NOT EXISTS, keep the
        // invalid one). Only that index is dropped, and built again.
        if i == done
            && let Some(index) = &index
        {
            match history::index_validity(conn, index).await? {
                Some(false) => {
                    tracing::warn!(migration = %m.name, "dropping invalid index {index} left by an interrupted or failed build, to build it again");
                    conn.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))
                        .await
                        .map_err(|e| fail(&e, None))?;
                }
                // Built before the run stopped, but not recorded: done.
                Some(true) if progress.is_some() => {
                    tracing::warn!(migration = %m.name, "index {index} of statement {number} was built before the interruption; not building it again");
                    history::record_progress(conn, m, number, total).await?;
                    continue;
                }
                _ => {}
            }
        }
        let last = number == total;
        // Exactly once where the server allows it: the statement and the
        // record that it ran commit together, so a run killed between them
        // cannot run it again. What cannot run in a transaction block
        // (CONCURRENTLY, VACUUM, ...: the server says so, SQLSTATE 25001)
        // runs alone and is recorded after; a crash in between is then
        // detected on resume (see the index repair above).
        if index.is_none() && !is_concurrent(statement) {
            let together = conn
                .transaction::<_, DieselError, _>(async |conn| {
                    conn.batch_execute(statement).await?;
                    if last {
                        history::insert_version(conn, m).await
                    } else {
                        history::record_progress(conn, m, number, total).await
                    }
                })
                .await;
            match together {
                Ok(()) if last => return Ok(()),
                Ok(()) => continue,
                Err(e) if !cannot_run_in_transaction(&e) => {
                    return Err(fail(&e, Some(resume_advice())));
                }
                // Not in a transaction block: run it on its own below.
                Err(_) => {}
            }
        }
        if let Err(e) = run_statement(conn, statement).await {
            let invalid = match &index {
                Some(index) => history::index_validity(conn, index)
                    .await
                    .ok()
                    .flatten()
                    .filter(|valid| !valid)
                    .map(|_| index.clone()),
                None => None,
            };
            let mut advice = resume_advice();
            if let Some(index) = invalid {
                advice.push_str(&format!(
                    "; the failed statement left the INVALID index {index}, which the re-run \
                     drops and builds again (or drop it yourself: DROP INDEX CONCURRENTLY {index})"
                ));
            }
            return Err(fail(&e, Some(advice)));
        }
        // CREATE INDEX CONCURRENTLY IF NOT EXISTS succeeds over an invalid
        // index of that name: make sure the index it leaves is valid.
        if let Some(index) = &index
            && history::index_validity(conn, index).await? == Some(false)
        {
            conn.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))
                .await
                .map_err(|e| fail(&e, None))?;
            run_statement(conn, statement)
                .await
                .map_err(|e| fail(&e, None))?;
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
pub(super) async fn revert(conn: &mut Conn, m: &Migration) -> Result<(), MigrationError> {
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
        assert_eq!(
            concurrent_index_name(
                "-- speeds up X\n/* b */ CREATE INDEX CONCURRENTLY idx_c ON t (c)"
            )
            .as_deref(),
            Some("idx_c")
        );
        assert!(is_concurrent("-- x\nREINDEX INDEX CONCURRENTLY i"));
        assert!(!is_concurrent("CREATE INDEX i ON t (a)"));
    }
}
