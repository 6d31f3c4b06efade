//! `verifications`: single-use, expiring tokens (email verification,
//! password reset, ...). A token is consumed by one UPDATE that matches only
//! an unconsumed, unexpired row, so of two concurrent consumers exactly one
//! wins (on SQLite too: writers take the file's lock one at a time).
//! Portable: every function serves PostgreSQL and SQLite (`crate::db::any`).

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::db::{AnyConn, any_run, selectable_on_both};
use crate::error::validate;
use crate::render_once::RenderOnceDsl;
use crate::{Error, Result, TokenRejection, VerificationId, token};

crate::sql_enum! {
    /// What a verification token proves or allows.
    pub enum VerificationPurpose: crate::schema::sql_types::VerificationPurpose,
        sqlite diesel::sql_types::Text {
        /// The user owns the email address.
        EmailVerification => "email_verification",
        /// The user may set a new password.
        PasswordReset => "password_reset",
        /// The user owns the new address of an email change.
        EmailChange => "email_change",
        /// Passwordless sign-in.
        MagicLink => "magic_link",
    }
}

/// A row of `verifications`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Identifiable, Serialize)]
#[diesel(table_name = crate::schema::verifications)]
pub struct Verification {
    /// Primary key.
    pub id: VerificationId,
    /// What the token is for.
    pub purpose: VerificationPurpose,
    /// What is being verified: usually an email address.
    pub identifier: String,
    /// SHA-256 of the token.
    #[serde(skip)]
    pub token_hash: Vec<u8>,
    /// After this instant the token is refused.
    pub expires_at: DateTime<Utc>,
    /// When the token was used; a used token is refused.
    pub consumed_at: Option<DateTime<Utc>>,
    /// When the token was issued.
    pub created_at: DateTime<Utc>,
}

selectable_on_both!(Verification => verifications {
    id, purpose, identifier, token_hash, expires_at, consumed_at, created_at
});

/// Input of `issue`.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct NewVerification {
    /// What the token is for.
    pub purpose: VerificationPurpose,
    /// What is being verified, 1 to 255 characters.
    #[validate(length(min = 1, max = 255), custom(function = "crate::input::line"))]
    pub identifier: String,
    /// Lifetime in seconds: one minute to 30 days.
    #[validate(range(min = 60, max = 2_592_000))]
    pub ttl_seconds: i64,
}

/// An issued token: the row, and the token to send (shown only this once).
#[derive(Debug, Clone)]
pub struct IssuedVerification {
    /// The stored row.
    pub verification: Verification,
    /// The token to put in the link; `Debug` prints `***`.
    pub token: crate::token::SecretString,
}

#[derive(Insertable)]
#[diesel(treat_none_as_default_value = false, table_name = crate::schema::verifications)]
#[diesel(table_name = crate::schema_sqlite::verifications)]
pub(crate) struct InsertVerification<'a> {
    pub(crate) id: VerificationId,
    pub(crate) purpose: VerificationPurpose,
    pub(crate) identifier: &'a str,
    pub(crate) token_hash: &'a [u8],
    pub(crate) expires_at: DateTime<Utc>,
}

/// Issues a new token.
pub async fn issue(conn: &mut impl AnyConn, input: &NewVerification) -> Result<IssuedVerification> {
    validate(input)?;
    let secret = token::generate();
    let verification = any_run!(conn, [verifications] => {
        diesel::insert_into(verifications::table)
            .values(InsertVerification {
                id: VerificationId::new(),
                purpose: input.purpose,
                identifier: &input.identifier,
                token_hash: &secret.hash,
                expires_at: Utc::now() + Duration::seconds(input.ttl_seconds),
            })
            .returning(Verification::as_returning())
            .get_result(conn)
            .await
            .map_err(Error::from)
    })?;
    Ok(IssuedVerification {
        verification,
        token: secret.token,
    })
}

/// Consumes a token for `purpose`, exactly once.
///
/// `Error::TokenRejected` with `Unknown` (no such token for this purpose),
/// `Expired` or `AlreadyUsed`; nothing is written then.
pub async fn consume(
    conn: &mut impl AnyConn,
    purpose: VerificationPurpose,
    token: &str,
) -> Result<Verification> {
    let hash = token::hash(token);
    let now = Utc::now();
    any_run!(conn, [verifications] => {
        let mine = || {
            verifications::table
                .filter(verifications::token_hash.eq(&hash))
                .filter(verifications::purpose.eq(purpose))
        };
        let consumed = diesel::update(
            mine()
                .filter(verifications::consumed_at.is_null())
                .filter(verifications::expires_at.gt(now)),
        )
        .set(verifications::consumed_at.eq(now))
        .returning(Verification::as_returning())
        .get_result(conn)
        .await
        .optional()?;
        if let Some(v) = consumed {
            return Ok(v);
        }
        // Nothing matched: say why, from the row as it is now.
        let row = mine()
            .select(Verification::as_select())
            .render_once()
            .get_result(conn)
            .await
            .optional()?;
        Err(Error::TokenRejected(match row {
            None => TokenRejection::Unknown,
            Some(v) if v.consumed_at.is_some() => TokenRejection::AlreadyUsed,
            Some(_) => TokenRejection::Expired,
    }))
    })
}

/// Deletes tokens that expired before `before`. Returns how many.
pub async fn purge_expired(conn: &mut impl AnyConn, before: DateTime<Utc>) -> Result<usize> {
    any_run!(conn, [verifications] => {
        Ok(
            diesel::delete(verifications::table.filter(verifications::expires_at.le(before)))
                .execute(conn)
                .await?,
        )
    })
}
