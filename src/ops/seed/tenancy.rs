//! The tenancy domain: tenants, their members (member 0 owns the tenant),
//! invites in every state, and the activity feed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::generator::{
    ACTIVITY_ACTIONS, COMPANY_A, COMPANY_B, DAY, HOUR, PROJECT_NAMES, at, now, pick, tag,
};
use super::{Seeder, fill};
use crate::Result;
use crate::error::validate;
use crate::schema::{tenant_activity, tenant_invites, tenant_members, tenants};
use crate::tenancy::TenantRole;
use crate::tenancy::tenant_activity::{InsertActivity, NewActivity};
use crate::tenancy::tenant_invites::{InsertInvite, NewInvite};
use crate::tenancy::tenant_members::InsertMember;
use crate::tenancy::tenants::{InsertTenant, NewTenant};
use crate::token;
use rand::Rng;

/// What an invite's later life set: accepted (when, by whom), revoked.
struct InviteFate {
    token_hash: Vec<u8>,
    invited_by: crate::UserId,
    expires_at: DateTime<Utc>,
    accepted: Option<(DateTime<Utc>, crate::UserId)>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

pub(super) async fn seed(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let p = g.plan;

    fill!(
        s,
        tenants,
        p.tenants,
        |t: u64, rows: &mut Vec<(u64, NewTenant)>| {
            let mut rng = g.rng(tag("tenants"), t);
            let name = format!(
                "{} {}",
                pick(&mut rng, COMPANY_A),
                pick(&mut rng, COMPANY_B)
            );
            let tenant = NewTenant {
                slug: format!("{}-{t}-s{}", name.to_lowercase().replace(' ', "-"), g.seed),
                name,
            };
            validate(&tenant).expect("a valid tenant");
            rows.push((t, tenant));
        },
        |(t, tenant): &(u64, NewTenant)| {
            let created = at(g.tenant_created(*t));
            (
                InsertTenant {
                    id: g.tenant_id(*t),
                    name: &tenant.name,
                    slug: &tenant.slug,
                },
                (
                    tenants::created_at.eq(created),
                    tenants::updated_at.eq(created),
                ),
            )
        }
    );

    fill!(
        s,
        tenant_members,
        p.tenants,
        |t: u64, rows: &mut Vec<(InsertMember, DateTime<Utc>)>| {
            for j in 0..p.members_per_tenant.min(p.users) {
                let u = g.member(t, j);
                let role = match j {
                    0 => TenantRole::Owner,
                    1 | 2 => TenantRole::Admin,
                    _ => TenantRole::Member,
                };
                let joined = at(g.tenant_created(t).max(g.user_created(u)) + j as i64 * HOUR);
                rows.push((
                    InsertMember {
                        id: g
                            .id(tag("tenant_members"), t * p.members_per_tenant + j)
                            .into(),
                        tenant_id: g.tenant_id(t),
                        user_id: g.user_id(u),
                        role,
                    },
                    joined,
                ));
            }
        },
        |(member, joined): &(InsertMember, DateTime<Utc>)| {
            (
                member,
                (
                    tenant_members::created_at.eq(*joined),
                    tenant_members::updated_at.eq(*joined),
                ),
            )
        }
    );

    fill!(
        s,
        tenant_invites,
        p.tenants,
        |t: u64, rows: &mut Vec<(u64, u64, NewInvite, InviteFate)>| {
            for k in 0..p.invites_per_tenant {
                let i = t * p.invites_per_tenant + k;
                let mut rng = g.rng(tag("tenant_invites"), i);
                let created = at(g.tenant_created(t) + DAY + rng.random_range(0..60 * DAY));
                // pending, accepted, revoked, expired: one of each in turn.
                let outcome = k % 4;
                let expires_at = if outcome == 3 {
                    created + chrono::Duration::days(7)
                } else {
                    now() + chrono::Duration::days(7)
                };
                let invite = NewInvite {
                    email: format!("invitee.{t}.{k}@{}", g.domain()),
                    role: if k == 0 {
                        TenantRole::Admin
                    } else {
                        TenantRole::Member
                    },
                    // A week's invite; a pending one was (re)sent a week before "now".
                    ttl_seconds: 7 * DAY,
                };
                validate(&invite).expect("a valid invite");
                let fate = InviteFate {
                    token_hash: token::hash(&format!("seed-{}-invite-{i}", g.seed)),
                    invited_by: g.user_id(g.member(t, 0)),
                    expires_at,
                    accepted: (outcome == 1).then(|| {
                        (
                            created + chrono::Duration::hours(5),
                            g.user_id(g.member(t, p.members_per_tenant - 1)),
                        )
                    }),
                    revoked_at: (outcome == 2).then(|| created + chrono::Duration::days(1)),
                    created_at: created,
                };
                rows.push((t, i, invite, fate));
            }
        },
        |(t, i, invite, fate): &(u64, u64, NewInvite, InviteFate)| {
            (
                InsertInvite {
                    id: g.id(tag("tenant_invites"), *i).into(),
                    tenant_id: g.tenant_id(*t),
                    email: &invite.email,
                    role: invite.role,
                    token_hash: &fate.token_hash,
                    invited_by: Some(fate.invited_by),
                    expires_at: fate.expires_at,
                },
                (
                    tenant_invites::accepted_at.eq(fate.accepted.map(|(at, _)| at)),
                    tenant_invites::accepted_by.eq(fate.accepted.map(|(_, by)| by)),
                    tenant_invites::revoked_at.eq(fate.revoked_at),
                    tenant_invites::created_at.eq(fate.created_at),
                ),
            )
        }
    );

    fill!(
        s,
        tenant_activity,
        p.tenants,
        |t: u64, rows: &mut Vec<(u64, u64, NewActivity)>| {
            for k in 0..p.activity_per_tenant {
                let i = t * p.activity_per_tenant + k;
                let mut rng = g.rng(tag("tenant_activity"), i);
                let actor = g.member(t, rng.random_range(0..p.members_per_tenant));
                let activity = NewActivity {
                    actor_id: Some(g.user_id(actor)),
                    action: pick(&mut rng, ACTIVITY_ACTIONS).to_owned(),
                    subject: Some(pick(&mut rng, PROJECT_NAMES).to_owned()),
                    details: json!({"source": "web", "seq": k}),
                };
                validate(&activity).expect("a valid activity");
                rows.push((t, k, activity));
            }
        },
        |(t, k, activity): &(u64, u64, NewActivity)| {
            (
                InsertActivity {
                    id: g
                        .id(tag("tenant_activity"), t * p.activity_per_tenant + k)
                        .into(),
                    tenant_id: g.tenant_id(*t),
                    actor_id: activity.actor_id,
                    action: &activity.action,
                    subject: activity.subject.as_deref(),
                    details: &activity.details,
                },
                tenant_activity::created_at
                    .eq(at(g.tenant_created(*t) + HOUR + *k as i64 * (5 * DAY))),
            )
        }
    );
    Ok(())
}
