//! Secrets: `SecretString`, the one redacting type for every token and
//! password hash, and the random tokens of sessions, verification links and
//! invites.
//!
//! A token is 32 random bytes shown to the user once, hex-encoded. The
//! database keeps only its SHA-256, so reading the table does not give
//! anyone a usable token; a lookup hashes the presented token and finds
//! the row by the hash's unique index.

use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{Output, ToSql};
use diesel::sql_types::Text;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The one type for a value that must not leak: a token shown to a user
/// once, a password hash, an OAuth token, a private key. `Debug` and
/// `Display` print `***`; it has no `Serialize` (a struct holding one either
/// skips it or opts in with `#[serde(serialize_with = "token::serialize_exposed")]`);
/// the value is read only through `expose()`, so every use is visible in
/// the code. It reads and writes as `text`.
#[derive(Clone, PartialEq, Eq, Hash, serde::Deserialize, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: for the one place that must hand it over (a
    /// cookie, an email link, a hash check).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl ToSql<Text, Pg> for SecretString {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
        <str as ToSql<Text, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<Text, Pg> for SecretString {
    fn from_sql(bytes: PgValue<'_>) -> diesel::deserialize::Result<Self> {
        <String as FromSql<Text, Pg>>::from_sql(bytes).map(Self)
    }
}

impl ToSql<Text, diesel::sqlite::Sqlite> for SecretString {
    fn to_sql<'b>(
        &'b self,
        out: &mut Output<'b, '_, diesel::sqlite::Sqlite>,
    ) -> diesel::serialize::Result {
        out.set_value(self.0.as_str());
        Ok(diesel::serialize::IsNull::No)
    }
}

impl FromSql<Text, diesel::sqlite::Sqlite> for SecretString {
    fn from_sql(
        bytes: diesel::sqlite::SqliteValue<'_, '_, '_>,
    ) -> diesel::deserialize::Result<Self> {
        <String as FromSql<Text, diesel::sqlite::Sqlite>>::from_sql(bytes).map(Self)
    }
}

/// Serialises the secret in clear: only for a field whose owner asked for it
/// (`#[serde(serialize_with = "database::token::serialize_exposed")]`).
pub fn serialize_exposed<S: serde::Serializer>(
    secret: &SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&secret.0)
}

/// A freshly generated secret and the hash that is stored for it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The value to hand to the user (64 hex characters). Never stored.
    pub token: SecretString,
    /// `sha256(token)`, what the database stores.
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Generates a new random token.
pub fn generate() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = hash(&token);
    Secret {
        token: SecretString(token),
        hash,
    }
}

/// The stored form of a token.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_random_and_hash_deterministically() {
        let a = super::generate();
        let b = super::generate();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.expose().len(), 64);
        assert_eq!(super::hash(a.token.expose()), a.hash);
        assert_eq!(a.hash.len(), 32);
        assert!(!format!("{a:?}").contains(a.token.expose()));
        assert_eq!(format!("{:?} {}", a.token, a.token), "*** ***");
    }
}
