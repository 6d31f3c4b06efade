//! `sessions`: signed-in browsers and devices. The client holds a random
//! token; the table holds its SHA-256 (see `crate::token`).
//! Portable: every function serves PostgreSQL and SQLite (`crate::db::any`).

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::auth::users::User;
use crate::db::{AnyConn, any_run, selectable_on_both};
use crate::error::validate;
use crate::render_once::RenderOnceDsl;
use crate::{Error, Result, SessionId, TokenRejection, UserId, token};

/// The longest session the crate creates: 400 days (browsers cap cookies there).
pub const MAX_TTL_SECONDS: i64 = 400 * 24 * 3600;

/// A row of `sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Identifiable, Serialize)]
#[diesel(table_name = crate::schema::sessions)]
pub struct Session {
    /// Primary key.
    pub id: SessionId,
    /// Who is signed in.
    pub user_id: UserId,
    /// SHA-256 of the token; the token itself is never stored.
    #[serde(skip)]
    pub token_hash: Vec<u8>,
    /// After this instant the session is no longer valid.
    pub expires_at: DateTime<Utc>,
    /// Set when the session was signed out or revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Client address at sign-in.
    pub ip_address: Option<String>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
    /// When the session started.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

selectable_on_both!(Session => sessions {
    id, user_id, token_hash, expires_at, revoked_at, ip_address, user_agent, created_at,
    updated_at
});

/// Input of `create`.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct NewSession {
    /// Who signs in.
    pub user_id: UserId,
    /// Lifetime in seconds: 1 to 400 days' worth.
    #[validate(range(min = 1, max = 34_560_000))]
    pub ttl_seconds: i64,
    /// An IPv4 or IPv6 address.
    #[validate(ip)]
    pub ip_address: Option<String>,
    /// At most 512 characters.
    #[validate(length(max = 512), custom(function = "crate::input::line"))]
    pub user_agent: Option<String>,
}

/// A new session and the token to give the client (shown only this once).
#[derive(Debug, Clone)]
pub struct CreatedSession {
    /// The stored row.
    pub session: Session,
    /// The bearer token (cookie value); `Debug` prints `***`.
    pub token: token::SecretString,
}

#[derive(Insertable)]
#[diesel(table_name = crate::schema::sessions, treat_none_as_default_value = false)]
#[diesel(table_name = crate::schema_sqlite::sessions)]
pub(crate) struct InsertSession<'a> {
    pub(crate) id: SessionId,
    pub(crate) user_id: UserId,
    pub(crate) token_hash: &'a [u8],
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) ip_address: Option<&'a str>,
    pub(crate) user_agent: Option<&'a str>,
}

/// Starts a session. `NotFound` when the user doesn't exist.
pub async fn create(conn: &mut impl AnyConn, input: &NewSession) -> Result<CreatedSession> {
    validate(input)?;
    let secret = token::generate();
    let session = any_run!(conn, [sessions] => {
        diesel::insert_into(sessions::table)
            .values(InsertSession {
                id: SessionId::new(),
                user_id: input.user_id,
                token_hash: &secret.hash,
                expires_at: Utc::now() + Duration::seconds(input.ttl_seconds),
                ip_address: input.ip_address.as_deref(),
                user_agent: input.user_agent.as_deref(),
            })
            .returning(Session::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| Error::from(e).not_found_on("sessions_user_id_fkey", "user"))
    })?;
    Ok(CreatedSession {
        session,
        token: secret.token,
    })
}

/// The session of a token, if it is neither expired nor revoked.
/// Otherwise `TokenRejected` with `Unknown`, `Expired` or `AlreadyUsed`
/// (revoked), like every refused credential of the crate; a caller treats
/// all three as "signed out".
pub async fn find_valid(conn: &mut impl AnyConn, token: &str) -> Result<Session> {
    let found = any_run!(conn, [sessions] => {
        sessions::table
            .filter(sessions::token_hash.eq(token::hash(token)))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(Utc::now()))
            .select(Session::as_select())
            .render_once()
            .get_result(conn)
            .await
            .optional()
            .map_err(Error::from)
    })?;
    match found {
        Some(found) => Ok(found),
        None => Err(rejected(conn, token).await),
    }
}

/// Why the session of `token` is refused (the rare path: one more lookup).
async fn rejected(conn: &mut impl AnyConn, token: &str) -> Error {
    let state: Result<Option<Option<DateTime<Utc>>>> = any_run!(conn, [sessions] => {
        sessions::table
            .filter(sessions::token_hash.eq(token::hash(token)))
            .select(sessions::revoked_at)
            .get_result(conn)
            .await
            .optional()
            .map_err(Error::from)
    });
    match state {
        Err(e) => e,
        Ok(None) => Error::TokenRejected(TokenRejection::Unknown),
        Ok(Some(Some(_))) => Error::TokenRejected(TokenRejection::AlreadyUsed),
        Ok(Some(None)) => Error::TokenRejected(TokenRejection::Expired),
    }
}

/// Like `find_valid`, with the signed-in user, in one query: what an
/// authentication middleware needs on every request.
pub async fn find_valid_with_user(conn: &mut impl AnyConn, token: &str) -> Result<(Session, User)> {
    let found = any_run!(conn, [sessions, users] => {
        sessions::table
            .inner_join(users::table)
            .filter(sessions::token_hash.eq(token::hash(token)))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(Utc::now()))
            .select((Session::as_select(), User::as_select()))
            .render_once()
            .get_result(conn)
            .await
            .optional()
            .map_err(Error::from)
    })?;
    match found {
        Some(found) => Ok(found),
        None => Err(rejected(conn, token).await),
    }
}

/// Revokes one of `user_id`'s sessions (sign-out). Revoking twice is
/// harmless; `NotFound` when the user has no such session (another user's
/// session is not found either).
pub async fn revoke(conn: &mut impl AnyConn, user_id: UserId, id: SessionId) -> Result<()> {
    let now = Utc::now();
    any_run!(conn, [sessions] => {
        let of_user = sessions::table
            .find(id)
            .filter(sessions::user_id.eq(user_id));
        // Only an unrevoked row changes: the first revocation time is kept.
        let changed = diesel::update(of_user.filter(sessions::revoked_at.is_null()))
            .set(sessions::revoked_at.eq(now))
            .execute(conn)
            .await?;
        if changed == 0 {
            let exists: bool = diesel::select(diesel::dsl::exists(of_user))
                .get_result(conn)
                .await?;
            if !exists {
                return Err(Error::NotFound { entity: "session" });
            }
        }
        Ok(())
    })
}

/// Revokes every live session of a user (sign out everywhere), except
/// `keep` when given (the session making the request). Returns how many.
pub async fn revoke_all_for_user(
    conn: &mut impl AnyConn,
    user_id: UserId,
    keep: Option<SessionId>,
) -> Result<usize> {
    any_run!(conn, [sessions] => {
        let mut query = diesel::update(sessions::table)
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .into_boxed();
        if let Some(keep) = keep {
            query = query.filter(sessions::id.ne(keep));
        }
        Ok(query
            .set(sessions::revoked_at.eq(Utc::now()))
            .execute(conn)
            .await?)
    })
}

/// Deletes sessions that expired or were revoked before `before`.
/// Returns how many rows were deleted.
pub async fn purge_expired(conn: &mut impl AnyConn, before: DateTime<Utc>) -> Result<usize> {
    any_run!(conn, [sessions] => {
        Ok(diesel::delete(
            sessions::table.filter(
                sessions::expires_at
                    .le(before)
                    .or(sessions::revoked_at.le(before)),
            ),
        )
        .execute(conn)
        .await?)
    })
}
