//! `tenant_members`: who belongs to a tenant, with which role.
//!
//! A tenant always keeps at least one owner. The rule spans rows, so every
//! change that could drop an owner first locks the tenant row (`FOR UPDATE`)
//! and only then counts owners: two concurrent demotions of the last two
//! owners are serialised, and the second one sees a single owner and fails.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use validator::Validate;

use super::tenant_activity;
use crate::error::validate;
use crate::inline_limit::InlineLimitDsl;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::render_once::RenderOnceDsl;
use crate::schema::{tenant_members, tenants};
use crate::{Conn, Error, Result, TenantId, TenantMemberId, UserId};

/// The `Conflict { constraint }` of `add` (or `tenant_invites::accept`) for a user who is already a member.
pub const ALREADY_MEMBER: &str = "tenant_members_tenant_user_key";

crate::sql_enum! {
    /// What a member may do in a tenant.
    pub enum TenantRole: crate::schema::sql_types::TenantRole {
        /// Full control, including deleting the tenant and managing owners.
        Owner => "owner",
        /// Manages members and settings.
        Admin => "admin",
        /// Uses the tenant's data.
        Member => "member",
    }
}

/// The constraint name reported when a change would leave a tenant without an owner.
pub const LAST_OWNER: &str = "tenant_members_last_owner";

/// A row of `tenant_members`.
#[derive(
    Debug, Clone, PartialEq, Eq, Queryable, QueryableByName, Selectable, Identifiable, Serialize,
)]
#[diesel(table_name = tenant_members, check_for_backend(diesel::pg::Pg))]
pub struct TenantMember {
    /// Primary key.
    pub id: TenantMemberId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The member.
    pub user_id: UserId,
    /// Their role.
    pub role: TenantRole,
    /// When they joined.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

/// Input of `add`.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct NewMember {
    /// The user to add.
    pub user_id: UserId,
    /// Their role.
    pub role: TenantRole,
}

#[derive(Insertable)]
#[diesel(table_name = tenant_members, treat_none_as_default_value = false)]
pub(crate) struct InsertMember {
    pub(crate) id: TenantMemberId,
    pub(crate) tenant_id: TenantId,
    pub(crate) user_id: UserId,
    pub(crate) role: TenantRole,
}

/// Inserts a membership, mapping its constraint violations to typed errors.
pub(crate) async fn insert(conn: &mut Conn, row: InsertMember) -> Result<TenantMember> {
    diesel::insert_into(tenant_members::table)
        .values(row)
        .returning(TenantMember::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| {
            Error::from(e)
                .not_found_on("tenant_members_tenant_id_fkey", "tenant")
                .not_found_on("tenant_members_user_id_fkey", "user")
        })
}

/// Adds `input.user_id` to `tenant`; `actor` is recorded in the activity log.
/// `Conflict { tenant_members_tenant_user_key }` when already a member.
pub async fn add(
    conn: &mut Conn,
    tenant: TenantId,
    actor: UserId,
    input: &NewMember,
) -> Result<TenantMember> {
    validate(input)?;
    conn.transaction(async |conn| {
        let member = insert(
            conn,
            InsertMember {
                id: TenantMemberId::new(),
                tenant_id: tenant,
                user_id: input.user_id,
                role: input.role,
            },
        )
        .await?;
        tenant_activity::append(
            conn,
            tenant,
            Some(actor),
            "member.added",
            Some(&member.user_id.to_string()),
            &json!({ "role": member.role }),
        )
        .await?;
        Ok(member)
    })
    .await
}

/// The membership of `user` in `tenant`.
pub async fn find(conn: &mut Conn, tenant: TenantId, user: UserId) -> Result<TenantMember> {
    tenant_members::table
        .filter(tenant_members::tenant_id.eq(tenant))
        .filter(tenant_members::user_id.eq(user))
        .select(TenantMember::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound {
            entity: "tenant member",
        })
}

/// A page of `tenant`'s members, oldest first, after `after` (exclusive).
pub async fn list(
    conn: &mut Conn,
    tenant: TenantId,
    after: Option<Cursor<TenantMemberId>>,
    limit: i64,
) -> Result<Page<TenantMember, TenantMemberId>> {
    check_limit(limit)?;
    let mut query = tenant_members::table
        .filter(tenant_members::tenant_id.eq(tenant))
        .select(TenantMember::as_select())
        .order((tenant_members::created_at.asc(), tenant_members::id.asc()))
        .into_boxed();
    if let Some(c) = after {
        query = query.filter(
            tenant_members::created_at
                .gt(c.created_at)
                .or(tenant_members::created_at
                    .eq(c.created_at)
                    .and(tenant_members::id.gt(c.id))),
        );
    }
    let rows = query.inline_limit(limit as u32 + 1).load(conn).await?;
    Ok(page_of(rows, limit, |r: &TenantMember| Cursor {
        created_at: r.created_at,
        id: r.id,
    }))
}

/// Locks the tenant row for the rest of the transaction: every change that
/// may remove an owner takes this lock first, so they run one at a time.
async fn lock_tenant(conn: &mut Conn, tenant: TenantId) -> Result<()> {
    tenants::table
        .find(tenant)
        .select(tenants::id)
        .for_update()
        .first::<TenantId>(conn)
        .await
        .optional()?
        .map(|_| ())
        .ok_or(Error::NotFound { entity: "tenant" })
}

/// Refuses when `member` is the last owner; the caller holds the tenant lock.
async fn ensure_not_last_owner(conn: &mut Conn, member: &TenantMember, what: &str) -> Result<()> {
    if member.role != TenantRole::Owner {
        return Ok(());
    }
    let owners: i64 = tenant_members::table
        .filter(tenant_members::tenant_id.eq(member.tenant_id))
        .filter(tenant_members::role.eq(TenantRole::Owner))
        .count()
        .get_result(conn)
        .await?;
    if owners <= 1 {
        return Err(Error::Conflict {
            constraint: LAST_OWNER.to_owned(),
            message: format!("cannot {what} the last owner of the tenant"),
        });
    }
    Ok(())
}

/// Refuses to let `user` disappear while they are the last owner of a
/// tenant; the caller is deleting the user, inside a transaction. The user
/// row is locked first (`FOR UPDATE`, which blocks new memberships of the
/// user: their foreign-key check needs a share lock on it), then every tenant
/// the user belongs to (`FOR NO KEY UPDATE`: conflicts with `lock_tenant`,
/// so role changes and removals in those tenants wait, but not with the
/// key-share locks of concurrent inserts). Only then are owners counted, as
/// for a demotion.
pub(crate) async fn ensure_user_owns_no_tenant_alone(conn: &mut Conn, user: UserId) -> Result<()> {
    use crate::schema::users;
    users::table
        .find(user)
        .select(users::id)
        .for_update()
        .render_once()
        .get_result::<UserId>(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "user" })?;
    let of_user = tenant_members::table
        .filter(tenant_members::user_id.eq(user))
        .select(tenant_members::tenant_id);
    let _locked: Vec<TenantId> = tenants::table
        .filter(tenants::id.eq_any(of_user))
        .select(tenants::id)
        .order(tenants::id)
        .for_no_key_update()
        .load(conn)
        .await?;
    diesel::alias!(tenant_members as other: Other);
    let owned_alone: Option<TenantId> = tenant_members::table
        .filter(tenant_members::user_id.eq(user))
        .filter(tenant_members::role.eq(TenantRole::Owner))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            other
                .filter(
                    other
                        .field(tenant_members::tenant_id)
                        .eq(tenant_members::tenant_id),
                )
                .filter(other.field(tenant_members::role).eq(TenantRole::Owner))
                .filter(other.field(tenant_members::user_id).ne(user)),
        )))
        .select(tenant_members::tenant_id)
        .first(conn)
        .await
        .optional()?;
    match owned_alone {
        Some(tenant) => Err(Error::Conflict {
            constraint: LAST_OWNER.to_owned(),
            message: format!(
                "cannot delete the last owner of tenant {tenant}: transfer ownership first"
            ),
        }),
        None => Ok(()),
    }
}

/// Changes `user`'s role in `tenant`. `Conflict { LAST_OWNER }` when that
/// would leave the tenant without an owner.
pub async fn change_role(
    conn: &mut Conn,
    tenant: TenantId,
    actor: UserId,
    user: UserId,
    role: TenantRole,
) -> Result<TenantMember> {
    conn.transaction(async |conn| {
        lock_tenant(conn, tenant).await?;
        let member = find(conn, tenant, user).await?;
        if member.role == role {
            return Ok(member);
        }
        if role != TenantRole::Owner {
            ensure_not_last_owner(conn, &member, "demote").await?;
        }
        let updated = diesel::update(tenant_members::table.find(member.id))
            .set(tenant_members::role.eq(role))
            .returning(TenantMember::as_returning())
            .get_result(conn)
            .await?;
        tenant_activity::append(
            conn,
            tenant,
            Some(actor),
            "member.role_changed",
            Some(&user.to_string()),
            &json!({ "from": member.role, "to": role }),
        )
        .await?;
        Ok(updated)
    })
    .await
}

/// Removes `user` from `tenant`. `Conflict { LAST_OWNER }` for the last owner.
pub async fn remove(conn: &mut Conn, tenant: TenantId, actor: UserId, user: UserId) -> Result<()> {
    conn.transaction(async |conn| {
        lock_tenant(conn, tenant).await?;
        let member = find(conn, tenant, user).await?;
        ensure_not_last_owner(conn, &member, "remove").await?;
        diesel::delete(tenant_members::table.find(member.id))
            .execute(conn)
            .await?;
        tenant_activity::append(
            conn,
            tenant,
            Some(actor),
            "member.removed",
            Some(&user.to_string()),
            &json!({ "role": member.role }),
        )
        .await?;
        Ok(())
    })
    .await
}
