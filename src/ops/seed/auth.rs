//! The auth domain: users, their login methods, sessions, verifications
//! and passkeys, and the signing keys.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::generator::{DAY, HOUR, SEED_JWKS_ENCRYPTION_KEY, at, base, now, pick, tag};
use super::{Seeder, fill};
use crate::Result;
use crate::auth::accounts::LinkAccount;
use crate::auth::jwks::{InsertJwk, JwksEncryptionKey};
use crate::auth::passkeys::{InsertPasskey, RegisterPasskey};
use crate::auth::sessions::{InsertSession, NewSession};
use crate::auth::users::{InsertUser, NewUser};
use crate::auth::verifications::{InsertVerification, NewVerification, VerificationPurpose};
use crate::error::validate;
use crate::schema::{accounts, passkeys, sessions, users, verifications};
use crate::token::{self, SecretString};
use rand::Rng;

/// A verification's token hash and what its life set.
struct VerificationLife {
    token_hash: Vec<u8>,
    created_at: DateTime<Utc>,
    consumed_at: Option<DateTime<Utc>>,
}

/// A session's token hash and what its life set.
struct SessionLife {
    token_hash: Vec<u8>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

pub(super) async fn seed(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let p = g.plan;
    let user_at = |u: u64| at(g.user_created(u));

    fill!(
        s,
        users,
        p.users,
        |u: u64, rows: &mut Vec<(u64, NewUser, DateTime<Utc>)>| {
            let mut rng = g.rng(tag("users.extra"), u);
            let (first, last) = g.user_name(u);
            let user = NewUser {
                email: g.email(u),
                email_verified: rng.random_bool(0.85),
                name: Some(format!("{first} {last}")),
                image: rng
                    .random_bool(0.4)
                    .then(|| format!("https://avatars.example.com/u/{}.png", g.user_id(u))),
            };
            validate(&user).expect("a valid user");
            let updated = user_at(u) + chrono::Duration::seconds(rng.random_range(0..30 * DAY));
            rows.push((u, user, updated));
        },
        |(u, user, updated): &(u64, NewUser, DateTime<Utc>)| {
            (
                InsertUser {
                    id: g.user_id(*u),
                    email: &user.email,
                    email_verified: user.email_verified,
                    name: user.name.as_deref(),
                    image: user.image.as_deref(),
                },
                (
                    users::created_at.eq(user_at(*u)),
                    users::updated_at.eq(*updated),
                ),
            )
        }
    );

    // OAuth accounts are what `accounts::link` writes (a validated
    // `LinkAccount`); password accounts what `accounts::link_password`
    // writes: the same insert type, provider `credential`, the user's id as
    // provider account id, and the hash.
    fill!(
        s,
        accounts,
        p.users,
        |u: u64, rows: &mut Vec<(u64, LinkAccount, Option<SecretString>)>| {
            let mut rng = g.rng(tag("accounts"), u);
            let provider = pick(&mut rng, &["credential", "credential", "github", "google"]);
            if provider == "credential" {
                // Not a real hash of any password: demo users sign in by other means.
                let hash = format!(
                    "$argon2id$v=19$m=19456,t=2,p=1$c2VlZHNhbHQ${}",
                    hex::encode(token::hash(&format!("seed-{}-password-{u}", g.seed)))
                );
                let account = LinkAccount {
                    provider: provider.to_owned(),
                    provider_account_id: g.user_id(u).to_string(),
                    ..LinkAccount::default()
                };
                rows.push((u, account, Some(SecretString::from(hash))));
            } else {
                let account = LinkAccount {
                    provider: provider.to_owned(),
                    provider_account_id: format!("{}{u:08}", g.seed),
                    access_token: Some(SecretString::from(format!("gho_seed{}_{u}", g.seed))),
                    refresh_token: Some(SecretString::from(format!("ghr_seed{}_{u}", g.seed))),
                    access_token_expires_at: Some(now() + chrono::Duration::hours(8)),
                    scope: Some("read:user user:email".to_owned()),
                    ..LinkAccount::default()
                };
                validate(&account).expect("a valid OAuth account");
                rows.push((u, account, None));
            }
        },
        |(u, account, password_hash): &(u64, LinkAccount, Option<SecretString>)| {
            (
                accounts::id.eq(crate::AccountId::from(g.id(tag("accounts"), *u))),
                accounts::user_id.eq(g.user_id(*u)),
                account,
                (
                    accounts::password_hash.eq(password_hash.as_ref()),
                    accounts::created_at.eq(user_at(*u)),
                    accounts::updated_at.eq(user_at(*u)),
                ),
            )
        }
    );

    fill!(
        s,
        sessions,
        p.users,
        |u: u64, rows: &mut Vec<(u64, NewSession, SessionLife)>| {
            let mut rng = g.rng(tag("sessions"), u);
            let created = now() - chrono::Duration::seconds(rng.random_range(HOUR..20 * DAY));
            let revoked_at = rng
                .random_bool(0.1)
                .then(|| created + chrono::Duration::hours(2));
            let session = NewSession {
                user_id: g.user_id(u),
                ttl_seconds: 30 * DAY,
                ip_address: Some(format!("203.0.113.{}", rng.random_range(1..255))),
                user_agent: Some(
                    pick(
                        &mut rng,
                        &[
                            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
                            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0",
                            "Mozilla/5.0 (X11; Linux x86_64) Firefox/127.0",
                        ],
                    )
                    .to_owned(),
                ),
            };
            validate(&session).expect("a valid session");
            let life = SessionLife {
                token_hash: token::hash(&format!("seed-{}-session-{u}", g.seed)),
                revoked_at,
                created_at: created,
            };
            rows.push((u, session, life));
        },
        |(u, session, life): &(u64, NewSession, SessionLife)| {
            (
                InsertSession {
                    id: g.id(tag("sessions"), *u).into(),
                    user_id: session.user_id,
                    token_hash: &life.token_hash,
                    expires_at: life.created_at + chrono::Duration::seconds(session.ttl_seconds),
                    ip_address: session.ip_address.as_deref(),
                    user_agent: session.user_agent.as_deref(),
                },
                (
                    sessions::revoked_at.eq(life.revoked_at),
                    sessions::created_at.eq(life.created_at),
                    sessions::updated_at.eq(life.created_at),
                ),
            )
        }
    );

    fill!(
        s,
        verifications,
        p.users,
        |u: u64, rows: &mut Vec<(u64, NewVerification, VerificationLife)>| {
            let mut rng = g.rng(tag("verifications"), u);
            let created = user_at(u);
            // Everyone verified their email once; some asked for a reset too.
            let verify = NewVerification {
                purpose: VerificationPurpose::EmailVerification,
                identifier: g.email(u),
                ttl_seconds: DAY,
            };
            validate(&verify).expect("a valid verification");
            let life = VerificationLife {
                token_hash: token::hash(&format!("seed-{}-verify-{u}", g.seed)),
                created_at: created,
                consumed_at: Some(created + chrono::Duration::minutes(7)),
            };
            rows.push((u * 2, verify, life));
            if rng.random_bool(0.1) {
                let asked = now() - chrono::Duration::minutes(rng.random_range(5..600));
                let reset = NewVerification {
                    purpose: VerificationPurpose::PasswordReset,
                    identifier: g.email(u),
                    ttl_seconds: HOUR,
                };
                validate(&reset).expect("a valid verification");
                let life = VerificationLife {
                    token_hash: token::hash(&format!("seed-{}-reset-{u}", g.seed)),
                    created_at: asked,
                    consumed_at: None,
                };
                rows.push((u * 2 + 1, reset, life));
            }
        },
        |(i, verification, life): &(u64, NewVerification, VerificationLife)| {
            (
                InsertVerification {
                    id: g.id(tag("verifications"), *i).into(),
                    purpose: verification.purpose,
                    identifier: &verification.identifier,
                    token_hash: &life.token_hash,
                    expires_at: life.created_at
                        + chrono::Duration::seconds(verification.ttl_seconds),
                },
                (
                    verifications::consumed_at.eq(life.consumed_at),
                    verifications::created_at.eq(life.created_at),
                ),
            )
        }
    );

    fill!(
        s,
        passkeys,
        p.users,
        |u: u64, rows: &mut Vec<(u64, RegisterPasskey, DateTime<Utc>, DateTime<Utc>)>| {
            let mut rng = g.rng(tag("passkeys"), u);
            if !rng.random_bool(0.2) {
                return;
            }
            let created = user_at(u) + chrono::Duration::days(rng.random_range(1..20));
            let mut key = vec![0x04u8];
            key.extend(token::hash(&format!("seed-{}-pk-x-{u}", g.seed)));
            key.extend(token::hash(&format!("seed-{}-pk-y-{u}", g.seed)));
            let passkey = RegisterPasskey {
                credential_id: hex::encode(
                    &token::hash(&format!("seed-{}-cred-{u}", g.seed))[..20],
                ),
                public_key: key,
                counter: rng.random_range(0..500),
                transports: vec!["internal".into(), "hybrid".into()],
                device_name: Some(
                    pick(&mut rng, &["MacBook Pro", "iPhone", "Pixel 8", "YubiKey 5"]).to_owned(),
                ),
            };
            validate(&passkey).expect("a valid passkey");
            let last_used = now() - chrono::Duration::hours(rng.random_range(1..500));
            rows.push((u, passkey, created, last_used));
        },
        |(u, passkey, created, last_used): &(
            u64,
            RegisterPasskey,
            DateTime<Utc>,
            DateTime<Utc>
        )| {
            (
                InsertPasskey {
                    id: g.id(tag("passkeys"), *u).into(),
                    user_id: g.user_id(*u),
                    credential_id: &passkey.credential_id,
                    public_key: &passkey.public_key,
                    counter: passkey.counter,
                    transports: &passkey.transports,
                    device_name: passkey.device_name.as_deref(),
                },
                (
                    passkeys::last_used_at.eq(Some(*last_used)),
                    passkeys::created_at.eq(*created),
                    passkeys::updated_at.eq(*created),
                ),
            )
        }
    );
    Ok(())
}

/// Signing keys, built by the domain's own constructor: two retired (still
/// published until they expire), one signing. Only one key may sign per
/// database, so a second seed's signing key is skipped.
pub(super) async fn jwks(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let jwks_key = JwksEncryptionKey::from_env().unwrap_or_else(|_| {
        JwksEncryptionKey::from_hex(SEED_JWKS_ENCRYPTION_KEY).expect("a valid development key")
    });
    fill!(
        s,
        jwks,
        3,
        |i: u64, rows: &mut Vec<InsertJwk>| {
            let mut rng = g.rng(tag("jwks"), i);
            let (mut secret, mut nonce) = ([0u8; 32], [0u8; 12]);
            rng.fill(&mut secret);
            rng.fill(&mut nonce);
            let created = base() + chrono::Duration::days(30 * i as i64);
            let mut row = InsertJwk::sealed(
                g.id(tag("jwks"), i).into(),
                &jwks_key,
                &secret,
                &nonce,
                created,
                created + chrono::Duration::days(90),
            );
            row.retired_at = (i < 2).then(|| created + chrono::Duration::days(30));
            rows.push(row);
        },
        |row: &InsertJwk| row
    );
    Ok(())
}
