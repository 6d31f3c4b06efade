//! `jwks`: the keys a service signs its JSON Web Tokens with (Ed25519,
//! `EdDSA`). One key signs at a time (the one not retired); `rotate` makes a
//! new one the signer and retires the old, which stays in the published key
//! set until it expires, so tokens it signed keep verifying.
//!
//! The private key is stored only sealed with ChaCha20-Poly1305 under a
//! `JwksEncryptionKey` from the environment (`JWKS_ENCRYPTION_KEY`), with the
//! key id as associated data (a sealed key copied onto another row does not
//! open). Neither the sealed bytes nor the opened key are ever serialised or
//! printed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use ed25519_dalek::Signer;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use validator::Validate;

use crate::error::validate;
use crate::render_once::RenderOnceDsl;
use crate::schema::jwks;
use crate::{Conn, Error, JwkId, Result};

/// The environment variable holding the key that seals private keys:
/// 64 hex characters (32 bytes), e.g. from `openssl rand -hex 32`.
pub const ENCRYPTION_KEY_VAR: &str = "JWKS_ENCRYPTION_KEY";

/// The one algorithm the table holds (the JWS name of Ed25519 signatures).
pub const ALGORITHM: &str = "EdDSA";

/// The rule reported (as `Conflict { constraint }`) when a second signing
/// key would exist: `create` when one signs already, or two concurrent
/// `rotate`s.
pub const ONE_SIGNING_KEY: &str = "jwks_one_signing_key_idx";

/// The key that seals and opens private keys. `Debug` prints `***`.
#[derive(Clone)]
pub struct JwksEncryptionKey([u8; 32]);

impl JwksEncryptionKey {
    /// From 64 hex characters. `Error::Config` otherwise.
    pub fn from_hex(hex_key: &str) -> Result<Self> {
        let bytes = hex::decode(hex_key.trim()).ok().filter(|b| b.len() == 32);
        let bytes = bytes.ok_or_else(|| {
            Error::Config(format!(
                "{ENCRYPTION_KEY_VAR} must be 64 hex characters (32 bytes)"
            ))
        })?;
        Ok(Self(bytes.try_into().expect("32 bytes")))
    }

    /// From `JWKS_ENCRYPTION_KEY`. `Error::Config` when missing or malformed.
    pub fn from_env() -> Result<Self> {
        let value = std::env::var(ENCRYPTION_KEY_VAR)
            .map_err(|_| Error::Config(format!("{ENCRYPTION_KEY_VAR} is not set")))?;
        Self::from_hex(&value)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.0))
    }
}

impl std::fmt::Debug for JwksEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwksEncryptionKey(***)")
    }
}

/// A row of `jwks`. The sealed private key is neither serialised nor printed.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = jwks, check_for_backend(diesel::pg::Pg))]
pub struct Jwk {
    /// Primary key, and the key id (`kid`) of the JWK.
    pub id: JwkId,
    /// `EdDSA`.
    pub algorithm: String,
    /// The public JWK, as published.
    pub public_key: Value,
    /// nonce || ciphertext || tag of the private key.
    #[serde(skip)]
    private_key: Vec<u8>,
    /// When the key was made.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
    /// Until then it is published; after it, `purge_expired` removes it.
    pub expires_at: DateTime<Utc>,
    /// When a newer key took over signing.
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk")
            .field("id", &self.id)
            .field("algorithm", &self.algorithm)
            .field("expires_at", &self.expires_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// The key that signs now, opened. `Debug` prints only its id.
pub struct SigningKey {
    /// The key id to put in a token's header (`kid`).
    pub kid: JwkId,
    /// The algorithm to put in a token's header (`alg`): `EdDSA`.
    pub algorithm: &'static str,
    /// Until when verifiers accept its signatures.
    pub expires_at: DateTime<Utc>,
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// The Ed25519 signature of `message` (for a JWS: the signing input
    /// `base64url(header) + "." + base64url(payload)`).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The public key set verifiers download (`/.well-known/jwks.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The published (unexpired) public keys, newest first.
    pub keys: Vec<Value>,
}

/// Input of `create` and `rotate`.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct NewJwk {
    /// How long the key stays published: one hour to two years.
    #[validate(range(min = 3600, max = 63_072_000))]
    pub ttl_seconds: i64,
}

#[derive(Insertable)]
#[diesel(table_name = jwks, treat_none_as_default_value = false)]
pub(crate) struct InsertJwk {
    pub(crate) id: JwkId,
    pub(crate) algorithm: &'static str,
    pub(crate) public_key: Value,
    pub(crate) private_key: Vec<u8>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) retired_at: Option<DateTime<Utc>>,
}

impl InsertJwk {
    /// A row for the Ed25519 key with this `secret` seed, sealed under
    /// `encryption` with `nonce`. Callers other than the seed use `fresh`.
    pub(crate) fn sealed(
        id: JwkId,
        encryption: &JwksEncryptionKey,
        secret: &[u8; 32],
        nonce: &[u8; 12],
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(secret);
        let public_key = json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
            "kid": id.to_string(),
            "alg": ALGORITHM,
            "use": "sig",
        });
        let mut private_key = nonce.to_vec();
        private_key.extend(
            encryption
                .cipher()
                .encrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: secret,
                        aad: id.0.as_bytes(),
                    },
                )
                .expect("sealing 32 bytes cannot fail"),
        );
        InsertJwk {
            id,
            algorithm: ALGORITHM,
            public_key,
            private_key,
            created_at,
            updated_at: created_at,
            expires_at,
            retired_at: None,
        }
    }

    /// A new random key, created now.
    fn fresh(encryption: &JwksEncryptionKey, input: &NewJwk) -> Self {
        let (mut secret, mut nonce) = ([0u8; 32], [0u8; 12]);
        rand::rng().fill_bytes(&mut secret);
        rand::rng().fill_bytes(&mut nonce);
        let now = Utc::now();
        let row = Self::sealed(
            JwkId::new(),
            encryption,
            &secret,
            &nonce,
            now,
            now + Duration::seconds(input.ttl_seconds),
        );
        secret.fill(0);
        row
    }
}

/// Opens a row's private key. `Error::Config` when `encryption` is not the
/// key it was sealed with (the environment changed).
fn open(row: &Jwk, encryption: &JwksEncryptionKey) -> Result<SigningKey> {
    let refused = || {
        Error::Config(format!(
            "{ENCRYPTION_KEY_VAR} does not open signing key {}: it was sealed under another key",
            row.id
        ))
    };
    if row.private_key.len() < 12 {
        return Err(refused());
    }
    let (nonce, sealed) = row.private_key.split_at(12);
    let mut secret = encryption
        .cipher()
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: row.id.0.as_bytes(),
            },
        )
        .map_err(|_| refused())?;
    let bytes: [u8; 32] = secret.as_slice().try_into().map_err(|_| refused())?;
    secret.fill(0);
    Ok(SigningKey {
        kid: row.id,
        algorithm: ALGORITHM,
        expires_at: row.expires_at,
        key: ed25519_dalek::SigningKey::from_bytes(&bytes),
    })
}

async fn insert(conn: &mut Conn, row: InsertJwk) -> Result<Jwk> {
    diesel::insert_into(jwks::table)
        .values(row)
        .returning(Jwk::as_returning())
        .get_result(conn)
        .await
        .map_err(Error::from)
}

/// Creates the first signing key. `Conflict { ONE_SIGNING_KEY }` when a key
/// signs already (use `rotate` to replace it).
pub async fn create(
    conn: &mut Conn,
    encryption: &JwksEncryptionKey,
    input: &NewJwk,
) -> Result<Jwk> {
    validate(input)?;
    insert(conn, InsertJwk::fresh(encryption, input)).await
}

/// The key that signs now (not retired, not expired), opened.
/// `NotFound { signing key }` when there is none (create or rotate one);
/// `Error::Config` when `encryption` does not open it.
pub async fn current(conn: &mut Conn, encryption: &JwksEncryptionKey) -> Result<SigningKey> {
    let row = jwks::table
        .filter(jwks::retired_at.is_null())
        .filter(jwks::expires_at.gt(Utc::now()))
        .select(Jwk::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound {
            entity: "signing key",
        })?;
    open(&row, encryption)
}

/// Makes a new key the signer and retires the current one (which stays
/// published until it expires), in one transaction. Returns the new key's
/// row. Two concurrent rotations: one wins, the other gets
/// `Conflict { ONE_SIGNING_KEY }` and changes nothing.
pub async fn rotate(
    conn: &mut Conn,
    encryption: &JwksEncryptionKey,
    input: &NewJwk,
) -> Result<Jwk> {
    validate(input)?;
    let row = InsertJwk::fresh(encryption, input);
    conn.transaction(async |conn| {
        diesel::update(jwks::table.filter(jwks::retired_at.is_null()))
            .set(jwks::retired_at.eq(Utc::now()))
            .execute(conn)
            .await?;
        insert(conn, row).await
    })
    .await
}

/// The public key set: every unexpired key's public JWK, newest first.
pub async fn public_jwks(conn: &mut Conn) -> Result<JwkSet> {
    let keys = jwks::table
        .filter(jwks::expires_at.gt(Utc::now()))
        .order((jwks::created_at.desc(), jwks::id.desc()))
        .select(jwks::public_key)
        .load(conn)
        .await?;
    Ok(JwkSet { keys })
}

/// Deletes the keys that expired at or before `before`; returns how many.
pub async fn purge_expired(conn: &mut Conn, before: DateTime<Utc>) -> Result<usize> {
    Ok(
        diesel::delete(jwks::table.filter(jwks::expires_at.le(before)))
            .execute(conn)
            .await?,
    )
}
