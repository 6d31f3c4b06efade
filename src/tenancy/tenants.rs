//! `tenants`: an organisation that owns data.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use validator::{Validate, ValidationError};

use super::tenant_activity;
use super::tenant_members::{self, InsertMember, TenantRole};
use crate::error::validate;
use crate::inline_limit::InlineLimitDsl;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::render_once::RenderOnceDsl;
use crate::schema::{tenant_members as members, tenants};
use crate::{Conn, Error, Result, TenantId, TenantMemberId, UserId};

/// The `Conflict { constraint }` of `create_with_owner` with a slug that is taken.
pub const SLUG_TAKEN: &str = "tenants_slug_key";

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
pub async fn find(conn: &mut Conn, id: TenantId) -> Result<Tenant> {
    tenants::table
        .find(id)
        .select(Tenant::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "tenant" })
}

/// The tenant with this slug.
pub async fn find_by_slug(conn: &mut Conn, slug: &str) -> Result<Tenant> {
    if slug.contains('\0') {
        // Nothing stored contains NUL (PostgreSQL refuses it in text).
        return Err(Error::NotFound { entity: "tenant" });
    }
    tenants::table
        .filter(tenants::slug.eq(slug))
        .select(Tenant::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "tenant" })
}

/// Input of `create_with_owner`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct NewTenant {
    /// Display name, 1 to 100 characters.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub name: String,
    /// Lowercase letters, digits and inner hyphens, 1 to 63 characters.
    #[validate(custom(function = "slug_format"))]
    pub slug: String,
}

/// Mirrors the `tenants_slug_format` CHECK so bad slugs fail before the database.
fn slug_format(slug: &str) -> Result<(), ValidationError> {
    let ok = (1..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new("slug")
            .with_message("must be 1 to 63 lowercase letters, digits or inner hyphens".into()))
    }
}

#[derive(Insertable)]
#[diesel(table_name = tenants, treat_none_as_default_value = false)]
pub(crate) struct InsertTenant<'a> {
    pub(crate) id: TenantId,
    pub(crate) name: &'a str,
    pub(crate) slug: &'a str,
}

/// Creates a tenant with `owner` as its first owner, in one transaction.
/// `Conflict { tenants_slug_key }` when the slug is taken, `NotFound { user }`
/// when `owner` doesn't exist; nothing is written then.
pub async fn create_with_owner(
    conn: &mut Conn,
    input: &NewTenant,
    owner: UserId,
) -> Result<Tenant> {
    validate(input)?;
    conn.transaction(async |conn| {
        let tenant = diesel::insert_into(tenants::table)
            .values(InsertTenant {
                id: TenantId::new(),
                name: &input.name,
                slug: &input.slug,
            })
            .returning(Tenant::as_returning())
            .get_result(conn)
            .await?;
        // Row-level security: the owner's membership and the activity
        // belong to the new tenant, which the caller's context cannot have
        // named yet. The one place the crate enters a tenant by itself: it
        // was created by this very transaction, so nobody else's data is in
        // it; the caller's tenant is put back before returning.
        let previous = enter_tenant(conn, Some(tenant.id)).await?;
        tenant_members::insert(
            conn,
            InsertMember {
                id: TenantMemberId::new(),
                tenant_id: tenant.id,
                user_id: owner,
                role: TenantRole::Owner,
            },
        )
        .await?;
        tenant_activity::append(
            conn,
            tenant.id,
            Some(owner),
            "tenant.created",
            Some(&tenant.id.to_string()),
            &json!({ "name": tenant.name, "slug": tenant.slug }),
        )
        .await?;
        enter_tenant(conn, previous).await?;
        Ok(tenant)
    })
    .await
}

/// Sets the transaction's tenant (`app.tenant_id`, transaction-local) to
/// `tenant` (none: `''`); returns the one it had.
async fn enter_tenant(conn: &mut Conn, tenant: Option<TenantId>) -> Result<Option<TenantId>> {
    #[derive(diesel::QueryableByName)]
    struct Previous {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        previous: Option<String>,
    }
    let set = tenant.map(|t| t.to_string()).unwrap_or_default();
    // Left to right: the old value is read before it is replaced.
    let row: Previous = diesel::sql_query(
        "SELECT current_setting('app.tenant_id', true) AS previous, \
                set_config('app.tenant_id', $1, true) AS now",
    )
    .bind::<diesel::sql_types::Text, _>(set)
    .get_result(conn)
    .await?;
    Ok(row
        .previous
        .as_deref()
        .and_then(|p| uuid::Uuid::parse_str(p).ok())
        .map(TenantId::from))
}

/// A tenant as seen by one of its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberTenant {
    /// The tenant.
    pub tenant: Tenant,
    /// The user's role in it.
    pub role: TenantRole,
}

/// A page of the tenants `user` belongs to, with their role, oldest tenant
/// first, after `after` (exclusive); `limit` 1..=100.
pub async fn list_for_user(
    conn: &mut Conn,
    user: UserId,
    after: Option<Cursor<TenantId>>,
    limit: i64,
) -> Result<Page<MemberTenant, TenantId>> {
    check_limit(limit)?;
    let mut query = tenants::table
        .inner_join(members::table)
        .filter(members::user_id.eq(user))
        .select((Tenant::as_select(), members::role))
        .order((tenants::created_at.asc(), tenants::id.asc()))
        .into_boxed();
    if let Some(c) = after {
        query = query.filter(
            tenants::created_at.gt(c.created_at).or(tenants::created_at
                .eq(c.created_at)
                .and(tenants::id.gt(c.id))),
        );
    }
    let rows: Vec<(Tenant, TenantRole)> = query.inline_limit(limit as u32 + 1).load(conn).await?;
    let rows = rows
        .into_iter()
        .map(|(tenant, role)| MemberTenant { tenant, role })
        .collect();
    Ok(page_of(rows, limit, |m: &MemberTenant| Cursor {
        created_at: m.tenant.created_at,
        id: m.tenant.id,
    }))
}
