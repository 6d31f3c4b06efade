//! Tenancy: the organisations that own data, and who belongs to them.
//! Tables created in `migrations/2026-11-21-110000_create_tenants` and later.

pub mod tenants;

pub use tenants::Tenant;
