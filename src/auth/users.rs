//! `users`: a person who can sign in. Email is unique whatever its case.
//! Portable: every function serves PostgreSQL and SQLite (`crate::db::any`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::db::{AnyConn, Backend, any_run, selectable_on_both};
use crate::error::validate;
use crate::functions::lower;
use crate::render_once::RenderOnceDsl;
use crate::{Error, Result, UserId};

/// The `Conflict { constraint }` of `create` with an email another user has (case-insensitively).
pub const EMAIL_TAKEN: &str = "users_email_lower_key";

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Identifiable, Serialize)]
#[diesel(table_name = crate::schema::users)]
pub struct User {
    /// Primary key.
    pub id: UserId,
    /// The address as the user typed it; unique case-insensitively.
    pub email: String,
    /// Whether the address was proven (by a consumed verification).
    pub email_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// Avatar URL.
    pub image: Option<String>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

selectable_on_both!(User => users {
    id, email, email_verified, name, image, created_at, updated_at
});

/// Input of `create`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct NewUser {
    /// A valid address, at most 254 characters.
    #[validate(email, length(max = 254))]
    pub email: String,
    /// 1 to 100 characters.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub name: Option<String>,
    /// A URL of at most 2048 characters.
    #[validate(url, length(max = 2048))]
    pub image: Option<String>,
    /// Set by the server when the provider already proved the address (OAuth
    /// sign-up); never read from a client's JSON.
    #[serde(skip)]
    pub email_verified: bool,
}

#[derive(Insertable)]
#[diesel(table_name = crate::schema::users, treat_none_as_default_value = false)]
#[diesel(table_name = crate::schema_sqlite::users)]
pub(crate) struct InsertUser<'a> {
    pub(crate) id: UserId,
    pub(crate) email: &'a str,
    pub(crate) email_verified: bool,
    pub(crate) name: Option<&'a str>,
    pub(crate) image: Option<&'a str>,
}

/// Input of `update_profile`: `None` leaves a field alone,
/// `Some(None)` clears it, `Some(Some(v))` sets it. Only what a user may
/// change about themselves (`email_verified` is `set_email_verified`'s).
#[derive(Debug, Clone, Default, Deserialize, Validate, AsChangeset)]
#[diesel(table_name = crate::schema::users)]
pub struct UserPatch {
    /// New display name (1 to 100 characters) or `Some(None)` to clear it.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub name: Option<Option<String>>,
    /// New avatar URL or `Some(None)` to clear it.
    #[validate(url, length(max = 2048))]
    pub image: Option<Option<String>>,
}

impl UserPatch {
    fn is_empty(&self) -> bool {
        self.name.is_none() && self.image.is_none()
    }
}

/// Creates a user. `Error::Conflict { constraint: "users_email_lower_key" }`
/// when the address is taken (in any case).
pub async fn create(conn: &mut impl AnyConn, input: &NewUser) -> Result<User> {
    validate(input)?;
    any_run!(conn, [users] => {
        diesel::insert_into(users::table)
            .values(InsertUser {
                id: UserId::new(),
                email: &input.email,
                email_verified: input.email_verified,
                name: input.name.as_deref(),
                image: input.image.as_deref(),
            })
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .map_err(Error::from)
    })
}

/// `create` with the id and instants given (the SQLite seed: same seed,
/// same rows); `input` is validated by the caller.
#[cfg(feature = "ops")]
pub(crate) async fn insert_seeded(
    conn: &mut crate::db::sqlite::SqliteConn,
    id: UserId,
    input: &NewUser,
    at: DateTime<Utc>,
) -> Result<User> {
    use crate::schema_sqlite::users;
    use diesel_async::RunQueryDsl;
    diesel::insert_into(users::table)
        .values((
            InsertUser {
                id,
                email: &input.email,
                email_verified: input.email_verified,
                name: input.name.as_deref(),
                image: input.image.as_deref(),
            },
            users::created_at.eq(at),
            users::updated_at.eq(at),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .map_err(Error::from)
}

/// The user with this id.
pub async fn find(conn: &mut impl AnyConn, id: UserId) -> Result<User> {
    any_run!(conn, [users] => {
        users::table
            .find(id)
            .select(User::as_select())
            .render_once()
            .get_result(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound { entity: "user" })
    })
}

/// The user with this address, compared case-insensitively.
pub async fn find_by_email(conn: &mut impl AnyConn, email: &str) -> Result<User> {
    if email.contains('\0') {
        // Nothing stored contains NUL (PostgreSQL refuses it in text).
        return Err(Error::NotFound { entity: "user" });
    }
    any_run!(conn, [users] => {
        users::table
            .filter(lower(users::email).eq(lower(email)))
            .select(User::as_select())
            .render_once()
            .get_result(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound { entity: "user" })
    })
}

/// Changes the profile fields given in `patch`; returns the updated row.
pub async fn update_profile(
    conn: &mut impl AnyConn,
    id: UserId,
    patch: &UserPatch,
) -> Result<User> {
    validate(patch)?;
    if patch.is_empty() {
        return find(conn, id).await;
    }
    any_run!(conn, [users] => {
        diesel::update(users::table.find(id))
            .set((
                patch.name.as_ref().map(|v| users::name.eq(v)),
                patch.image.as_ref().map(|v| users::image.eq(v)),
                SQLITE.then(|| users::updated_at.eq(Utc::now())),
            ))
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound { entity: "user" })
    })
}

/// Records whether the user's address is proven: the server's decision
/// (a consumed verification, a provider's word), never a profile edit.
pub async fn set_email_verified(
    conn: &mut impl AnyConn,
    id: UserId,
    verified: bool,
) -> Result<User> {
    any_run!(conn, [users] => {
        diesel::update(users::table.find(id))
            .set((
                users::email_verified.eq(verified),
                SQLITE.then(|| users::updated_at.eq(Utc::now())),
            ))
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound { entity: "user" })
    })
}

/// Deletes a user; accounts, sessions and memberships go with it (ON DELETE
/// CASCADE). `Conflict { tenant_members::LAST_OWNER }` while the user is the
/// only owner of a tenant (deleting the tenant with them would destroy the
/// other members' data): ownership must be transferred first.
/// (On SQLite there are no tenants: the user and their rows go.)
pub async fn delete(conn: &mut impl AnyConn, id: UserId) -> Result<()> {
    match conn.backend() {
        Backend::Pg(conn) => {
            use crate::schema::users;
            conn.transaction(async |conn| {
                crate::tenancy::tenant_members::ensure_user_owns_no_tenant_alone(conn, id).await?;
                match diesel::delete(users::table.find(id)).execute(conn).await? {
                    0 => Err(Error::NotFound { entity: "user" }),
                    _ => Ok(()),
                }
            })
            .await
        }
        Backend::Sqlite(conn) => {
            use crate::schema_sqlite::users;
            match diesel::delete(users::table.find(id)).execute(conn).await? {
                0 => Err(Error::NotFound { entity: "user" }),
                _ => Ok(()),
            }
        }
    }
}
