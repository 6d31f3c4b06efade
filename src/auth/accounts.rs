//! `accounts`: the ways a user signs in (an OAuth provider identity, or a
//! password under the provider `credential`).
//! Portable: every function serves PostgreSQL and SQLite (`crate::db::any`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::db::{AnyConn, Backend, any_run, selectable_on_both};
use crate::error::validate;
use crate::render_once::RenderOnceDsl;
use crate::token::SecretString;
use crate::{AccountId, Error, Result, UserId};

/// The `Conflict { constraint }` of `link` of a provider identity another user already linked.
pub const PROVIDER_ACCOUNT_TAKEN: &str = "accounts_provider_account_key";
/// The `Conflict { constraint }` of `link`/`link_password` when the user already has this provider.
pub const PROVIDER_ALREADY_LINKED: &str = "accounts_user_provider_key";
/// The `Conflict { constraint }` of `unlink` of the user's last login method (they could never sign in again).
pub const LAST_LOGIN_METHOD: &str = "accounts_last_login_method";

/// A row of `accounts`. Tokens and the password hash are `SecretString`s:
/// never serialised, `***` in `Debug`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Identifiable, Serialize)]
#[diesel(table_name = crate::schema::accounts)]
pub struct Account {
    /// Primary key.
    pub id: AccountId,
    /// Whose login method this is.
    pub user_id: UserId,
    /// `google`, `github`, `credential`, ...
    pub provider: String,
    /// The user's id at the provider (for `credential`, the email).
    pub provider_account_id: String,
    /// OAuth access token.
    #[serde(skip)]
    pub access_token: Option<SecretString>,
    /// OAuth refresh token.
    #[serde(skip)]
    pub refresh_token: Option<SecretString>,
    /// OpenID Connect id token.
    #[serde(skip)]
    pub id_token: Option<SecretString>,
    /// When the access token expires.
    pub access_token_expires_at: Option<DateTime<Utc>>,
    /// When the refresh token expires.
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    /// Granted OAuth scopes.
    pub scope: Option<String>,
    /// Password hash (argon2/bcrypt string) for `credential` accounts.
    #[serde(skip)]
    pub password_hash: Option<SecretString>,
    /// When the account was linked.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

selectable_on_both!(Account => accounts {
    id, user_id, provider, provider_account_id, access_token, refresh_token, id_token,
    access_token_expires_at, refresh_token_expires_at, scope, password_hash, created_at,
    updated_at
});

/// Input of `link`: an OAuth provider identity. Whose login method it
/// becomes is `link`'s `user_id` parameter, chosen by the server (the signed-in
/// user), never a field a client sends; passwords go through `link_password`.
#[derive(Debug, Clone, Default, Deserialize, Validate, Insertable)]
#[diesel(table_name = crate::schema::accounts, treat_none_as_default_value = false)]
#[diesel(table_name = crate::schema_sqlite::accounts)]
pub struct LinkAccount {
    /// Provider name, 1 to 64 characters; not `credential` (see `link_password`).
    #[validate(length(min = 1, max = 64), custom(function = "oauth_provider"))]
    pub provider: String,
    /// The provider's id for the user, 1 to 255 characters.
    #[validate(length(min = 1, max = 255), custom(function = "crate::input::line"))]
    pub provider_account_id: String,
    /// OAuth access token.
    pub access_token: Option<SecretString>,
    /// OAuth refresh token.
    pub refresh_token: Option<SecretString>,
    /// OpenID Connect id token.
    pub id_token: Option<SecretString>,
    /// When the access token expires.
    pub access_token_expires_at: Option<DateTime<Utc>>,
    /// When the refresh token expires.
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    /// Granted scopes, at most 1024 characters.
    #[validate(length(max = 1024), custom(function = "crate::input::line"))]
    pub scope: Option<String>,
}

/// The provider name of password accounts.
pub const CREDENTIAL_PROVIDER: &str = "credential";

fn oauth_provider(provider: &str) -> Result<(), validator::ValidationError> {
    if provider == CREDENTIAL_PROVIDER {
        return Err(validator::ValidationError::new("provider")
            .with_message("`credential` accounts are made by link_password".into()));
    }
    Ok(())
}

/// Links an OAuth login method to `user_id` (the server's choice: the
/// signed-in user or the one just created).
///
/// `Conflict` on `accounts_provider_account_key` when the provider identity
/// belongs to someone already, on `accounts_user_provider_key` when the user
/// already linked this provider; `NotFound` when the user doesn't exist.
pub async fn link(
    conn: &mut impl AnyConn,
    user_id: UserId,
    input: &LinkAccount,
) -> Result<Account> {
    validate(input)?;
    any_run!(conn, [accounts] => {
        diesel::insert_into(accounts::table)
            .values((
                accounts::id.eq(AccountId::new()),
                accounts::user_id.eq(user_id),
                input,
            ))
            .returning(Account::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| Error::from(e).not_found_on("accounts_user_id_fkey", "user"))
    })
}

/// Gives `user_id` a password login (provider `credential`, the user's id
/// as provider account id). `password_hash` is the hash the service computed
/// (argon2/bcrypt string, 1 to 1024 characters), never a password.
/// `Conflict { accounts_user_provider_key }` when the user has one already.
pub async fn link_password(
    conn: &mut impl AnyConn,
    user_id: UserId,
    password_hash: &SecretString,
) -> Result<Account> {
    if !(1..=1024).contains(&password_hash.expose().chars().count()) {
        return Err(Error::invalid(
            "password_hash",
            "length",
            "must be 1 to 1024 characters long",
        ));
    }
    any_run!(conn, [accounts] => {
        diesel::insert_into(accounts::table)
            .values((
                accounts::id.eq(AccountId::new()),
                accounts::user_id.eq(user_id),
                accounts::provider.eq(CREDENTIAL_PROVIDER),
                accounts::provider_account_id.eq(user_id.to_string()),
                accounts::password_hash.eq(password_hash),
            ))
            .returning(Account::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| Error::from(e).not_found_on("accounts_user_id_fkey", "user"))
    })
}

/// Removes a login method. Refuses to remove a user's last one (they could
/// never sign in again) with `Conflict { constraint: "accounts_last_login_method" }`.
pub async fn unlink(conn: &mut impl AnyConn, user_id: UserId, provider: &str) -> Result<()> {
    if provider.contains('\0') {
        // Nothing stored contains NUL (PostgreSQL refuses it in text).
        return Err(Error::NotFound { entity: "account" });
    }
    match conn.backend() {
        Backend::Pg(conn) => {
            use crate::schema::users;
            conn.transaction(async |conn| {
                // Lock the user so two concurrent unlinks can't both see "2 left".
                users::table
                    .find(user_id)
                    .select(users::id)
                    .for_update()
                    .first::<UserId>(conn)
                    .await
                    .optional()?
                    .ok_or(Error::NotFound { entity: "user" })?;
                unlink_locked(conn, user_id, provider).await
            })
            .await
        }
        // SQLite has no row locks: BEGIN IMMEDIATE takes the file's write
        // lock before the count, so two unlinks run one after the other.
        Backend::Sqlite(conn) => {
            let result = conn
                .immediate_transaction(async |conn| {
                    use crate::schema_sqlite::users;
                    users::table
                        .find(user_id)
                        .select(users::id)
                        .first::<UserId>(conn)
                        .await
                        .optional()?
                        .ok_or(Error::NotFound { entity: "user" })?;
                    unlink_locked(conn, user_id, provider).await
                })
                .await;
            crate::db::sqlite::name_errors(conn, result).await
        }
    }
}

/// `unlink`'s checks and delete, with the user locked.
async fn unlink_locked(conn: &mut impl AnyConn, user_id: UserId, provider: &str) -> Result<()> {
    any_run!(conn, [accounts] => {
            let count: i64 = accounts::table
                .filter(accounts::user_id.eq(user_id))
                .count()
                .get_result(conn)
                .await?;
            let target = accounts::table
                .filter(accounts::user_id.eq(user_id))
                .filter(accounts::provider.eq(provider));
            let exists: bool = diesel::select(diesel::dsl::exists(target))
                .get_result(conn)
                .await?;
            if !exists {
                return Err(Error::NotFound { entity: "account" });
            }
            if count <= 1 {
                return Err(Error::Conflict {
                    constraint: LAST_LOGIN_METHOD.into(),
                    message: format!("{provider} is the user's only login method"),
                });
            }
            diesel::delete(target).execute(conn).await?;
            Ok(())
    })
}

/// A user's login methods, oldest first.
pub async fn list_for_user(conn: &mut impl AnyConn, user_id: UserId) -> Result<Vec<Account>> {
    any_run!(conn, [accounts] => {
        Ok(accounts::table
            .filter(accounts::user_id.eq(user_id))
            .order((accounts::created_at, accounts::id))
            .select(Account::as_select())
            .load(conn)
            .await?)
    })
}

/// The account of a provider identity: the lookup an OAuth callback makes.
pub async fn find_by_provider(
    conn: &mut impl AnyConn,
    provider: &str,
    provider_account_id: &str,
) -> Result<Account> {
    any_run!(conn, [accounts] => {
        accounts::table
            .filter(accounts::provider.eq(provider))
            .filter(accounts::provider_account_id.eq(provider_account_id))
            .select(Account::as_select())
            .render_once()
            .get_result(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound { entity: "account" })
    })
}
