//! Passkeys against a real PostgreSQL: registration, listing, renaming,
//! deletion and the counter rule of sign-in (also under concurrency).

mod common;

use common::{TestDb, user};
use database::auth::passkeys::{self, RegisterPasskey, RenamePasskey, SignIn};
use database::{Error, PasskeyId, UserId};

fn key(credential_id: &str) -> RegisterPasskey {
    RegisterPasskey {
        credential_id: credential_id.into(),
        public_key: vec![7; 77],
        counter: 0,
        transports: vec!["internal".into(), "hybrid".into()],
        device_name: Some("Laptop".into()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn register_list_rename_delete() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let bob = user(&t, "bob@example.com").await;
    let mut conn = t.conn().await;

    let pk = passkeys::register(&mut conn, ann, &key("cred-aaaaaaaaaaaaaaaa"))
        .await
        .unwrap();
    assert_eq!(pk.transports, vec!["internal", "hybrid"]);
    assert_eq!(pk.counter, 0);
    let second = passkeys::register(&mut conn, ann, &key("cred-bbbbbbbbbbbbbbbb"))
        .await
        .unwrap();
    let listed = passkeys::list_for_user(&mut conn, ann, None, 100)
        .await
        .unwrap();
    assert_eq!(listed.items, vec![pk.clone(), second.clone()]);
    assert!(listed.next.is_none());
    // One per page: the cursor leads to the second, and no further.
    let first = passkeys::list_for_user(&mut conn, ann, None, 1)
        .await
        .unwrap();
    assert_eq!(first.items, vec![pk.clone()]);
    let rest = passkeys::list_for_user(&mut conn, ann, first.next, 1)
        .await
        .unwrap();
    assert_eq!(rest.items, vec![second.clone()]);
    assert!(rest.next.is_none());
    assert!(
        passkeys::list_for_user(&mut conn, bob, None, 100)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let err = passkeys::list_for_user(&mut conn, ann, None, 0)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");

    // A credential belongs to one user.
    let err = passkeys::register(&mut conn, bob, &key("cred-aaaaaaaaaaaaaaaa"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { ref constraint, .. } if constraint == "passkeys_credential_id_key")
    );

    let renamed = passkeys::rename(
        &mut conn,
        ann,
        pk.id,
        &RenamePasskey {
            device_name: Some("Phone".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(renamed.device_name.as_deref(), Some("Phone"));
    assert!(matches!(
        passkeys::rename(&mut conn, bob, pk.id, &RenamePasskey { device_name: None }).await,
        Err(Error::NotFound { entity: "passkey" })
    ));
    assert!(matches!(
        passkeys::delete(&mut conn, bob, pk.id).await,
        Err(Error::NotFound { .. })
    ));
    passkeys::delete(&mut conn, ann, pk.id).await.unwrap();
    assert!(matches!(
        passkeys::delete(&mut conn, ann, PasskeyId::new()).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(t.count("passkeys").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_writes_nothing() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;
    let bad = RegisterPasskey {
        credential_id: "short".into(),
        public_key: vec![1; 3],
        counter: -1,
        transports: vec!["carrier-pigeon".into()],
        device_name: Some(String::new()),
    };
    let err = passkeys::register(&mut conn, ann, &bad).await.unwrap_err();
    assert_eq!(
        err.invalid_fields(),
        vec![
            "counter",
            "credential_id",
            "device_name",
            "public_key",
            "transports"
        ]
    );
    let err = passkeys::register(&mut conn, UserId::new(), &key("cred-cccccccccccccccc"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }));
    assert_eq!(t.count("passkeys").await, 0);

    let pk = passkeys::register(&mut conn, ann, &key("cred-cccccccccccccccc"))
        .await
        .unwrap();
    let err = passkeys::rename(
        &mut conn,
        ann,
        pk.id,
        &RenamePasskey {
            device_name: Some("x".repeat(101)),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["device_name"]);
    let err = passkeys::record_sign_in(&mut conn, &pk.credential_id, &SignIn { counter: 1 << 33 })
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["counter"]);
    assert_eq!(
        passkeys::find_by_credential_id(&mut conn, &pk.credential_id)
            .await
            .unwrap(),
        pk
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_refuses_a_counter_that_does_not_increase() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;
    let pk = passkeys::register(&mut conn, ann, &key("cred-dddddddddddddddd"))
        .await
        .unwrap();
    let cred = pk.credential_id.clone();

    // An authenticator without a counter reports 0 every time.
    let zero = passkeys::record_sign_in(&mut conn, &cred, &SignIn { counter: 0 })
        .await
        .unwrap();
    assert!(zero.last_used_at.is_some());
    let five = passkeys::record_sign_in(&mut conn, &cred, &SignIn { counter: 5 })
        .await
        .unwrap();
    assert_eq!(five.counter, 5);
    for stale in [5, 4, 0] {
        let err = passkeys::record_sign_in(&mut conn, &cred, &SignIn { counter: stale })
            .await
            .unwrap_err();
        assert_eq!(err.invalid_fields(), vec!["counter"]);
    }
    assert_eq!(
        passkeys::find_by_credential_id(&mut conn, &cred)
            .await
            .unwrap(),
        five
    );
    assert!(matches!(
        passkeys::record_sign_in(&mut conn, "cred-unknownunknown", &SignIn { counter: 9 }).await,
        Err(Error::NotFound { entity: "passkey" })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_sign_ins_with_one_counter_accept_exactly_one() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let cred = "cred-eeeeeeeeeeeeeeee";
    passkeys::register(&mut *t.conn().await, ann, &key(cred))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let db = t.owner.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = db.conn().await.unwrap();
            passkeys::record_sign_in(&mut conn, cred, &SignIn { counter: 42 }).await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(p) => {
                assert_eq!(p.counter, 42);
                accepted += 1;
            }
            Err(e) => assert_eq!(e.invalid_fields(), vec!["counter"]),
        }
    }
    assert_eq!(accepted, 1);
}
