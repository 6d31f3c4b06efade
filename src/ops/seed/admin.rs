//! The admin domain: roles (shared by every seed), the first users' grants,
//! and their audit trail.

use diesel::prelude::*;
use serde_json::json;

use super::generator::{ADMIN_ROLES, ADMINS, AUDIT_PER_ADMIN, Gen, HOUR, at, base, tag};
use super::{Seeder, fill};
use crate::Result;
use crate::admin::admin_audit_log::{InsertEntry, NewAuditEntry};
use crate::admin::admin_roles::{InsertRole, NewRole};
use crate::admin::admin_users::InsertGrant;
use crate::error::validate;
use crate::schema::{admin_audit_log, admin_roles, admin_users};
use rand::Rng;

/// Seed 0's ids: the roles are shared by every seed.
fn role_id(p: super::Plan, i: u64) -> crate::AdminRoleId {
    Gen { seed: 0, plan: p }.id(tag("admin_roles"), i).into()
}

pub(super) async fn roles(s: &mut Seeder<'_>) -> Result<()> {
    let p = s.g.plan;
    fill!(
        s,
        admin_roles,
        ADMIN_ROLES.len() as u64,
        |i: u64, rows: &mut Vec<(u64, NewRole)>| {
            let (name, description, permissions) = ADMIN_ROLES[i as usize];
            let role = NewRole {
                name: name.to_owned(),
                description: Some(description.to_owned()),
                permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            };
            // The same grammar as `admin_roles::create`.
            validate(&role).expect("the seed's admin roles follow the permission grammar");
            rows.push((i, role));
        },
        |(i, role): &(u64, NewRole)| {
            (
                InsertRole {
                    id: role_id(p, *i),
                    name: &role.name,
                    description: role.description.as_deref(),
                    permissions: role.permissions.clone(),
                },
                (
                    admin_roles::created_at.eq(base()),
                    admin_roles::updated_at.eq(base()),
                ),
            )
        }
    );
    Ok(())
}

pub(super) async fn grants_and_audit(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let p = g.plan;
    let user_at = |u: u64| at(g.user_created(u));
    fill!(
        s,
        admin_users,
        ADMINS,
        |a: u64, rows: &mut Vec<(InsertGrant, chrono::DateTime<chrono::Utc>)>| {
            rows.push((
                InsertGrant {
                    id: g.id(tag("admin_users"), a).into(),
                    user_id: g.user_id(a),
                    role_id: role_id(p, a % ADMIN_ROLES.len() as u64),
                    granted_by: (a > 0).then(|| g.user_id(0)),
                },
                user_at(a) + chrono::Duration::hours(1),
            ));
        },
        |(grant, created): &(InsertGrant, chrono::DateTime<chrono::Utc>)| {
            (grant, admin_users::created_at.eq(*created))
        }
    );

    fill!(
        s,
        admin_audit_log,
        ADMINS * AUDIT_PER_ADMIN,
        |i: u64, rows: &mut Vec<(u64, NewAuditEntry, String)>| {
            let mut rng = g.rng(tag("admin_audit_log"), i);
            let target = rng.random_range(0..p.users);
            let (action, before, after) = match i % 3 {
                0 => (
                    "user.verify_email",
                    json!({"email_verified": false}),
                    json!({"email_verified": true}),
                ),
                1 => (
                    "user.update_name",
                    json!({"name": null}),
                    json!({"name": "Renamed"}),
                ),
                _ => (
                    "session.revoke",
                    json!({"revoked": false}),
                    json!({"revoked": true}),
                ),
            };
            let entry = NewAuditEntry {
                action: action.to_owned(),
                entity_type: "user".to_owned(),
                entity_id: Some(g.user_id(target).to_string()),
                before: Some(before),
                after: Some(after),
            };
            validate(&entry).expect("a valid audit entry");
            let ip = format!("198.51.100.{}", rng.random_range(1..255));
            rows.push((i, entry, ip));
        },
        |(i, entry, ip): &(u64, NewAuditEntry, String)| {
            (
                InsertEntry {
                    id: g.id(tag("admin_audit_log"), *i).into(),
                    actor_id: g.user_id(i / AUDIT_PER_ADMIN),
                    action: &entry.action,
                    entity_type: &entry.entity_type,
                    entity_id: entry.entity_id.as_deref(),
                    before: entry.before.as_ref(),
                    after: entry.after.as_ref(),
                    ip_address: Some(ip.as_str()),
                    system_reason: None,
                },
                admin_audit_log::created_at
                    .eq(at(70 * super::generator::DAY + *i as i64 * 7 * HOUR)),
            )
        }
    );
    Ok(())
}
