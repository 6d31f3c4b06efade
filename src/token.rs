//! Secret tokens (sessions, verification links, invites).
//!
//! A token is 32 random bytes shown to the user once, hex-encoded. The
//! database keeps only its SHA-256, so reading the table does not give
//! anyone a usable token; a lookup hashes the presented token and finds
//! the row by the hash's unique index.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A freshly generated secret and the hash that is stored for it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The value to hand to the user (64 hex characters). Never stored.
    pub token: String,
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
    Secret { token, hash }
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
        assert_eq!(a.token.len(), 64);
        assert_eq!(super::hash(&a.token), a.hash);
        assert_eq!(a.hash.len(), 32);
        assert!(!format!("{a:?}").contains(&a.token));
    }
}
