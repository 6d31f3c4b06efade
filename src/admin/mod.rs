//! Platform administration: admin roles and their permissions, who holds
//! them, and the append-only audit log every admin mutation writes to.
//! Tables created in `migrations/2026-11-21-122000_create_admin`.

pub mod admin_audit_log;
pub mod admin_roles;
pub mod admin_users;

pub use admin_audit_log::{AuditContext, AuditEntry, AuditFilter, NewAuditEntry};
pub use admin_roles::{AdminRole, NewRole, RolePermissions};
pub use admin_users::AdminGrant;
