//! The auth domain against a real PostgreSQL and against SQLite (every test
//! runs on both: `name::postgres`, `name::sqlite`): happy paths, bad input
//! (typed error naming the field, nothing written), conflicts and races.

mod common;

use chrono::{Duration, Utc};
use database::auth::{
    LinkAccount, NewSession, NewUser, NewVerification, UserPatch, VerificationPurpose, accounts,
    sessions, users, verifications,
};
use database::token::SecretString;
use database::{Error, TokenRejection, UserId};

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        name: Some("Ann".into()),
        ..Default::default()
    }
}

fn link(provider: &str, id: &str) -> LinkAccount {
    LinkAccount {
        provider: provider.into(),
        provider_account_id: id.into(),
        ..Default::default()
    }
}

fn session_for(user_id: UserId) -> NewSession {
    NewSession {
        user_id,
        ttl_seconds: 3600,
        ip_address: Some("10.1.2.3".into()),
        user_agent: Some("test".into()),
    }
}

// ---------------------------------------------------------------- users

on_both_backends! {
    async fn users_create_find_update_delete(t) {
        let mut conn = t.conn().await;
        let ann = users::create(&mut conn, &new_user("Ann@Example.com"))
            .await
            .unwrap();
        assert_eq!(ann.email, "Ann@Example.com", "stored as typed");
        assert!(!ann.email_verified);

        assert_eq!(users::find(&mut conn, ann.id).await.unwrap(), ann);
        assert_eq!(
            users::find_by_email(&mut conn, "ann@example.COM")
                .await
                .unwrap()
                .id,
            ann.id
        );

        let patch = UserPatch {
            name: Some(Some("Ann B".into())),
            image: Some(Some("https://img.example.com/a.png".into())),
        };
        let updated = users::update_profile(&mut conn, ann.id, &patch)
            .await
            .unwrap();
        assert_eq!(updated.name.as_deref(), Some("Ann B"));
        assert!(!updated.email_verified);
        assert!(
            updated.updated_at > ann.updated_at,
            "the trigger keeps updated_at"
        );

        // Some(None) clears, None leaves alone; an empty patch changes nothing.
        let cleared = users::update_profile(
            &mut conn,
            ann.id,
            &UserPatch {
                image: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(cleared.image, None);
        assert_eq!(cleared.name.as_deref(), Some("Ann B"));
        assert_eq!(
            users::update_profile(&mut conn, ann.id, &UserPatch::default())
                .await
                .unwrap(),
            cleared
        );

        users::delete(&mut conn, ann.id).await.unwrap();
        assert!(matches!(
            users::find(&mut conn, ann.id).await,
            Err(Error::NotFound { entity: "user" })
        ));
        assert!(matches!(
            users::delete(&mut conn, ann.id).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            users::update_profile(&mut conn, ann.id, &patch).await,
            Err(Error::NotFound { entity: "user" })
        ));
        assert!(matches!(
            users::find_by_email(&mut conn, "nobody@example.com").await,
            Err(Error::NotFound { .. })
        ));
    }
}

on_both_backends! {
    async fn users_bad_input_names_the_field_and_writes_nothing(t) {
        let mut conn = t.conn().await;
        let cases: Vec<(NewUser, Vec<&str>)> = vec![
            (new_user("not-an-email"), vec!["email"]),
            (
                new_user(&format!("{}@example.com", "a".repeat(250))),
                vec!["email"],
            ),
            (
                NewUser {
                    name: Some(String::new()),
                    ..new_user("a@example.com")
                },
                vec!["name"],
            ),
            (
                NewUser {
                    name: Some("x".repeat(101)),
                    ..new_user("a@example.com")
                },
                vec!["name"],
            ),
            (
                NewUser {
                    image: Some("not a url".into()),
                    ..new_user("a@example.com")
                },
                vec!["image"],
            ),
            (
                NewUser {
                    email: "bad".into(),
                    image: Some("bad".into()),
                    ..Default::default()
                },
                vec!["email", "image"],
            ),
        ];
        for (input, fields) in cases {
            let err = users::create(&mut conn, &input).await.unwrap_err();
            assert_eq!(err.invalid_fields(), fields, "{input:?}: {err}");
        }
        assert_eq!(t.count("users").await, 0);

        let ann = users::create(&mut conn, &new_user("ann@example.com"))
            .await
            .unwrap();
        let err = users::update_profile(
            &mut conn,
            ann.id,
            &UserPatch {
                name: Some(Some(String::new())),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.invalid_fields(), vec!["name"]);
        assert_eq!(
            users::find(&mut conn, ann.id).await.unwrap(),
            ann,
            "nothing changed"
        );
    }
}

on_both_backends! {
    async fn email_is_unique_whatever_its_case_even_under_a_race(t) {
        let mut conn = t.conn().await;
        users::create(&mut conn, &new_user("ann@example.com"))
            .await
            .unwrap();
        let err = users::create(&mut conn, &new_user("ANN@example.com"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Conflict { constraint, .. } if constraint == "users_email_lower_key"),
            "{err:?}"
        );

        let racers = (0..8).map(|i| {
            let db = t.db.clone();
            tokio::spawn(async move {
                let mut conn = db.conn().await.unwrap();
                let email = if i % 2 == 0 {
                    "race@example.com"
                } else {
                    "RACE@example.com"
                };
                users::create(&mut conn, &new_user(email)).await
            })
        });
        let results = futures::future::join_all(racers).await;
        let won = results
            .iter()
            .filter(|r| r.as_ref().unwrap().is_ok())
            .count();
        assert_eq!(won, 1);
        assert!(
            results
                .iter()
                .all(|r| matches!(r.as_ref().unwrap(), Ok(_) | Err(Error::Conflict { .. })))
        );
        assert_eq!(t.count("users").await, 2);
    }
}

// ---------------------------------------------------------------- errors

/// `err` is `Invalid` on exactly `field` with `code`.
fn assert_invalid(err: &Error, field: &str, code: &str) {
    match err {
        Error::Invalid(input) => {
            assert_eq!(input.field_names(), [field], "{err:?}");
            assert_eq!(input.fields[0].code, code, "{err:?}");
        }
        other => panic!("expected Invalid on {field}, got {other:?}"),
    }
}

on_both_backends! {
    /// One error contract: every broken rule gives the same variant, field
    /// and constraint name on both backends, whether a repository function
    /// or the caller's own SQL broke it (SQLite reports a UNIQUE rule by
    /// its columns and names no foreign key; the crate reads the rest from
    /// the file's catalog, with no list kept by hand).
    async fn each_broken_rule_gives_the_same_error_on_both_backends(t) {
        let mut conn = t.conn().await;
        let ann = users::create(&mut conn, &new_user("ann@example.com")).await.unwrap();
        let bob = users::create(&mut conn, &new_user("bob@example.com")).await.unwrap();

        // UNIQUE: an expression index, and an index of columns.
        let err = users::create(&mut conn, &new_user("ANN@example.com")).await.unwrap_err();
        assert!(err.is_conflict("users_email_lower_key"), "{err:?}");
        accounts::link(&mut conn, ann.id, &link("github", "1")).await.unwrap();
        accounts::link(&mut conn, bob.id, &link("gitlab", "2")).await.unwrap();
        let err = accounts::link(&mut conn, bob.id, &link("github", "1")).await.unwrap_err();
        assert!(err.is_conflict("accounts_provider_account_key"), "{err:?}");
        let err = t
            .execute("UPDATE accounts SET provider = 'github', provider_account_id = '1'")
            .await
            .unwrap_err();
        assert!(err.is_conflict("accounts_provider_account_key"), "{err:?}");
        let err = t
            .execute("UPDATE accounts SET id = (SELECT id FROM accounts ORDER BY id LIMIT 1)")
            .await
            .unwrap_err();
        assert!(err.is_conflict("accounts_pkey"), "{err:?}");

        // FOREIGN KEY: a repository function says which parent is missing;
        // the caller's own statement gets a Conflict (named on PostgreSQL).
        let err = accounts::link(&mut conn, UserId::new(), &link("x", "y")).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { entity: "user" }), "{err:?}");
        let err = t.execute("UPDATE accounts SET user_id = id").await.unwrap_err();
        let expected = match t.backend() {
            "postgresql" => "accounts_user_id_fkey",
            _ => database::error::FOREIGN_KEY_UNNAMED,
        };
        assert!(err.is_conflict(expected), "{err:?}");

        // CHECK and NOT NULL: Invalid, naming the constraint or the column.
        let long = "x".repeat(101);
        let err = t
            .execute(&format!("UPDATE users SET name = '{long}'"))
            .await
            .unwrap_err();
        assert_invalid(&err, "users_name_length", "check");
        let err = t.execute("UPDATE users SET email = NULL").await.unwrap_err();
        assert_invalid(&err, "email", "required");

        // Nothing of the failed statements was written.
        assert_eq!(t.count("accounts").await, 2);
        assert_eq!(
            accounts::find_by_provider(&mut conn, "github", "1").await.unwrap().user_id,
            ann.id
        );
        assert_eq!(users::find(&mut conn, bob.id).await.unwrap().name.as_deref(), Some("Ann"));

        // A table that is not there: the schema does not match the code.
        t.execute("DROP TABLE verifications").await.unwrap();
        let err = verifications::issue(
            &mut conn,
            &verification(VerificationPurpose::EmailVerification),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::SchemaMismatch(_)), "{err:?}");
    }
}

/// Every unique rule of `migrations_sqlite/` is a named unique index or a
/// primary key: SQLite calls an inline `UNIQUE (...)` `sqlite_autoindex_*`,
/// a name that cannot be PostgreSQL's constraint name, so a violation of it
/// would stay named by its columns.
#[tokio::test(flavor = "multi_thread")]
async fn every_sqlite_unique_rule_is_a_named_index() {
    #[derive(diesel::QueryableByName)]
    struct Inline {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        index_name: String,
    }
    let t = common::any::AnyTestDb::sqlite().await;
    let database::AnyPooledConn::Sqlite(mut conn) = t.conn().await else {
        unreachable!("a SQLite test database")
    };
    let inline: Vec<Inline> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT m.name AS table_name, il.name AS index_name \
             FROM sqlite_master AS m, pragma_index_list(m.name) AS il \
             WHERE m.type = 'table' AND il.\"unique\" AND il.origin = 'u'",
        ),
        &mut *conn,
    )
    .await
    .unwrap();
    let inline: Vec<String> = inline
        .iter()
        .map(|i| format!("{} ({})", i.table_name, i.index_name))
        .collect();
    assert!(
        inline.is_empty(),
        "write CREATE UNIQUE INDEX <name> instead: {inline:?}"
    );
}

// ---------------------------------------------------------------- accounts

on_both_backends! {
    async fn accounts_link_list_find_unlink(t) {
        let mut conn = t.conn().await;
        let ann = users::create(&mut conn, &new_user("ann@example.com"))
            .await
            .unwrap();
        let github = accounts::link(
            &mut conn,
            ann.id,
            &LinkAccount {
                access_token: Some(SecretString::new("gho_secret")),
                ..link("github", "123")
            },
        )
        .await
        .unwrap();
        let google = accounts::link(&mut conn, ann.id, &link("google", "g-9"))
            .await
            .unwrap();
        assert!(
            !format!("{github:?}").contains("gho_secret"),
            "Debug hides tokens"
        );

        let listed = accounts::list_for_user(&mut conn, ann.id).await.unwrap();
        assert_eq!(
            listed.iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![github.id, google.id]
        );
        assert_eq!(
            accounts::find_by_provider(&mut conn, "github", "123")
                .await
                .unwrap()
                .user_id,
            ann.id
        );

        accounts::unlink(&mut conn, ann.id, "github").await.unwrap();
        assert_eq!(
            accounts::list_for_user(&mut conn, ann.id)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            accounts::unlink(&mut conn, ann.id, "github").await,
            Err(Error::NotFound { entity: "account" })
        ));
        assert!(matches!(
            accounts::find_by_provider(&mut conn, "github", "123").await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            accounts::unlink(&mut conn, UserId::new(), "google").await,
            Err(Error::NotFound { entity: "user" })
        ));
    }
}

on_both_backends! {
    async fn accounts_bad_input_and_conflicts_write_nothing(t) {
        let mut conn = t.conn().await;
        let ann = users::create(&mut conn, &new_user("ann@example.com"))
            .await
            .unwrap();
        let bob = users::create(&mut conn, &new_user("bob@example.com"))
            .await
            .unwrap();

        for (input, field) in [
            (link("", "1"), "provider"),
            (link(&"p".repeat(65), "1"), "provider"),
            (link("github", ""), "provider_account_id"),
            // Passwords only through link_password.
            (link("credential", "ann"), "provider"),
        ] {
            let err = accounts::link(&mut conn, ann.id, &input).await.unwrap_err();
            assert_eq!(err.invalid_fields(), vec![field]);
        }
        let err = accounts::link_password(&mut conn, ann.id, &SecretString::new(""))
            .await
            .unwrap_err();
        assert_eq!(err.invalid_fields(), vec!["password_hash"]);
        assert_eq!(t.count("accounts").await, 0);

        let err = accounts::link(&mut conn, UserId::new(), &link("github", "1"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { entity: "user" }), "{err:?}");

        accounts::link(&mut conn, ann.id, &link("github", "1"))
            .await
            .unwrap();
        let taken = accounts::link(&mut conn, bob.id, &link("github", "1"))
            .await
            .unwrap_err();
        assert!(
            matches!(&taken, Error::Conflict { constraint, .. } if constraint == "accounts_provider_account_key"),
            "{taken:?}"
        );
        let twice = accounts::link(&mut conn, ann.id, &link("github", "2"))
            .await
            .unwrap_err();
        assert!(
            matches!(&twice, Error::Conflict { constraint, .. } if constraint == "accounts_user_provider_key"),
            "{twice:?}"
        );
        assert_eq!(t.count("accounts").await, 1);
    }
}

on_both_backends! {
    async fn the_last_login_method_cannot_be_unlinked_even_by_two_racing_requests(t) {
        let mut conn = t.conn().await;
        for round in 0..5 {
            let user = users::create(&mut conn, &new_user(&format!("u{round}@example.com")))
                .await
                .unwrap();
            accounts::link(&mut conn, user.id, &link("github", &format!("gh{round}")))
                .await
                .unwrap();
            accounts::link(&mut conn, user.id, &link("google", &format!("go{round}")))
                .await
                .unwrap();
            let unlinks = ["github", "google"].map(|provider| {
                let db = t.db.clone();
                tokio::spawn(async move {
                    let mut conn = db.conn().await.unwrap();
                    accounts::unlink(&mut conn, user.id, provider).await
                })
            });
            let results = futures::future::join_all(unlinks).await;
            let ok = results
                .iter()
                .filter(|r| r.as_ref().unwrap().is_ok())
                .count();
            assert_eq!(ok, 1, "{results:?}");
            let left = accounts::list_for_user(&mut conn, user.id).await.unwrap();
            assert_eq!(left.len(), 1);
            let err = accounts::unlink(&mut conn, user.id, &left[0].provider)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::Conflict { constraint, .. } if constraint == "accounts_last_login_method")
            );
        }
    }
}

on_both_backends! {
    async fn a_client_cannot_set_what_the_server_decides(t) {
        let mut conn = t.conn().await;
        // JSON straight from a request body: privileged fields are not read.
        let input: NewUser =
            serde_json::from_str(r#"{"email": "eve@example.com", "email_verified": true}"#).unwrap();
        let eve = users::create(&mut conn, &input).await.unwrap();
        assert!(!eve.email_verified, "a client verified its own address");
        let patch: UserPatch =
            serde_json::from_str(r#"{"name": "Eve", "email_verified": true}"#).unwrap();
        let eve = users::update_profile(&mut conn, eve.id, &patch)
            .await
            .unwrap();
        assert_eq!(eve.name.as_deref(), Some("Eve"));
        assert!(!eve.email_verified, "a profile edit verified the address");
        let verified = users::set_email_verified(&mut conn, eve.id, true)
            .await
            .unwrap();
        assert!(verified.email_verified);

        // An account is linked to the user the server names, whatever the body says.
        let ann = users::create(&mut conn, &new_user("ann@example.com"))
            .await
            .unwrap();
        let body = format!(
            r#"{{"user_id": "{}", "provider": "github", "provider_account_id": "1",
                "password_hash": "x"}}"#,
            ann.id
        );
        let input: LinkAccount = serde_json::from_str(&body).unwrap();
        let account = accounts::link(&mut conn, eve.id, &input).await.unwrap();
        assert_eq!(account.user_id, eve.id);
        assert!(account.password_hash.is_none());
        let password = accounts::link_password(&mut conn, eve.id, &SecretString::new("$argon2id$h"))
            .await
            .unwrap();
        assert_eq!(
            (password.provider.as_str(), password.user_id),
            ("credential", eve.id)
        );

        // Signing out someone else's session is not found and changes nothing.
        let anns = sessions::create(&mut conn, &session_for(ann.id))
            .await
            .unwrap();
        assert!(matches!(
            sessions::revoke(&mut conn, eve.id, anns.session.id).await,
            Err(Error::NotFound { entity: "session" })
        ));
        sessions::find_valid(&mut conn, anns.token.expose())
            .await
            .unwrap();
    }
}

on_both_backends! {
    async fn secrets_never_reach_debug_output(t) {
        let mut conn = t.conn().await;
        let ann = users::create(&mut conn, &new_user("ann@example.com"))
            .await
            .unwrap();
        let session = sessions::create(&mut conn, &session_for(ann.id))
            .await
            .unwrap();
        let printed = format!("{session:?}");
        assert!(!printed.contains(session.token.expose()), "{printed}");
        let issued = verifications::issue(
            &mut conn,
            &verification(VerificationPurpose::EmailVerification),
        )
        .await
        .unwrap();
        let printed = format!("{issued:?}");
        assert!(!printed.contains(issued.token.expose()), "{printed}");
        let account =
            accounts::link_password(&mut conn, ann.id, &SecretString::new("$argon2id$SECRET"))
                .await
                .unwrap();
        let printed = format!("{account:?} {}", serde_json::to_string(&account).unwrap());
        assert!(!printed.contains("SECRET"), "{printed}");
    }
}

// ---------------------------------------------------------------- sessions

on_both_backends! {
    async fn sessions_create_find_revoke(t) {
        let mut conn = t.conn().await;
        let ann = users::create(&mut conn, &new_user("ann@example.com"))
            .await
            .unwrap();
        let created = sessions::create(&mut conn, &session_for(ann.id))
            .await
            .unwrap();
        assert_eq!(created.token.expose().len(), 64);
        assert_ne!(
            created.session.token_hash,
            created.token.expose().as_bytes(),
            "only the hash is stored"
        );

        assert_eq!(
            sessions::find_valid(&mut conn, created.token.expose())
                .await
                .unwrap()
                .id,
            created.session.id
        );
        let (session, user) = sessions::find_valid_with_user(&mut conn, created.token.expose())
            .await
            .unwrap();
        assert_eq!((session.id, user.id), (created.session.id, ann.id));
        assert!(matches!(
            sessions::find_valid(&mut conn, "forged").await,
            Err(Error::TokenRejected(TokenRejection::Unknown))
        ));

        sessions::revoke(&mut conn, ann.id, created.session.id)
            .await
            .unwrap();
        sessions::revoke(&mut conn, ann.id, created.session.id)
            .await
            .unwrap();
        assert!(matches!(
            sessions::find_valid(&mut conn, created.token.expose()).await,
            Err(Error::TokenRejected(TokenRejection::AlreadyUsed))
        ));
        assert!(matches!(
            sessions::revoke(&mut conn, ann.id, database::SessionId::new()).await,
            Err(Error::NotFound { .. })
        ));
    }
}

on_both_backends! {
    async fn sessions_revoke_all_and_purge(t) {
        let mut conn = t.conn().await;
        let ann = users::create(&mut conn, &new_user("ann@example.com"))
            .await
            .unwrap();
        let bob = users::create(&mut conn, &new_user("bob@example.com"))
            .await
            .unwrap();
        let mut anns = Vec::new();
        for _ in 0..3 {
            anns.push(
                sessions::create(&mut conn, &session_for(ann.id))
                    .await
                    .unwrap(),
            );
        }
        let bobs = sessions::create(&mut conn, &session_for(bob.id))
            .await
            .unwrap();

        let revoked = sessions::revoke_all_for_user(&mut conn, ann.id, Some(anns[0].session.id))
            .await
            .unwrap();
        assert_eq!(revoked, 2);
        assert!(
            sessions::find_valid(&mut conn, anns[0].token.expose())
                .await
                .is_ok(),
            "the kept session stays"
        );
        assert!(
            sessions::find_valid(&mut conn, anns[1].token.expose())
                .await
                .is_err()
        );
        assert!(
            sessions::find_valid(&mut conn, bobs.token.expose())
                .await
                .is_ok(),
            "other users untouched"
        );

        // An expired one, by moving its expiry into the past.
        t.set_time(
            "sessions",
            "expires_at",
            bobs.session.id.into_uuid(),
            Utc::now() - Duration::hours(1),
        )
        .await;
        assert!(
            matches!(
                sessions::find_valid(&mut conn, bobs.token.expose()).await,
                Err(Error::TokenRejected(TokenRejection::Expired))
            ),
            "expired is not valid"
        );

        let purged = sessions::purge_expired(&mut conn, Utc::now())
            .await
            .unwrap();
        assert_eq!(purged, 3, "two revoked and one expired");
        assert_eq!(t.count("sessions").await, 1);
    }
}

on_both_backends! {
    async fn sessions_bad_input_writes_nothing(t) {
        let mut conn = t.conn().await;
        let ann = users::create(&mut conn, &new_user("ann@example.com"))
            .await
            .unwrap();
        for (input, field) in [
            (
                NewSession {
                    ttl_seconds: 0,
                    ..session_for(ann.id)
                },
                "ttl_seconds",
            ),
            (
                NewSession {
                    ttl_seconds: 500 * 24 * 3600,
                    ..session_for(ann.id)
                },
                "ttl_seconds",
            ),
            (
                NewSession {
                    ip_address: Some("999.1.1.1".into()),
                    ..session_for(ann.id)
                },
                "ip_address",
            ),
            (
                NewSession {
                    user_agent: Some("x".repeat(513)),
                    ..session_for(ann.id)
                },
                "user_agent",
            ),
        ] {
            let err = sessions::create(&mut conn, &input).await.unwrap_err();
            assert_eq!(err.invalid_fields(), vec![field]);
        }
        let err = sessions::create(&mut conn, &session_for(UserId::new()))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { entity: "user" }), "{err:?}");
        assert_eq!(t.count("sessions").await, 0);
    }
}

// ---------------------------------------------------------------- verifications

fn verification(purpose: VerificationPurpose) -> NewVerification {
    NewVerification {
        purpose,
        identifier: "ann@example.com".into(),
        ttl_seconds: 3600,
    }
}

on_both_backends! {
    async fn a_verification_is_consumed_once(t) {
        let mut conn = t.conn().await;
        let issued = verifications::issue(
            &mut conn,
            &verification(VerificationPurpose::EmailVerification),
        )
        .await
        .unwrap();
        assert!(issued.verification.consumed_at.is_none());

        let wrong_purpose = verifications::consume(
            &mut conn,
            VerificationPurpose::PasswordReset,
            issued.token.expose(),
        )
        .await;
        assert!(matches!(
            wrong_purpose,
            Err(Error::TokenRejected(TokenRejection::Unknown))
        ));

        let used = verifications::consume(
            &mut conn,
            VerificationPurpose::EmailVerification,
            issued.token.expose(),
        )
        .await
        .unwrap();
        assert_eq!(used.id, issued.verification.id);
        assert!(used.consumed_at.is_some());
        let again = verifications::consume(
            &mut conn,
            VerificationPurpose::EmailVerification,
            issued.token.expose(),
        )
        .await;
        assert!(matches!(
            again,
            Err(Error::TokenRejected(TokenRejection::AlreadyUsed))
        ));
        let unknown =
            verifications::consume(&mut conn, VerificationPurpose::EmailVerification, "nope").await;
        assert!(matches!(
            unknown,
            Err(Error::TokenRejected(TokenRejection::Unknown))
        ));
    }
}

on_both_backends! {
    async fn two_concurrent_consumers_one_wins(t) {
        let mut conn = t.conn().await;
        for _ in 0..10 {
            let issued =
                verifications::issue(&mut conn, &verification(VerificationPurpose::PasswordReset))
                    .await
                    .unwrap();
            let consumers = (0..2).map(|_| {
                let db = t.db.clone();
                let token = issued.token.clone();
                tokio::spawn(async move {
                    let mut conn = db.conn().await.unwrap();
                    verifications::consume(
                        &mut conn,
                        VerificationPurpose::PasswordReset,
                        token.expose(),
                    )
                    .await
                })
            });
            let results: Vec<_> = futures::future::join_all(consumers)
                .await
                .into_iter()
                .map(|r| r.unwrap())
                .collect();
            assert_eq!(
                results.iter().filter(|r| r.is_ok()).count(),
                1,
                "{results:?}"
            );
            assert!(
                results
                    .iter()
                    .any(|r| matches!(r, Err(Error::TokenRejected(TokenRejection::AlreadyUsed))))
            );
        }
    }
}

on_both_backends! {
    async fn an_expired_verification_is_refused_and_purged(t) {
        let mut conn = t.conn().await;
        let issued = verifications::issue(&mut conn, &verification(VerificationPurpose::MagicLink))
            .await
            .unwrap();
        t.set_time(
            "verifications",
            "expires_at",
            issued.verification.id.into_uuid(),
            Utc::now() - Duration::minutes(1),
        )
        .await;
        let err = verifications::consume(
            &mut conn,
            VerificationPurpose::MagicLink,
            issued.token.expose(),
        )
        .await;
        assert!(matches!(
            err,
            Err(Error::TokenRejected(TokenRejection::Expired))
        ));
        assert_eq!(
            t.count("verifications WHERE consumed_at IS NOT NULL").await,
            0,
            "a refused token is not marked used"
        );
        assert_eq!(
            verifications::purge_expired(&mut conn, Utc::now())
                .await
                .unwrap(),
            1
        );
        assert_eq!(t.count("verifications").await, 0);
    }
}

on_both_backends! {
    async fn verification_bad_input_writes_nothing(t) {
        let mut conn = t.conn().await;
        let base = verification(VerificationPurpose::EmailChange);
        for (input, field) in [
            (
                NewVerification {
                    identifier: String::new(),
                    ..base.clone()
                },
                "identifier",
            ),
            (
                NewVerification {
                    identifier: "x".repeat(256),
                    ..base.clone()
                },
                "identifier",
            ),
            (
                NewVerification {
                    ttl_seconds: 10,
                    ..base.clone()
                },
                "ttl_seconds",
            ),
            (
                NewVerification {
                    ttl_seconds: 31 * 24 * 3600,
                    ..base.clone()
                },
                "ttl_seconds",
            ),
        ] {
            let err = verifications::issue(&mut conn, &input).await.unwrap_err();
            assert_eq!(err.invalid_fields(), vec![field]);
        }
        assert_eq!(t.count("verifications").await, 0);

        // Unknown enum labels are refused by name, before any query.
        let err = "email_verify".parse::<VerificationPurpose>().unwrap_err();
        assert_eq!(err.invalid_fields(), vec!["VerificationPurpose"]);
        assert!(
            serde_json::from_str::<NewVerification>(
                r#"{"purpose":"bogus","identifier":"a","ttl_seconds":60}"#
            )
            .is_err()
        );
    }
}

// SQLite compares timestamps as text: rows whose created_at came from a
// column default (strftime's '%f', three digits always) and rows whose
// created_at the crate wrote (Diesel: no fraction at a whole second) must
// share one form, or a keyset over (created_at, id) at a whole second skips
// or repeats rows (#25).
#[tokio::test]
async fn sqlite_keyset_pages_at_a_whole_second_visit_every_row_once() {
    use chrono::TimeZone;
    use database::schema_sqlite::users as lite;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;

    let t = common::any::AnyTestDb::sqlite().await;
    let second = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let database::db::AnyPooledConn::Sqlite(mut conn) = t.conn().await else {
        unreachable!()
    };
    // Three rows given that second by the crate, three inserted as a column
    // default writes it (the default's expression, at that second).
    for i in 0..6 {
        let sql = if i < 3 {
            "datetime('now')"
        } else {
            "strftime('%Y-%m-%d %H:%M:%f+00:00', '2026-01-02 03:04:05')"
        };
        diesel::sql_query(format!(
            "INSERT INTO users (id, email, created_at) \
             VALUES (randomblob(16), 'second{i}@example.com', {sql})"
        ))
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    diesel::update(lite::table.filter(lite::email.like("second_@example.com")))
        .filter(lite::email.le("second2@example.com"))
        .set(lite::created_at.eq(second))
        .execute(&mut *conn)
        .await
        .unwrap();
    let all: Vec<UserId> = lite::table
        .filter(lite::email.like("second_@example.com"))
        .select(lite::id)
        .load(&mut *conn)
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
    let at_second = lite::table
        .filter(lite::created_at.eq(second))
        .count()
        .get_result::<i64>(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        at_second, 6,
        "every row of that second compares equal to it"
    );

    // Newest first, two per page, (created_at, id) < cursor.
    let mut seen: Vec<UserId> = Vec::new();
    let mut cursor: Option<(chrono::DateTime<Utc>, UserId)> = None;
    for _ in 0..10 {
        let mut query = lite::table
            .select((lite::created_at, lite::id))
            .filter(lite::email.like("second_@example.com"))
            .order((lite::created_at.desc(), lite::id.desc()))
            .limit(2)
            .into_boxed();
        if let Some((at, id)) = cursor {
            query = query.filter(
                lite::created_at
                    .lt(at)
                    .or(lite::created_at.eq(at).and(lite::id.lt(id))),
            );
        }
        let page: Vec<(chrono::DateTime<Utc>, UserId)> = query.load(&mut *conn).await.unwrap();
        let Some(last) = page.last().copied() else {
            break;
        };
        seen.extend(page.iter().map(|(_, id)| *id));
        cursor = Some(last);
    }
    let mut expected = all.clone();
    expected.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got, expected, "pages visited {seen:?}");
}

/// The request context on SQLite (the README: it carries the deadline and
/// the user; row-level security is PostgreSQL's): a call that outlives the
/// context's deadline is cut off with `Timeout` and its transaction rolled
/// back (nothing written), and a context with a user and no deadline works
/// as none.
#[database::test]
async fn a_contexts_deadline_bounds_sqlite_calls(db: database::SqliteDb) {
    use database::Ctx;
    use std::time::{Duration, Instant};
    let new_user = |email: &str| NewUser {
        email: email.to_owned(),
        ..Default::default()
    };
    let ctx = Ctx::new().user(UserId::new());
    let created = db
        .with(ctx.clone())
        .transaction(async |conn| users::create(conn, &new_user("ctx@example.com")).await)
        .await
        .unwrap();
    let short = db.with(ctx.timeout(Duration::from_millis(100)));
    let started = Instant::now();
    let err = short
        .transaction(async |conn| {
            users::create(conn, &new_user("late@example.com")).await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let mut conn = db.conn().await.unwrap();
    assert!(matches!(
        users::find_by_email(&mut *conn, "late@example.com").await,
        Err(Error::NotFound { .. })
    ));
    drop(conn);
    // A call that starts after its deadline runs nothing, even when a
    // connection is free at once (a timer polls its work first).
    let late = db.with(Ctx::new().deadline(Instant::now() - Duration::from_millis(1)));
    let err = late
        .run(async |conn| users::create(conn, &new_user("past@example.com")).await)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut conn = db.conn().await.unwrap();
    assert!(matches!(
        users::find_by_email(&mut *conn, "past@example.com").await,
        Err(Error::NotFound { .. })
    ));
    drop(conn);
    // A deadline that fires while a statement runs on SQLite's blocking
    // thread: `Timeout` once the statement is done, not a panic of the
    // test's runtime (the wait is `block_in_place`).
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                WHERE x < 3000000) SELECT count(*) FROM c";
    let err = db
        .with(Ctx::new().timeout(Duration::from_millis(50)))
        .run(async |conn| {
            use diesel_async::RunQueryDsl;
            Ok(diesel::sql_query(slow).execute(conn).await?)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    // The user without a deadline still reads.
    let found = db
        .with(Ctx::new().user(created.id))
        .run(async |conn| users::find(conn, created.id).await)
        .await
        .unwrap();
    assert_eq!(found.email, "ctx@example.com");
}
