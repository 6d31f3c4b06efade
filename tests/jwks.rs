//! `jwks` against a real PostgreSQL: creating, rotating, publishing and
//! purging signing keys; private keys sealed under the environment's key and
//! never printed.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use common::{TestDb, conflict_on};
use database::Error;
use database::auth::jwks::{self, JwksEncryptionKey, NewJwk, ONE_SIGNING_KEY};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn enc() -> JwksEncryptionKey {
    JwksEncryptionKey::from_hex(KEY_HEX).unwrap()
}

fn day() -> NewJwk {
    NewJwk {
        ttl_seconds: 86_400,
    }
}

/// Checks `signature` of `message` against the published JWK `kid`.
fn verifies(set: &jwks::JwkSet, kid: &str, message: &[u8], signature: &[u8; 64]) -> bool {
    let Some(jwk) = set.keys.iter().find(|k| k["kid"] == kid) else {
        return false;
    };
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let key = VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
    key.verify(message, &Signature::from_bytes(signature))
        .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_created_used_rotated_published_and_purged() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    assert!(matches!(
        jwks::current(&mut conn, &enc()).await,
        Err(Error::NotFound {
            entity: "signing key"
        })
    ));
    let first = jwks::create(&mut conn, &enc(), &day()).await.unwrap();
    assert_eq!(first.algorithm, "EdDSA");
    assert_eq!(first.public_key["kid"], first.id.to_string());
    let err = jwks::create(&mut conn, &enc(), &day()).await.unwrap_err();
    assert_eq!(conflict_on(&err), ONE_SIGNING_KEY);

    let signer = jwks::current(&mut conn, &enc()).await.unwrap();
    assert_eq!(signer.kid, first.id);
    let signature = signer.sign(b"header.payload");
    let set = jwks::public_jwks(&mut conn).await.unwrap();
    assert!(verifies(
        &set,
        &first.id.to_string(),
        b"header.payload",
        &signature
    ));
    assert!(!verifies(
        &set,
        &first.id.to_string(),
        b"tampered",
        &signature
    ));

    // Rotation: the new key signs, the old one stays published.
    let second = jwks::rotate(&mut conn, &enc(), &day()).await.unwrap();
    let signer = jwks::current(&mut conn, &enc()).await.unwrap();
    assert_eq!(signer.kid, second.id);
    let set = jwks::public_jwks(&mut conn).await.unwrap();
    let kids: Vec<_> = set.keys.iter().map(|k| k["kid"].clone()).collect();
    assert_eq!(
        kids,
        vec![second.id.to_string(), first.id.to_string()],
        "newest first, the retired key still published"
    );
    assert!(verifies(
        &set,
        &first.id.to_string(),
        b"header.payload",
        &signature
    ));

    // Expired keys leave the document, then the table.
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE jwks SET created_at = now() - interval '3 days', \
             expires_at = now() - interval '1 day' WHERE id = '{}'",
            first.id
        )),
        &mut conn,
    )
    .await
    .unwrap();
    assert_eq!(jwks::public_jwks(&mut conn).await.unwrap().keys.len(), 1);
    assert_eq!(jwks::purge_expired(&mut conn, Utc::now()).await.unwrap(), 1);
    assert_eq!(t.count("jwks").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn private_keys_are_sealed_and_never_printed() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let row = jwks::create(&mut conn, &enc(), &day()).await.unwrap();
    let signer = jwks::current(&mut conn, &enc()).await.unwrap();
    let printed = format!(
        "{row:?} {signer:?} {:?} {}",
        enc(),
        serde_json::to_string(&row).unwrap()
    );
    assert!(!printed.contains(KEY_HEX), "{printed}");
    assert!(!printed.contains("private"), "{printed}");

    // The stored bytes are not the key: another encryption key opens nothing.
    let other = JwksEncryptionKey::from_hex(&"ab".repeat(32)).unwrap();
    assert!(matches!(
        jwks::current(&mut conn, &other).await,
        Err(Error::Config(_))
    ));
    // Bad keys and bad input are refused.
    assert!(matches!(
        JwksEncryptionKey::from_hex("00ff"),
        Err(Error::Config(_))
    ));
    let err = jwks::rotate(&mut conn, &enc(), &NewJwk { ttl_seconds: 10 })
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["ttl_seconds"]);
    assert_eq!(t.count("jwks").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_rotations_leave_exactly_one_signing_key() {
    let t = TestDb::new().await;
    jwks::create(&mut *t.conn().await, &enc(), &day())
        .await
        .unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(4));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (db, barrier) = (t.owner.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut conn = db.conn().await.unwrap();
                barrier.wait().await;
                jwks::rotate(&mut conn, &enc(), &day()).await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(err) => assert_eq!(conflict_on(&err), ONE_SIGNING_KEY),
        }
    }
    assert!(won >= 1);
    let signing: i64 = {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel_async::RunQueryDsl::get_result::<N>(
            diesel::sql_query("SELECT count(*) AS n FROM jwks WHERE retired_at IS NULL"),
            &mut *t.conn().await,
        )
        .await
        .unwrap()
        .n
    };
    assert_eq!(signing, 1);
    assert_eq!(t.count("jwks").await, 1 + won);
}
