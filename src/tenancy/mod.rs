//! Tenancy: the organisations that own data, who belongs to them, how people
//! are invited, and what happened in them. Tables created in
//! `migrations/2026-11-21-110000_create_tenants` and
//! `migrations/2026-11-21-120000_create_tenancy`.
//!
//! Every function over tenant-owned rows takes the tenant id and filters by
//! it, so a caller holding one tenant's id can't reach another's rows.

pub mod tenant_activity;
pub mod tenant_invites;
pub mod tenant_members;
pub mod tenants;

pub use tenant_activity::{NewActivity, TenantActivity};
pub use tenant_invites::{IssuedInvite, NewInvite, TenantInvite};
pub use tenant_members::{NewMember, TenantMember, TenantRole};
pub use tenants::{MemberTenant, NewTenant, Tenant};
