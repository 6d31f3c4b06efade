//! `admin_users`: which user holds which admin role. A user is an admin
//! while they hold at least one grant. Grants and revocations write their
//! audit entry in the same transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::json;

use super::admin_audit_log::{self, AuditContext, NewAuditEntry};
use super::admin_roles::AdminRole;
use crate::error::validate;
use crate::schema::{admin_roles, admin_users};
use crate::{AdminRoleId, AdminUserId, Conn, Error, Result, UserId};

/// The `Conflict { constraint }` of `grant_role` of a role the user already holds.
pub const ALREADY_GRANTED: &str = "admin_users_user_role_key";

/// A row of `admin_users`: one role grant.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = admin_users, check_for_backend(diesel::pg::Pg))]
pub struct AdminGrant {
    /// Primary key.
    pub id: AdminUserId,
    /// The admin.
    pub user_id: UserId,
    /// The role held.
    pub role_id: AdminRoleId,
    /// Who granted it (None once that user is deleted).
    pub granted_by: Option<UserId>,
    /// When it was granted.
    pub created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = admin_users, treat_none_as_default_value = false)]
pub(crate) struct InsertGrant {
    pub(crate) id: AdminUserId,
    pub(crate) user_id: UserId,
    pub(crate) role_id: AdminRoleId,
    pub(crate) granted_by: Option<UserId>,
}

/// Grants `role` to `user`, audited. `Conflict { admin_users_user_role_key }`
/// when already held; `NotFound` for a missing user or role.
pub async fn grant_role(
    conn: &mut Conn,
    ctx: &AuditContext,
    user: UserId,
    role: AdminRoleId,
) -> Result<AdminGrant> {
    validate(ctx)?;
    conn.transaction(async |conn| {
        let grant = diesel::insert_into(admin_users::table)
            .values(InsertGrant {
                id: AdminUserId::new(),
                user_id: user,
                role_id: role,
                granted_by: Some(ctx.actor),
            })
            .returning(AdminGrant::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| {
                Error::from(e)
                    .not_found_on("admin_users_user_id_fkey", "user")
                    .not_found_on("admin_users_role_id_fkey", "admin role")
                    .not_found_on("admin_users_granted_by_fkey", "user")
            })?;
        admin_audit_log::record(
            conn,
            ctx,
            &NewAuditEntry {
                action: "admin_role.granted".to_owned(),
                entity_type: "user".to_owned(),
                entity_id: Some(user.to_string()),
                before: None,
                after: Some(json!({ "role_id": role, "grant_id": grant.id })),
            },
        )
        .await?;
        Ok(grant)
    })
    .await
}

/// Revokes `role` from `user`, audited. `NotFound { admin grant }` when not held.
pub async fn revoke_role(
    conn: &mut Conn,
    ctx: &AuditContext,
    user: UserId,
    role: AdminRoleId,
) -> Result<()> {
    validate(ctx)?;
    conn.transaction(async |conn| {
        let grant = diesel::delete(
            admin_users::table
                .filter(admin_users::user_id.eq(user))
                .filter(admin_users::role_id.eq(role)),
        )
        .returning(AdminGrant::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound {
            entity: "admin grant",
        })?;
        admin_audit_log::record(
            conn,
            ctx,
            &NewAuditEntry {
                action: "admin_role.revoked".to_owned(),
                entity_type: "user".to_owned(),
                entity_id: Some(user.to_string()),
                before: Some(json!({ "role_id": role, "grant_id": grant.id })),
                after: None,
            },
        )
        .await?;
        Ok(())
    })
    .await
}

/// Whether `user` holds a role that grants `permission`, a concrete
/// `resource.action`: a role holding it, `resource.*` or `*` does (see
/// `admin_roles::permission`; one indexed query). `Invalid { permission }`
/// for anything else, wildcards included.
pub async fn has_permission(conn: &mut Conn, user: UserId, permission: &str) -> Result<bool> {
    if !super::admin_roles::permission::is_concrete(permission) {
        return Err(Error::invalid(
            "permission",
            "permission",
            "must be `resource.action` (lowercase letters, digits and `_`)",
        ));
    }
    let granting = super::admin_roles::permission::granting(permission);
    Ok(diesel::select(diesel::dsl::exists(
        admin_users::table
            .inner_join(admin_roles::table)
            .filter(admin_users::user_id.eq(user))
            .filter(admin_roles::permissions.overlaps_with(granting)),
    ))
    .get_result(conn)
    .await?)
}

/// The roles `user` holds, by name: at most every role there is (a handful
/// an operator defines), so a `Vec`.
pub async fn roles_of(conn: &mut Conn, user: UserId) -> Result<Vec<AdminRole>> {
    Ok(admin_users::table
        .inner_join(admin_roles::table)
        .filter(admin_users::user_id.eq(user))
        .select(AdminRole::as_select())
        .order(admin_roles::name.asc())
        .load(conn)
        .await?)
}
