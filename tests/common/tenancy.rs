//! Tenancy fixtures shared by `tests/tenancy.rs` and `tests/tenant_invites.rs`.

use database::UserId;
use database::tenancy::{NewInvite, NewTenant, Tenant, TenantRole, tenants};

use super::TestDb;

/// A tenant named after `slug`, owned by `owner`.
pub async fn tenant(t: &TestDb, slug: &str, owner: UserId) -> Tenant {
    let mut conn = t.conn().await;
    tenants::create_with_owner(
        &mut conn,
        &NewTenant {
            name: format!("Tenant {slug}"),
            slug: slug.to_owned(),
        },
        owner,
    )
    .await
    .unwrap()
}

/// An invite of `email` as `role`, valid for a day.
pub fn invite_input(email: &str, role: TenantRole) -> NewInvite {
    NewInvite {
        email: email.to_owned(),
        role,
        ttl_seconds: 86_400,
    }
}
