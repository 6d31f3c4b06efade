//! Authentication: users, their login accounts, sessions, single-use
//! verification tokens, passkeys and the JSON Web Token signing keys.
//! Tables created in `migrations/2026-11-21-100000_create_auth` (passkeys and
//! jwks in their own migrations).

pub mod accounts;
pub mod jwks;
pub mod passkeys;
pub mod sessions;
pub mod users;
pub mod verifications;

pub use accounts::{Account, LinkAccount};
pub use jwks::{Jwk, JwkSet, JwksEncryptionKey, NewJwk, SigningKey};
pub use passkeys::{Passkey, RegisterPasskey, RenamePasskey, SignIn};
pub use sessions::{CreatedSession, NewSession, Session};
pub use users::{NewUser, User, UserPatch};
pub use verifications::{IssuedVerification, NewVerification, Verification, VerificationPurpose};
