//! Authentication: users, their login accounts, sessions and single-use
//! verification tokens. Tables created in `migrations/2026-11-21-100000_create_auth`.

pub mod accounts;
pub mod passkeys;
pub mod sessions;
pub mod users;
pub mod verifications;

pub use accounts::{Account, LinkAccount};
pub use passkeys::{Passkey, RegisterPasskey, RenamePasskey, SignIn};
pub use sessions::{CreatedSession, NewSession, Session};
pub use users::{NewUser, User, UserPatch};
pub use verifications::{IssuedVerification, NewVerification, Verification, VerificationPurpose};
