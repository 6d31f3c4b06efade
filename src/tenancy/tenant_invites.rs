//! `tenant_invites`: single-use, expiring, revocable invitations into a
//! tenant. The token is shown once; only its SHA-256 is stored.
//!
//! `accept` claims the invite with one UPDATE that matches only a pending,
//! unexpired row, then creates the membership and records activity in the
//! same transaction: of two concurrent accepts exactly one wins, and a
//! refused accept writes nothing.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use validator::Validate;

use super::tenant_activity;
use super::tenant_members::{TenantMember, TenantRole};
use crate::error::validate;
use crate::inline_limit::InlineLimitDsl;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::render_once::RenderOnceDsl;
use crate::schema::tenant_invites;
use crate::{
    CachedExt, Conn, Error, Result, TenantActivityId, TenantId, TenantInviteId, TenantMemberId,
    TokenRejection, UserId, token,
};

/// A row of `tenant_invites`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = tenant_invites, check_for_backend(diesel::pg::Pg))]
pub struct TenantInvite {
    /// Primary key.
    pub id: TenantInviteId,
    /// The tenant the invite is into.
    pub tenant_id: TenantId,
    /// Where the invite was sent.
    pub email: String,
    /// The role the invitee gets.
    pub role: TenantRole,
    /// SHA-256 of the token.
    #[serde(skip)]
    pub token_hash: Vec<u8>,
    /// Who sent it (None once that user is deleted).
    pub invited_by: Option<UserId>,
    /// After this instant the invite is refused.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// Who accepted it.
    pub accepted_by: Option<UserId>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
}

/// Input of `invite`.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct NewInvite {
    /// A valid address, at most 254 characters.
    #[validate(email, length(max = 254))]
    pub email: String,
    /// The role the invitee gets.
    pub role: TenantRole,
    /// Lifetime in seconds: one hour to 30 days.
    #[validate(range(min = 3600, max = 2_592_000))]
    pub ttl_seconds: i64,
}

/// A sent invite: the row, and the token to send (shown only this once).
#[derive(Debug, Clone)]
pub struct IssuedInvite {
    /// The stored row.
    pub invite: TenantInvite,
    /// The token to put in the link; `Debug` prints `***`.
    pub token: crate::token::SecretString,
}

#[derive(Insertable)]
#[diesel(table_name = tenant_invites, treat_none_as_default_value = false)]
pub(crate) struct InsertInvite<'a> {
    pub(crate) id: TenantInviteId,
    pub(crate) tenant_id: TenantId,
    pub(crate) email: &'a str,
    pub(crate) role: TenantRole,
    pub(crate) token_hash: &'a [u8],
    pub(crate) invited_by: Option<UserId>,
    pub(crate) expires_at: DateTime<Utc>,
}

/// Invites `input.email` into `tenant` on behalf of `inviter`.
pub async fn invite(
    conn: &mut Conn,
    tenant: TenantId,
    inviter: UserId,
    input: &NewInvite,
) -> Result<IssuedInvite> {
    validate(input)?;
    let secret = token::generate();
    conn.transaction(async |conn| {
        let invite = diesel::insert_into(tenant_invites::table)
            .values(InsertInvite {
                id: TenantInviteId::new(),
                tenant_id: tenant,
                email: &input.email,
                role: input.role,
                token_hash: &secret.hash,
                invited_by: Some(inviter),
                expires_at: Utc::now() + Duration::seconds(input.ttl_seconds),
            })
            .returning(TenantInvite::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| {
                Error::from(e)
                    .not_found_on("tenant_invites_tenant_id_fkey", "tenant")
                    .not_found_on("tenant_invites_invited_by_fkey", "user")
            })?;
        tenant_activity::append(
            conn,
            tenant,
            Some(inviter),
            "invite.created",
            Some(&invite.id.to_string()),
            &json!({ "email": invite.email, "role": invite.role }),
        )
        .await?;
        Ok(IssuedInvite {
            invite,
            token: secret.token.clone(),
        })
    })
    .await
}

/// Accepts the invite of `tenant` whose token is `token`, making `user` a
/// member with the invite's role.
///
/// `TokenRejected` with `Unknown` (no such invite in this tenant), `Expired`,
/// or `AlreadyUsed` (accepted or revoked); `Conflict
/// { tenant_members_tenant_user_key }` when `user` is already a member.
/// Nothing is written in any of those cases.
pub async fn accept(
    conn: &mut Conn,
    tenant: TenantId,
    token: &str,
    user: UserId,
) -> Result<TenantMember> {
    use diesel::sql_types::{Bytea, Timestamptz, Uuid};
    let hash = token::hash(token);
    // Claim, membership and activity in ONE statement (data-modifying CTEs):
    // atomic without an explicit transaction, and one round trip instead of
    // five, prepared once per connection (`cached`). The UPDATE only matches a pending, unexpired invite; a
    // concurrent accept of the same row waits on its row lock, then
    // re-checks and matches nothing, so its inserts see no claimed row.
    // Columns are listed, never `*`: the statement is cached on every
    // connection, and a cached plan whose result type changes (a migration
    // added a column) fails with "cached plan must not change result type".
    let accepted = diesel::sql_query(
        "WITH claimed AS ( \
             UPDATE tenant_invites SET accepted_at = $1, accepted_by = $2 \
             WHERE tenant_id = $3 AND token_hash = $4 AND accepted_at IS NULL \
               AND revoked_at IS NULL AND expires_at > $1 \
             RETURNING id, role), \
         member AS ( \
             INSERT INTO tenant_members (id, tenant_id, user_id, role) \
             SELECT $5, $3, $2, role FROM claimed \
             RETURNING id, tenant_id, user_id, role, created_at, updated_at), \
         activity AS ( \
             INSERT INTO tenant_activity (id, tenant_id, actor_id, action, subject, details) \
             SELECT $6, $3, $2, 'invite.accepted', claimed.id::text, jsonb_build_object('role', claimed.role) \
             FROM claimed) \
         SELECT id, tenant_id, user_id, role, created_at, updated_at FROM member",
    )
    .bind::<Timestamptz, _>(Utc::now())
    .bind::<Uuid, _>(user)
    .bind::<Uuid, _>(tenant)
    .bind::<Bytea, _>(&hash)
    .bind::<Uuid, _>(TenantMemberId::new())
    .bind::<Uuid, _>(TenantActivityId::new())
    .cached()
    .get_result::<TenantMember>(conn)
    .await
    .optional()
    .map_err(|e| {
        Error::from(e)
            .not_found_on("tenant_invites_accepted_by_fkey", "user")
            .not_found_on("tenant_members_user_id_fkey", "user")
    })?;
    if let Some(member) = accepted {
        return Ok(member);
    }
    // Nothing was claimed (and so nothing written): say why.
    let row = tenant_invites::table
        .filter(tenant_invites::tenant_id.eq(tenant))
        .filter(tenant_invites::token_hash.eq(&hash))
        .select(TenantInvite::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?;
    Err(Error::TokenRejected(match row {
        None => TokenRejection::Unknown,
        Some(i) if i.accepted_at.is_some() || i.revoked_at.is_some() => TokenRejection::AlreadyUsed,
        Some(_) => TokenRejection::Expired,
    }))
}

/// Revokes a pending invite of `tenant`. `NotFound { invite }` when there is
/// no such pending invite in this tenant.
pub async fn revoke(
    conn: &mut Conn,
    tenant: TenantId,
    actor: UserId,
    invite: TenantInviteId,
) -> Result<TenantInvite> {
    conn.transaction(async |conn| {
        let revoked = diesel::update(
            tenant_invites::table
                .filter(tenant_invites::tenant_id.eq(tenant))
                .filter(tenant_invites::id.eq(invite))
                .filter(tenant_invites::accepted_at.is_null())
                .filter(tenant_invites::revoked_at.is_null()),
        )
        .set(tenant_invites::revoked_at.eq(Utc::now()))
        .returning(TenantInvite::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "invite" })?;
        tenant_activity::append(
            conn,
            tenant,
            Some(actor),
            "invite.revoked",
            Some(&invite.to_string()),
            &json!({ "email": revoked.email }),
        )
        .await?;
        Ok(revoked)
    })
    .await
}

/// A page of `tenant`'s pending invites (not accepted, revoked or expired),
/// newest first, after `after` (exclusive).
pub async fn list_pending(
    conn: &mut Conn,
    tenant: TenantId,
    after: Option<Cursor<TenantInviteId>>,
    limit: i64,
) -> Result<Page<TenantInvite, TenantInviteId>> {
    let invites = tenant_invites::table
        .filter(tenant_invites::tenant_id.eq(tenant))
        .into_boxed();
    pending_page(conn, invites, after, limit).await
}

/// A page of the pending invites (not accepted, revoked or expired) sent to
/// `user`'s address, in every tenant, newest first, after `after`
/// (exclusive): what an invitee who is not a member yet reads before
/// choosing a tenant. Under a context with the user and no tenant, the
/// `invitee` policy lets exactly these rows through. Empty until the
/// address is verified (anyone can sign up with an address they do not
/// hold).
pub async fn pending_for_invitee(
    conn: &mut Conn,
    user: UserId,
    after: Option<Cursor<TenantInviteId>>,
    limit: i64,
) -> Result<Page<TenantInvite, TenantInviteId>> {
    use crate::functions::lower;
    use crate::schema::users;
    let address = users::table
        .filter(users::id.eq(user))
        .filter(users::email_verified.eq(true))
        .select(lower(users::email));
    let invites = tenant_invites::table
        .filter(lower(tenant_invites::email).eq_any(address))
        .into_boxed();
    pending_page(conn, invites, after, limit).await
}

/// The pending ones among `invites`, newest first, after `after`
/// (exclusive): the page both listings read.
async fn pending_page(
    conn: &mut Conn,
    invites: tenant_invites::BoxedQuery<'static, diesel::pg::Pg>,
    after: Option<Cursor<TenantInviteId>>,
    limit: i64,
) -> Result<Page<TenantInvite, TenantInviteId>> {
    check_limit(limit)?;
    let mut query = invites
        .filter(tenant_invites::accepted_at.is_null())
        .filter(tenant_invites::revoked_at.is_null())
        .filter(tenant_invites::expires_at.gt(Utc::now()))
        .select(TenantInvite::as_select())
        .order((tenant_invites::created_at.desc(), tenant_invites::id.desc()));
    if let Some(c) = after {
        query = query.filter(
            tenant_invites::created_at
                .lt(c.created_at)
                .or(tenant_invites::created_at
                    .eq(c.created_at)
                    .and(tenant_invites::id.lt(c.id))),
        );
    }
    let rows = query.inline_limit(limit as u32 + 1).load(conn).await?;
    Ok(page_of(rows, limit, |r: &TenantInvite| Cursor {
        created_at: r.created_at,
        id: r.id,
    }))
}
