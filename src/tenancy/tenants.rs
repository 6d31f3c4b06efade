//! `tenants`: an organisation that owns data.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use crate::schema::tenants;
use crate::{Conn, Error, Result, TenantId};

/// A row of `tenants`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = tenants, check_for_backend(diesel::pg::Pg))]
pub struct Tenant {
    /// Primary key.
    pub id: TenantId,
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// Unique URL-safe handle.
    pub slug: String,
    /// When the tenant was created.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

/// The tenant with this id.
pub async fn find_by_id(conn: &mut Conn, id: TenantId) -> Result<Tenant> {
    tenants::table
        .find(id)
        .select(Tenant::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "tenant" })
}

/// The tenant with this slug.
pub async fn find_by_slug(conn: &mut Conn, slug: &str) -> Result<Tenant> {
    tenants::table
        .filter(tenants::slug.eq(slug))
        .select(Tenant::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "tenant" })
}
