//! `Ctx`: who runs a query and why, built once per request by a handler and
//! carried by the connection to the SQL (see docs/design.md).
//!
//! ```
//! use std::time::Duration;
//! use database::{Ctx, TenantId, UserId};
//!
//! let ctx = Ctx::tenant(TenantId::new())
//!     .user(UserId::new())
//!     .timeout(Duration::from_secs(2));
//! assert!(ctx.tenant_id().is_some());
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use super::sqlcommenter::TraceParent;
use crate::{TenantId, UserId};

/// The context of one request: the tenant and the acting user (row-level
/// security reads both, per transaction), the deadline every call of the
/// request shares, and the trace parent of its query spans.
///
/// `Ctx::default()` (no tenant, no user, no deadline) is what a connection
/// without a context has: tenant tables show no rows to the service role,
/// and each statement is bounded by `DB_QUERY_TIMEOUT_MS` alone.
#[derive(Clone, Default)]
pub struct Ctx {
    tenant: Option<TenantId>,
    user: Option<UserId>,
    deadline: Option<Instant>,
    system: Option<&'static str>,
    span: Option<tracing::Span>,
    trace_parent: Option<TraceParent>,
}

impl Ctx {
    /// No tenant, no user, no deadline of its own.
    pub fn new() -> Ctx {
        Ctx::default()
    }

    /// A request inside `tenant` (what the tenant tables' policies compare with).
    pub fn tenant(tenant: TenantId) -> Ctx {
        Ctx::new().in_tenant(tenant)
    }

    /// The escape hatch: work that truly crosses tenants (the admin domain,
    /// seeding, maintenance). Its connections come from the system pool
    /// (`DATABASE_SYSTEM_URL`, a role that bypasses row-level security, not a
    /// setting a statement could set), and each checkout is logged with
    /// `reason` (target `database::system`). Grep for `Ctx::system` to review
    /// every use.
    pub fn system(reason: &'static str) -> Ctx {
        Ctx {
            system: Some(reason),
            ..Ctx::default()
        }
    }

    /// The same context inside `tenant`.
    pub fn in_tenant(mut self, tenant: TenantId) -> Ctx {
        self.tenant = Some(tenant);
        self
    }

    /// The same context acting as `user` (`app.user_id`: personal rows and
    /// the policies that let a user find their own tenants and invitations).
    pub fn user(mut self, user: UserId) -> Ctx {
        self.user = Some(user);
        self
    }

    /// The same context with a deadline `timeout` from now: every call of the
    /// request (waiting for a connection, connecting, each statement, the
    /// commit) shares it, and the server stops its work when it passes.
    pub fn timeout(self, timeout: Duration) -> Ctx {
        self.deadline(Instant::now() + timeout)
    }

    /// The same context with this absolute deadline (the earlier one wins
    /// when it already has one).
    pub fn deadline(mut self, at: Instant) -> Ctx {
        self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
        self
    }

    /// The same context whose query spans are children of `span` (by
    /// default the span current when the context is attached to a `Db`).
    pub fn trace(mut self, span: tracing::Span) -> Ctx {
        self.span = Some(span);
        self
    }

    /// The same context whose statements carry `trace_parent` to the
    /// server as a sqlcommenter comment, when `DB_SQLCOMMENTER=true` (off
    /// by default: a commented statement is prepared on every run; see
    /// `TraceParent`). A handler passes the request's `traceparent`
    /// header, or its OpenTelemetry span's ids.
    pub fn correlate(mut self, trace_parent: TraceParent) -> Ctx {
        self.trace_parent = Some(trace_parent);
        self
    }

    /// The tenant, if any.
    pub fn tenant_id(&self) -> Option<TenantId> {
        self.tenant
    }

    /// The acting user, if any.
    pub fn user_id(&self) -> Option<UserId> {
        self.user
    }

    /// The deadline, if any.
    pub fn deadline_at(&self) -> Option<Instant> {
        self.deadline
    }

    /// The reason given to `Ctx::system`, when this is the escape hatch.
    pub fn system_reason(&self) -> Option<&'static str> {
        self.system
    }

    /// The trace parent given to `correlate`, if any.
    pub fn trace_parent(&self) -> Option<&TraceParent> {
        self.trace_parent.as_ref()
    }

    /// The span query spans hang under, when one was given.
    pub fn span(&self) -> Option<&tracing::Span> {
        self.span.as_ref()
    }
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Ctx");
        if let Some(t) = self.tenant {
            d.field("tenant", &t);
        }
        if let Some(u) = self.user {
            d.field("user", &u);
        }
        if let Some(at) = self.deadline {
            d.field("remaining", &at.saturating_duration_since(Instant::now()));
        }
        if let Some(tp) = &self.trace_parent {
            d.field("trace_parent", tp);
        }
        if let Some(reason) = self.system {
            d.field("system", &reason);
        }
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earlier_deadline_wins() {
        let soon = Instant::now() + Duration::from_millis(10);
        let later = soon + Duration::from_secs(10);
        assert_eq!(
            Ctx::new().deadline(soon).deadline(later).deadline_at(),
            Some(soon)
        );
        assert_eq!(
            Ctx::new().deadline(later).deadline(soon).deadline_at(),
            Some(soon)
        );
    }
}
