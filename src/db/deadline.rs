//! The client-side deadline of one call (`Db::run`, `DB_QUERY_TIMEOUT_MS`).
//!
//! `statement_timeout` is enforced by the server, which never sees a query
//! stuck in a stalled network path; TCP keepalives and `tcp_user_timeout`
//! notice a peer that vanished at the kernel level, but not a stalled
//! process that keeps its socket open (a hung proxy or pooler). Only the
//! client can bound those: when the deadline fires, the call's future is
//! dropped and its connection discarded, never reused, because its protocol
//! state is unknown.
//!
//! A `COMMIT` in flight when the deadline fires may or may not have
//! committed; the call then fails with `Error::CommitOutcomeUnknown`, not a
//! plain timeout. The connection's instrumentation tells this module when a
//! `COMMIT` starts and when a statement finishes, through a task-local that
//! `Db::run` sets for the duration of the call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

tokio::task_local! {
    static CALL: Arc<AtomicBool>;
}

/// Called by the connection just before it sends a top-level `COMMIT`.
pub(super) fn commit_started() {
    let _ = CALL.try_with(|in_commit| in_commit.store(true, Ordering::Relaxed));
}

/// Called by the connection when any statement has its answer.
pub(super) fn statement_finished() {
    let _ = CALL.try_with(|in_commit| in_commit.store(false, Ordering::Relaxed));
}

/// Runs `fut` under `limit`. `Err(true)`: the deadline fired while a
/// `COMMIT` was in flight; `Err(false)`: it fired at any other point.
pub(super) async fn within<F: Future>(
    limit: std::time::Duration,
    fut: F,
) -> Result<F::Output, bool> {
    let in_commit = Arc::new(AtomicBool::new(false));
    let outcome = CALL
        .scope(in_commit.clone(), tokio::time::timeout(limit, fut))
        .await;
    outcome.map_err(|_| in_commit.load(Ordering::Relaxed))
}
