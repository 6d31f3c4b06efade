//! `admin_roles`: named sets of permissions granted to admins. Every change
//! writes its audit entry in the same transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use super::admin_audit_log::{self, AuditContext, NewAuditEntry};
use crate::error::validate;
use crate::render_once::RenderOnceDsl;
use crate::schema::admin_roles;
use crate::{AdminRoleId, Conn, Error, Result};

/// The `Conflict { constraint }` of `create` with a role name that is taken.
pub const NAME_TAKEN: &str = "admin_roles_name_key";

/// A row of `admin_roles`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = admin_roles, check_for_backend(diesel::pg::Pg))]
pub struct AdminRole {
    /// Primary key.
    pub id: AdminRoleId,
    /// Unique name, e.g. `support`.
    pub name: String,
    /// What the role is for.
    pub description: Option<String>,
    /// Permission strings, e.g. `users.read`.
    #[diesel(deserialize_as = Permissions)]
    pub permissions: Vec<String>,
    /// When the role was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

/// `text[]` reads as `Array<Nullable<Text>>` (PostgreSQL arrays may hold
/// NULLs); the `admin_roles_permissions_no_nulls` CHECK rules them out, so
/// dropping them here loses nothing.
#[doc(hidden)]
pub struct Permissions(Vec<String>);

impl From<Permissions> for Vec<String> {
    fn from(p: Permissions) -> Self {
        p.0
    }
}

impl
    Queryable<
        diesel::sql_types::Array<diesel::sql_types::Nullable<diesel::sql_types::Text>>,
        diesel::pg::Pg,
    > for Permissions
{
    type Row = Vec<Option<String>>;

    fn build(row: Self::Row) -> diesel::deserialize::Result<Self> {
        Ok(Permissions(row.into_iter().flatten().collect()))
    }
}

/// Input of `create`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct NewRole {
    /// 1 to 64 characters, unique.
    #[validate(length(min = 1, max = 64), custom(function = "crate::input::line"))]
    pub name: String,
    /// At most 500 characters.
    #[validate(length(max = 500), custom(function = "crate::input::text"))]
    pub description: Option<String>,
    /// Each `resource.action`, `resource.*` or `*` (see `permission`).
    #[validate(custom(function = "permission_list"))]
    pub permissions: Vec<String>,
}

/// The permission grammar, the one place it is defined:
///
/// - `resource.action`: one action on one resource, e.g. `users.read`;
/// - `resource.*`: every action on one resource;
/// - `*`: everything.
///
/// `resource` and `action` are a lowercase letter followed by lowercase
/// letters, digits or `_`; the whole string is at most 100 characters. Roles
/// may hold all three forms; `has_permission` asks about a `resource.action`
/// and is granted by that exact string, by `resource.*` or by `*`.
pub mod permission {
    /// Everything.
    pub const ALL: &str = "*";

    fn is_word(w: &str) -> bool {
        let mut bytes = w.bytes();
        matches!(bytes.next(), Some(b'a'..=b'z'))
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    /// Whether `p` is a permission a role may hold (`*`, `resource.*` or
    /// `resource.action`).
    pub fn is_grantable(p: &str) -> bool {
        if p.len() > 100 {
            return false;
        }
        if p == ALL {
            return true;
        }
        match p.split_once('.') {
            Some((resource, action)) => is_word(resource) && (action == "*" || is_word(action)),
            None => false,
        }
    }

    /// Whether `p` is a permission one can ask about: `resource.action`,
    /// no wildcard.
    pub fn is_concrete(p: &str) -> bool {
        is_grantable(p) && !p.contains('*')
    }

    /// The held permissions that grant the concrete `p`: `p` itself,
    /// `resource.*` and `*`.
    pub fn granting(p: &str) -> Vec<String> {
        let resource = p.split_once('.').map_or(p, |(r, _)| r);
        vec![p.to_owned(), format!("{resource}.*"), ALL.to_owned()]
    }

    /// Whether a role holding `held` may do the concrete `wanted`.
    pub fn grants(held: &[String], wanted: &str) -> bool {
        is_concrete(wanted) && granting(wanted).iter().any(|g| held.contains(g))
    }
}

/// Checks a role's permission list against the grammar (see `permission`).
fn permission_list(list: &[String]) -> Result<(), ValidationError> {
    list.iter()
        .all(|p| permission::is_grantable(p))
        .then_some(())
        .ok_or_else(|| {
            ValidationError::new("permission").with_message(
                "each permission must be `resource.action`, `resource.*` or `*` \
                 (lowercase letters, digits and `_`, at most 100 characters)"
                    .into(),
            )
        })
}

/// Input of `set_permissions`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct RolePermissions {
    /// The role's new permission set.
    #[validate(custom(function = "permission_list"))]
    pub permissions: Vec<String>,
}

#[derive(Insertable)]
#[diesel(table_name = admin_roles, treat_none_as_default_value = false)]
pub(crate) struct InsertRole<'a> {
    pub(crate) id: AdminRoleId,
    pub(crate) name: &'a str,
    pub(crate) description: Option<&'a str>,
    pub(crate) permissions: Vec<String>,
}

fn snapshot(role: &AdminRole) -> serde_json::Value {
    serde_json::to_value(role).expect("role serialises")
}

/// Creates a role, audited. `Conflict { admin_roles_name_key }` when the name is taken.
pub async fn create(conn: &mut Conn, ctx: &AuditContext, input: &NewRole) -> Result<AdminRole> {
    validate(ctx)?;
    validate(input)?;
    let mut permissions = input.permissions.clone();
    permissions.sort();
    permissions.dedup();
    conn.transaction(async |conn| {
        let role = diesel::insert_into(admin_roles::table)
            .values(InsertRole {
                id: AdminRoleId::new(),
                name: &input.name,
                description: input.description.as_deref(),
                permissions,
            })
            .returning(AdminRole::as_returning())
            .get_result(conn)
            .await?;
        admin_audit_log::record(
            conn,
            ctx,
            &NewAuditEntry {
                action: "admin_role.created".to_owned(),
                entity_type: "admin_role".to_owned(),
                entity_id: Some(role.id.to_string()),
                before: None,
                after: Some(snapshot(&role)),
            },
        )
        .await?;
        Ok(role)
    })
    .await
}

/// Replaces a role's permissions, audited with the before and after state.
pub async fn set_permissions(
    conn: &mut Conn,
    ctx: &AuditContext,
    role: AdminRoleId,
    input: &RolePermissions,
) -> Result<AdminRole> {
    validate(ctx)?;
    validate(input)?;
    let mut permissions = input.permissions.clone();
    permissions.sort();
    permissions.dedup();
    conn.transaction(async |conn| {
        // Locked so the audited "before" is exactly what this update replaced.
        let before = admin_roles::table
            .find(role)
            .select(AdminRole::as_select())
            .for_update()
            .render_once()
            .get_result(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound {
                entity: "admin role",
            })?;
        let after = diesel::update(admin_roles::table.find(role))
            .set(admin_roles::permissions.eq(permissions))
            .returning(AdminRole::as_returning())
            .get_result(conn)
            .await?;
        admin_audit_log::record(
            conn,
            ctx,
            &NewAuditEntry {
                action: "admin_role.permissions_changed".to_owned(),
                entity_type: "admin_role".to_owned(),
                entity_id: Some(role.to_string()),
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
            },
        )
        .await?;
        Ok(after)
    })
    .await
}

/// The role named `name`.
pub async fn find_by_name(conn: &mut Conn, name: &str) -> Result<AdminRole> {
    if name.contains('\0') {
        // Nothing stored contains NUL (PostgreSQL refuses it in text).
        return Err(Error::NotFound {
            entity: "admin role",
        });
    }
    admin_roles::table
        .filter(admin_roles::name.eq(name))
        .select(AdminRole::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound {
            entity: "admin role",
        })
}
