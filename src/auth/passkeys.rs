//! `passkeys`: a user's WebAuthn credentials. Sign-in accepts a passkey's
//! signature counter only if it increased (a counter that goes back means
//! the authenticator may have been cloned); the check and the write are one
//! UPDATE, so of two concurrent sign-ins with the same counter one wins.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text};
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use crate::error::validate;
use crate::inline_limit::InlineLimitDsl;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::render_once::RenderOnceDsl;
use crate::schema::passkeys;
use crate::{Conn, Error, PasskeyId, Result, UserId};

/// The `Conflict { constraint }` of `register` of a credential id that is already registered.
pub const CREDENTIAL_TAKEN: &str = "passkeys_credential_id_key";

/// The transports WebAuthn defines (`AuthenticatorTransport`).
pub const TRANSPORTS: &[&str] = &["usb", "nfc", "ble", "internal", "hybrid", "smart-card"];

/// A row of `passkeys`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = passkeys, check_for_backend(diesel::pg::Pg))]
pub struct Passkey {
    /// Primary key.
    pub id: PasskeyId,
    /// The owner.
    pub user_id: UserId,
    /// The credential id (base64url), unique.
    pub credential_id: String,
    /// The COSE public key.
    pub public_key: Vec<u8>,
    /// The last accepted signature counter.
    pub counter: i64,
    /// How the browser can reach the authenticator.
    #[diesel(deserialize_as = Transports)]
    pub transports: Vec<String>,
    /// A name the user chose.
    pub device_name: Option<String>,
    /// Last successful sign-in.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

/// `text[]` without NULL elements (the CHECK constraint forbids them); the
/// column's read form, used by `Passkey`.
#[derive(diesel::deserialize::FromSqlRow)]
pub struct Transports(pub Vec<String>);

impl diesel::deserialize::FromSql<Array<Nullable<Text>>, Pg> for Transports {
    fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        let items: Vec<Option<String>> =
            diesel::deserialize::FromSql::<Array<Nullable<Text>>, Pg>::from_sql(bytes)?;
        Ok(Transports(items.into_iter().flatten().collect()))
    }
}

impl From<Transports> for Vec<String> {
    fn from(t: Transports) -> Self {
        t.0
    }
}

fn known_transports(transports: &[String]) -> Result<(), ValidationError> {
    if transports.iter().all(|t| TRANSPORTS.contains(&t.as_str())) {
        Ok(())
    } else {
        Err(ValidationError::new("transport")
            .with_message(format!("each must be one of: {}", TRANSPORTS.join(", ")).into()))
    }
}

/// Input of `register`: a verified registration response.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct RegisterPasskey {
    /// The credential id (base64url), 16 to 1366 characters.
    #[validate(length(min = 16, max = 1366), custom(function = "crate::input::line"))]
    pub credential_id: String,
    /// The COSE public key, 16 to 2048 bytes.
    #[validate(length(min = 16, max = 2048, message = "must be 16 to 2048 bytes long"))]
    pub public_key: Vec<u8>,
    /// The initial signature counter (0 to 2^32-1).
    #[validate(range(min = 0, max = 4_294_967_295_i64))]
    pub counter: i64,
    /// Known WebAuthn transports.
    #[validate(custom(function = "known_transports"))]
    pub transports: Vec<String>,
    /// 1 to 100 characters.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub device_name: Option<String>,
}

/// Input of `rename`.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct RenamePasskey {
    /// New name (1 to 100 characters), or `None` to clear it.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub device_name: Option<String>,
}

/// Input of `record_sign_in`: the counter of a verified assertion.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct SignIn {
    /// The assertion's signature counter (0 to 2^32-1).
    #[validate(range(min = 0, max = 4_294_967_295_i64))]
    pub counter: i64,
}

#[derive(Insertable)]
#[diesel(table_name = passkeys, treat_none_as_default_value = false)]
pub(crate) struct InsertPasskey<'a> {
    pub(crate) id: PasskeyId,
    pub(crate) user_id: UserId,
    pub(crate) credential_id: &'a str,
    pub(crate) public_key: &'a [u8],
    pub(crate) counter: i64,
    pub(crate) transports: &'a Vec<String>,
    pub(crate) device_name: Option<&'a str>,
}

/// Registers a passkey. `Conflict { constraint: "passkeys_credential_id_key" }`
/// when the credential is already registered; `NotFound` for a missing user.
pub async fn register(
    conn: &mut Conn,
    user_id: UserId,
    input: &RegisterPasskey,
) -> Result<Passkey> {
    validate(input)?;
    diesel::insert_into(passkeys::table)
        .values(InsertPasskey {
            id: PasskeyId::new(),
            user_id,
            credential_id: &input.credential_id,
            public_key: &input.public_key,
            counter: input.counter,
            transports: &input.transports,
            device_name: input.device_name.as_deref(),
        })
        .returning(Passkey::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| Error::from(e).not_found_on("passkeys_user_id_fkey", "user"))
}

/// A page of the user's passkeys, oldest first, after `after` (exclusive).
pub async fn list_for_user(
    conn: &mut Conn,
    user_id: UserId,
    after: Option<Cursor<PasskeyId>>,
    limit: i64,
) -> Result<Page<Passkey, PasskeyId>> {
    check_limit(limit)?;
    let mut query = passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order((passkeys::created_at.asc(), passkeys::id.asc()))
        .select(Passkey::as_select())
        .into_boxed();
    if let Some(c) = after {
        query = query.filter(
            passkeys::created_at
                .gt(c.created_at)
                .or(passkeys::created_at
                    .eq(c.created_at)
                    .and(passkeys::id.gt(c.id))),
        );
    }
    let rows = query.inline_limit(limit as u32 + 1).load(conn).await?;
    Ok(page_of(rows, limit, |r: &Passkey| Cursor {
        created_at: r.created_at,
        id: r.id,
    }))
}

/// The passkey with this credential id (the sign-in lookup).
pub async fn find_by_credential_id(conn: &mut Conn, credential_id: &str) -> Result<Passkey> {
    if credential_id.contains('\0') {
        // Nothing stored contains NUL (PostgreSQL refuses it in text).
        return Err(Error::NotFound { entity: "passkey" });
    }
    passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .select(Passkey::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "passkey" })
}

/// Renames one of the user's passkeys.
pub async fn rename(
    conn: &mut Conn,
    user_id: UserId,
    id: PasskeyId,
    input: &RenamePasskey,
) -> Result<Passkey> {
    validate(input)?;
    diesel::update(
        passkeys::table
            .find(id)
            .filter(passkeys::user_id.eq(user_id)),
    )
    .set(passkeys::device_name.eq(input.device_name.as_deref()))
    .returning(Passkey::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or(Error::NotFound { entity: "passkey" })
}

/// Deletes one of the user's passkeys.
pub async fn delete(conn: &mut Conn, user_id: UserId, id: PasskeyId) -> Result<()> {
    let n = diesel::delete(
        passkeys::table
            .find(id)
            .filter(passkeys::user_id.eq(user_id)),
    )
    .execute(conn)
    .await?;
    if n == 0 {
        return Err(Error::NotFound { entity: "passkey" });
    }
    Ok(())
}

/// Accepts a sign-in: stores the new counter and the time. Refused with
/// `Invalid` on `counter` unless the counter increased (authenticators that
/// do not count report 0 every time, which is accepted while the stored
/// counter is 0, as WebAuthn prescribes).
pub async fn record_sign_in(
    conn: &mut Conn,
    credential_id: &str,
    input: &SignIn,
) -> Result<Passkey> {
    validate(input)?;
    let accepted = diesel::update(
        passkeys::table
            .filter(passkeys::credential_id.eq(credential_id))
            .filter(
                passkeys::counter.lt(input.counter).or(passkeys::counter
                    .eq(0)
                    .and(input.counter.into_sql::<diesel::sql_types::BigInt>().eq(0))),
            ),
    )
    .set((
        passkeys::counter.eq(input.counter),
        passkeys::last_used_at.eq(Some(Utc::now())),
    ))
    .returning(Passkey::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    match accepted {
        Some(p) => Ok(p),
        None => {
            let stored = find_by_credential_id(conn, credential_id).await?;
            Err(Error::invalid(
                "counter",
                "not_increasing",
                format!(
                    "must be greater than the stored counter {} (possible cloned authenticator)",
                    stored.counter
                ),
            ))
        }
    }
}
