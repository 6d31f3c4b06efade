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

/// What the connection reported during one `Db::run` call.
#[derive(Default)]
pub(super) struct CallState {
    /// A top-level `COMMIT` was sent and has no answer yet.
    in_commit: AtomicBool,
    /// A `COMMIT` of this call succeeded.
    committed: AtomicBool,
    /// A `COMMIT` of this call failed (its outcome may be unknown when the
    /// failure was the connection's).
    commit_failed: AtomicBool,
}

impl CallState {
    /// Whether a `COMMIT` was in flight.
    pub fn in_commit(&self) -> bool {
        self.in_commit.load(Ordering::Relaxed)
    }
    /// Whether a `COMMIT` of the call succeeded.
    pub fn committed(&self) -> bool {
        self.committed.load(Ordering::Relaxed)
    }
    /// Whether a `COMMIT` of the call failed.
    pub fn commit_failed(&self) -> bool {
        self.commit_failed.load(Ordering::Relaxed)
    }
}

tokio::task_local! {
    static CALL: Arc<CallState>;
}

/// Called by the connection just before it sends a top-level `COMMIT`.
pub(super) fn commit_started() {
    let _ = CALL.try_with(|s| s.in_commit.store(true, Ordering::Relaxed));
}

/// Called by the connection when any statement has its answer.
pub(super) fn statement_finished(ok: bool) {
    let _ = CALL.try_with(|s| {
        if s.in_commit.swap(false, Ordering::Relaxed) {
            let flag = if ok { &s.committed } else { &s.commit_failed };
            flag.store(true, Ordering::Relaxed);
        }
    });
}

/// Runs `fut` (bounded by `limit` when there is one), with the call's
/// state: `Err(state)` when the deadline fired.
pub(super) async fn within<F: Future>(
    limit: Option<std::time::Duration>,
    fut: F,
) -> (Option<F::Output>, Arc<CallState>) {
    let state = Arc::new(CallState::default());
    let output = match limit {
        Some(limit) => CALL
            .scope(state.clone(), tokio::time::timeout(limit, fut))
            .await
            .ok(),
        None => Some(CALL.scope(state.clone(), fut).await),
    };
    (output, state)
}
