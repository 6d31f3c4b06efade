//! Tenant invites against a real PostgreSQL: sent, accepted once (under
//! forced concurrent acceptance), revoked, listed; bad input; a warm
//! connection surviving a migration. Members and the activity log are in
//! `tests/tenancy.rs`.

mod common;
mod locks;

use common::tenancy::{invite_input, tenant};
use common::{TestDb, conflict_on, user};
use database::tenancy::{NewInvite, TenantRole, tenant_activity, tenant_invites, tenant_members};
use database::{Error, TenantId, TokenRejection};
use diesel_async::RunQueryDsl;
use locks::{LockHolder, lock_waiters};

#[tokio::test(flavor = "multi_thread")]
async fn invites_are_sent_accepted_once_revoked_and_listed() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let bob = user(&t, "bob@example.com").await;
    let cat = user(&t, "cat@example.com").await;
    let acme = tenant(&t, "acme", ann).await;
    let mut conn = t.conn().await;

    let sent = tenant_invites::invite(
        &mut conn,
        acme.id,
        ann,
        &invite_input("bob@example.com", TenantRole::Admin),
    )
    .await
    .unwrap();
    assert_eq!(sent.invite.invited_by, Some(ann));
    assert_eq!(sent.token.expose().len(), 64);

    let member = tenant_invites::accept(&mut conn, acme.id, sent.token.expose(), bob)
        .await
        .unwrap();
    assert_eq!((member.user_id, member.role), (bob, TenantRole::Admin));

    // A second accept (by anyone) is refused and writes nothing.
    let members = t.count("tenant_members").await;
    let activity = t.count("tenant_activity").await;
    for who in [bob, cat] {
        let err = tenant_invites::accept(&mut conn, acme.id, sent.token.expose(), who)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::TokenRejected(TokenRejection::AlreadyUsed)),
            "{err:?}"
        );
    }
    let err = tenant_invites::accept(&mut conn, acme.id, "not-a-token", cat)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TokenRejected(TokenRejection::Unknown)),
        "{err:?}"
    );
    assert_eq!(t.count("tenant_members").await, members);
    assert_eq!(t.count("tenant_activity").await, activity);

    // Expired.
    let old = tenant_invites::invite(
        &mut conn,
        acme.id,
        ann,
        &invite_input("cat@example.com", TenantRole::Member),
    )
    .await
    .unwrap();
    diesel::sql_query(
        "UPDATE tenant_invites SET expires_at = now() - interval '1 minute' WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(old.invite.id.into_uuid())
    .execute(&mut conn)
    .await
    .unwrap();
    let err = tenant_invites::accept(&mut conn, acme.id, old.token.expose(), cat)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TokenRejected(TokenRejection::Expired)),
        "{err:?}"
    );

    // Accepting when already a member: a conflict, and the invite stays pending.
    let dup = tenant_invites::invite(
        &mut conn,
        acme.id,
        ann,
        &invite_input("bob@example.com", TenantRole::Member),
    )
    .await
    .unwrap();
    let err = tenant_invites::accept(&mut conn, acme.id, dup.token.expose(), bob)
        .await
        .unwrap_err();
    assert_eq!(conflict_on(&err), "tenant_members_tenant_user_key");

    // Revoked.
    let revoked = tenant_invites::revoke(&mut conn, acme.id, ann, dup.invite.id)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    let err = tenant_invites::revoke(&mut conn, acme.id, ann, dup.invite.id)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "invite" }),
        "{err:?}"
    );
    let err = tenant_invites::accept(&mut conn, acme.id, dup.token.expose(), cat)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TokenRejected(TokenRejection::AlreadyUsed)),
        "{err:?}"
    );

    // Pending: neither accepted, revoked nor expired; newest first, paged.
    let p1 = tenant_invites::invite(
        &mut conn,
        acme.id,
        ann,
        &invite_input("d@example.com", TenantRole::Member),
    )
    .await
    .unwrap();
    let p2 = tenant_invites::invite(
        &mut conn,
        acme.id,
        ann,
        &invite_input("e@example.com", TenantRole::Member),
    )
    .await
    .unwrap();
    let first = tenant_invites::list_pending(&mut conn, acme.id, None, 1)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    assert_eq!(first.items[0].id, p2.invite.id);
    let rest = tenant_invites::list_pending(&mut conn, acme.id, first.next, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(
        rest.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![p1.invite.id]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invite_rejects_bad_input_and_writes_nothing() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let acme = tenant(&t, "acme", ann).await;
    let mut conn = t.conn().await;
    let activity = t.count("tenant_activity").await;

    let err = tenant_invites::invite(
        &mut conn,
        acme.id,
        ann,
        &NewInvite {
            email: "not an email".into(),
            role: TenantRole::Member,
            ttl_seconds: 5,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["email", "ttl_seconds"]);
    let err = tenant_invites::invite(
        &mut conn,
        TenantId::new(),
        ann,
        &invite_input("bob@example.com", TenantRole::Member),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "tenant" }),
        "{err:?}"
    );
    let err = tenant_invites::list_pending(&mut conn, acme.id, None, 1000)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["limit"]);

    assert_eq!(t.count("tenant_invites").await, 0);
    assert_eq!(t.count("tenant_activity").await, activity);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_connection_keeps_accepting_invites_after_a_migration_adds_a_column() {
    use database::migrate::{self, MigrationSet};
    use diesel_async::AsyncConnection;
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let bob = user(&t, "bob@example.com").await;
    let cat = user(&t, "cat@example.com").await;
    let acme = tenant(&t, "acme", ann).await;
    let mut warm = t.conn().await;
    let invite = async |email: &str| {
        tenant_invites::invite(
            &mut *t.conn().await,
            acme.id,
            ann,
            &invite_input(email, TenantRole::Member),
        )
        .await
        .unwrap()
    };
    let (first, second) = (
        invite("bob@example.com").await,
        invite("cat@example.com").await,
    );
    // The accept statement is prepared and cached on `warm`.
    tenant_invites::accept(&mut warm, acme.id, first.token.expose(), bob)
        .await
        .unwrap();

    // A new migration adds a column to the table the statement returns rows of.
    let dir = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        let target = dir.path().join(entry.file_name());
        std::fs::create_dir(&target).unwrap();
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
        }
    }
    let added = dir.path().join("2099-01-01-000000_add_member_note");
    std::fs::create_dir(&added).unwrap();
    std::fs::write(
        added.join("up.sql"),
        "ALTER TABLE tenant_members ADD COLUMN note text;\n\
         ALTER TABLE tenant_invites ADD COLUMN note text;\n",
    )
    .unwrap();
    std::fs::write(
        added.join("down.sql"),
        "ALTER TABLE tenant_members DROP COLUMN note;\n\
         ALTER TABLE tenant_invites DROP COLUMN note;\n",
    )
    .unwrap();
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let mut migrator = database::Conn::establish(&t.url).await.unwrap();
    migrate::run(&mut migrator, &set).await.unwrap();

    // The warm connection's cached statement still works.
    let member = tenant_invites::accept(&mut warm, acme.id, second.token.expose(), cat)
        .await
        .unwrap();
    assert_eq!((member.user_id, member.role), (cat, TenantRole::Member));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_accepts_of_one_invite_yield_exactly_one_membership() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let mut takers = Vec::new();
    for i in 0..6 {
        takers.push(user(&t, &format!("u{i}@example.com")).await);
    }
    for round in 0..5 {
        let tn = tenant(&t, &format!("inv-{round}"), ann).await;
        let sent = tenant_invites::invite(
            &mut *t.conn().await,
            tn.id,
            ann,
            &invite_input("someone@example.com", TenantRole::Member),
        )
        .await
        .unwrap();
        // Different users race for the same token, so only the invite's
        // single use (not the membership's uniqueness) can stop them. The
        // invite row is held locked until every accept waits on it.
        let holder = LockHolder::take(
            &t,
            &format!(
                "SELECT 1 FROM tenant_invites WHERE id = '{}' FOR UPDATE",
                sent.invite.id
            ),
        )
        .await;
        let tasks: Vec<_> = takers
            .iter()
            .map(|&who| {
                let db = t.owner.clone();
                let token = sent.token.clone();
                tokio::spawn(async move {
                    let mut conn = db.conn().await.unwrap();
                    tenant_invites::accept(&mut conn, tn.id, token.expose(), who).await
                })
            })
            .collect();
        lock_waiters(&t, takers.len() as i64).await;
        holder.release().await;
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => winners += 1,
                Err(err) => assert!(
                    matches!(err, Error::TokenRejected(TokenRejection::AlreadyUsed)),
                    "{err:?}"
                ),
            }
        }
        assert_eq!(winners, 1, "round {round}");
        let members = tenant_members::list(&mut *t.conn().await, tn.id, None, 100)
            .await
            .unwrap()
            .items;
        assert_eq!(members.len(), 2, "round {round}: the owner and one taker");
        let accepted = tenant_activity::list(&mut *t.conn().await, tn.id, None, 100)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|a| a.action == "invite.accepted")
            .count();
        assert_eq!(accepted, 1, "round {round}");
    }
}
