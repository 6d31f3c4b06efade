//! Tenancy against a real PostgreSQL: tenants with their first owner,
//! members and the last-owner rule (under concurrent demotion), invites
//! (under concurrent acceptance), the activity log, and tenant isolation.

mod common;

use common::{TestDb, conflict_on, user};
use database::tenancy::{
    NewActivity, NewInvite, NewMember, NewTenant, Tenant, TenantRole, tenant_activity,
    tenant_invites, tenant_members, tenants,
};
use database::{Error, TenantId, TokenRejection, UserId};
use diesel_async::RunQueryDsl;
use serde_json::json;

async fn tenant(t: &TestDb, slug: &str, owner: UserId) -> Tenant {
    let mut conn = t.conn().await;
    tenants::create_with_owner(
        &mut conn,
        &NewTenant {
            name: format!("Tenant {slug}"),
            slug: slug.to_owned(),
        },
        owner,
    )
    .await
    .unwrap()
}

fn invite_input(email: &str, role: TenantRole) -> NewInvite {
    NewInvite {
        email: email.to_owned(),
        role,
        ttl_seconds: 86_400,
    }
}

async fn owners(t: &TestDb, tenant: TenantId) -> usize {
    let mut conn = t.conn().await;
    tenant_members::list(&mut conn, tenant, None, 100)
        .await
        .unwrap()
        .items
        .iter()
        .filter(|m| m.role == TenantRole::Owner)
        .count()
}

/// A transaction on a connection of its own that holds the row locks
/// `lock_sql` takes until `release`: the racing calls of a test queue up
/// behind it, so they are all in flight at once when it lets go, whatever
/// the scheduler does.
struct LockHolder(diesel_async::AsyncPgConnection);

impl LockHolder {
    async fn take(t: &TestDb, lock_sql: &str) -> LockHolder {
        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
        let mut conn = diesel_async::AsyncPgConnection::establish(&t.url)
            .await
            .unwrap();
        conn.batch_execute(&format!("BEGIN; {lock_sql}"))
            .await
            .unwrap();
        LockHolder(conn)
    }

    async fn release(mut self) {
        use diesel_async::SimpleAsyncConnection;
        self.0.batch_execute("COMMIT").await.unwrap();
    }
}

/// Waits until `n` sessions on the test's database wait for a lock.
async fn lock_waiters(t: &TestDb, n: i64) {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = '{}' AND wait_event_type = 'Lock'",
        t.name
    );
    let mut conn = t.conn().await;
    for _ in 0..1000 {
        let waiting = diesel::sql_query(&sql)
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n;
        if waiting >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{n} sessions never waited for the lock");
}

#[tokio::test(flavor = "multi_thread")]
async fn create_with_owner_makes_the_owner_a_member_and_logs_it() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let acme = tenant(&t, "acme", ann).await;
    let mut conn = t.conn().await;

    let member = tenant_members::find(&mut conn, acme.id, ann).await.unwrap();
    assert_eq!(member.role, TenantRole::Owner);
    let log = tenant_activity::list(&mut conn, acme.id, None, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, "tenant.created");
    assert_eq!(log[0].actor_id, Some(ann));

    let mine = tenants::list_for_user(&mut conn, ann).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].tenant, acme);
    assert_eq!(mine[0].role, TenantRole::Owner);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_with_owner_rejects_bad_input_and_writes_nothing() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;
    for slug in ["Bad Slug", "-lead", "trail-", ""] {
        let err = tenants::create_with_owner(
            &mut conn,
            &NewTenant {
                name: String::new(),
                slug: slug.to_owned(),
            },
            ann,
        )
        .await
        .unwrap_err();
        assert_eq!(err.invalid_fields(), vec!["name", "slug"], "{slug:?}");
    }
    assert_eq!(t.count("tenants").await, 0);
    assert_eq!(t.count("tenant_members").await, 0);
    assert_eq!(t.count("tenant_activity").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_with_owner_conflicts_and_missing_owner_roll_back_everything() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    tenant(&t, "acme", ann).await;
    let mut conn = t.conn().await;

    let input = NewTenant {
        name: "Again".into(),
        slug: "acme".into(),
    };
    let err = tenants::create_with_owner(&mut conn, &input, ann)
        .await
        .unwrap_err();
    assert_eq!(conflict_on(&err), "tenants_slug_key");

    let input = NewTenant {
        name: "Ghost".into(),
        slug: "ghost".into(),
    };
    let err = tenants::create_with_owner(&mut conn, &input, UserId::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }), "{err:?}");

    assert_eq!(t.count("tenants").await, 1);
    assert_eq!(t.count("tenant_members").await, 1);
    assert_eq!(t.count("tenant_activity").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn members_are_added_changed_removed_and_paged() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let bob = user(&t, "bob@example.com").await;
    let cat = user(&t, "cat@example.com").await;
    let acme = tenant(&t, "acme", ann).await;
    let mut conn = t.conn().await;

    let added = tenant_members::add(
        &mut conn,
        acme.id,
        ann,
        &NewMember {
            user_id: bob,
            role: TenantRole::Member,
        },
    )
    .await
    .unwrap();
    assert_eq!(added.role, TenantRole::Member);
    tenant_members::add(
        &mut conn,
        acme.id,
        ann,
        &NewMember {
            user_id: cat,
            role: TenantRole::Admin,
        },
    )
    .await
    .unwrap();

    // Already a member: a conflict, nothing written.
    let before = t.count("tenant_activity").await;
    let err = tenant_members::add(
        &mut conn,
        acme.id,
        ann,
        &NewMember {
            user_id: bob,
            role: TenantRole::Admin,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(conflict_on(&err), "tenant_members_tenant_user_key");
    // Unknown user or tenant: NotFound, nothing written.
    let err = tenant_members::add(
        &mut conn,
        acme.id,
        ann,
        &NewMember {
            user_id: UserId::new(),
            role: TenantRole::Member,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }), "{err:?}");
    let err = tenant_members::add(
        &mut conn,
        TenantId::new(),
        ann,
        &NewMember {
            user_id: bob,
            role: TenantRole::Member,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "tenant" }),
        "{err:?}"
    );
    assert_eq!(t.count("tenant_members").await, 3);
    assert_eq!(t.count("tenant_activity").await, before);

    let promoted = tenant_members::change_role(&mut conn, acme.id, ann, bob, TenantRole::Owner)
        .await
        .unwrap();
    assert_eq!(promoted.role, TenantRole::Owner);
    // Two owners now: ann may step down.
    tenant_members::change_role(&mut conn, acme.id, bob, ann, TenantRole::Admin)
        .await
        .unwrap();
    tenant_members::remove(&mut conn, acme.id, bob, cat)
        .await
        .unwrap();
    let err = tenant_members::remove(&mut conn, acme.id, bob, cat)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                entity: "tenant member"
            }
        ),
        "{err:?}"
    );

    // Paging: one at a time, oldest first, no repeats.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = tenant_members::list(&mut conn, acme.id, after, 1)
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|m| (m.user_id, m.role)));
        let Some(next) = page.next else { break };
        after = Some(next);
    }
    assert_eq!(
        seen,
        vec![(ann, TenantRole::Admin), (bob, TenantRole::Owner)]
    );
    let err = tenant_members::list(&mut conn, acme.id, None, 0)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["limit"]);

    let actions: Vec<String> = tenant_activity::list(&mut conn, acme.id, None, 50)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions,
        vec![
            "member.removed",
            "member.role_changed",
            "member.role_changed",
            "member.added",
            "member.added",
            "tenant.created"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_owner_can_be_neither_demoted_nor_removed() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let acme = tenant(&t, "acme", ann).await;
    let mut conn = t.conn().await;
    let before = t.count("tenant_activity").await;

    for role in [TenantRole::Admin, TenantRole::Member] {
        let err = tenant_members::change_role(&mut conn, acme.id, ann, ann, role)
            .await
            .unwrap_err();
        assert_eq!(conflict_on(&err), tenant_members::LAST_OWNER);
    }
    let err = tenant_members::remove(&mut conn, acme.id, ann, ann)
        .await
        .unwrap_err();
    assert_eq!(conflict_on(&err), tenant_members::LAST_OWNER);

    assert_eq!(owners(&t, acme.id).await, 1);
    assert_eq!(t.count("tenant_activity").await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_last_owner_is_refused_and_keeps_every_row() {
    use database::auth::users;
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let bob = user(&t, "bob@example.com").await;
    let acme = tenant(&t, "acme", ann).await;
    let mut conn = t.conn().await;
    tenant_members::add(
        &mut conn,
        acme.id,
        ann,
        &NewMember {
            user_id: bob,
            role: TenantRole::Member,
        },
    )
    .await
    .unwrap();

    let err = users::delete(&mut conn, ann).await.unwrap_err();
    assert_eq!(conflict_on(&err), tenant_members::LAST_OWNER);
    users::find(&mut conn, ann).await.unwrap();
    assert_eq!(owners(&t, acme.id).await, 1);
    assert_eq!(t.count("tenant_members").await, 2);

    // A plain member leaves freely; a second owner makes the first deletable.
    users::delete(&mut conn, bob).await.unwrap();
    let cid = user(&t, "cid@example.com").await;
    tenant_members::add(
        &mut conn,
        acme.id,
        ann,
        &NewMember {
            user_id: cid,
            role: TenantRole::Owner,
        },
    )
    .await
    .unwrap();
    users::delete(&mut conn, ann).await.unwrap();
    assert_eq!(owners(&t, acme.id).await, 1);
    assert_eq!(
        tenant_members::find(&mut conn, acme.id, cid)
            .await
            .unwrap()
            .role,
        TenantRole::Owner
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_demotions_never_leave_a_tenant_without_an_owner() {
    let t = TestDb::new().await;
    for round in 0..10 {
        let a = user(&t, &format!("a{round}@example.com")).await;
        let b = user(&t, &format!("b{round}@example.com")).await;
        let tn = tenant(&t, &format!("race-{round}"), a).await;
        tenant_members::add(
            &mut *t.conn().await,
            tn.id,
            a,
            &NewMember {
                user_id: b,
                role: TenantRole::Owner,
            },
        )
        .await
        .unwrap();

        // Half the rounds demote, half remove: both paths take the lock.
        // The members' rows are held locked, so each change queues up at its
        // write (or, with the tenant lock, one at the tenant row): both are
        // in flight before either can finish. Without the tenant lock both
        // count two owners and both win.
        let holder = LockHolder::take(
            &t,
            &format!(
                "SELECT 1 FROM tenant_members WHERE tenant_id = '{}' FOR UPDATE",
                tn.id
            ),
        )
        .await;
        let tasks: Vec<_> = [a, b]
            .into_iter()
            .map(|target| {
                let db = t.db.clone();
                tokio::spawn(async move {
                    let mut conn = db.conn().await.unwrap();
                    if round % 2 == 0 {
                        tenant_members::change_role(
                            &mut conn,
                            tn.id,
                            target,
                            target,
                            TenantRole::Member,
                        )
                        .await
                        .map(|_| ())
                    } else {
                        tenant_members::remove(&mut conn, tn.id, target, target).await
                    }
                })
            })
            .collect();
        lock_waiters(&t, 2).await;
        holder.release().await;
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => ok += 1,
                Err(err) => assert_eq!(conflict_on(&err), tenant_members::LAST_OWNER),
            }
        }
        assert_eq!(ok, 1, "round {round}: exactly one change wins");
        assert_eq!(owners(&t, tn.id).await, 1, "round {round}");
    }
}

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
    let mut migrator = diesel_async::AsyncPgConnection::establish(&t.url)
        .await
        .unwrap();
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
                let db = t.db.clone();
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

#[tokio::test(flavor = "multi_thread")]
async fn activity_is_recorded_validated_and_paged_newest_first() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let acme = tenant(&t, "acme", ann).await;
    let mut conn = t.conn().await;

    let mut ids = Vec::new();
    for i in 0..5 {
        let a = tenant_activity::record(
            &mut conn,
            acme.id,
            &NewActivity {
                actor_id: Some(ann),
                action: "doc.edited".into(),
                subject: Some(format!("doc-{i}")),
                details: json!({ "n": i }),
            },
        )
        .await
        .unwrap();
        ids.push(a.id);
    }
    ids.reverse();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = tenant_activity::list(&mut conn, acme.id, after, 2)
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|a| a.id));
        let Some(next) = page.next else { break };
        after = Some(next);
    }
    // Newest first: the five records, then the creation entry.
    assert_eq!(seen.len(), 6);
    assert_eq!(&seen[..5], &ids[..]);

    let before = t.count("tenant_activity").await;
    let err = tenant_activity::record(
        &mut conn,
        acme.id,
        &NewActivity {
            actor_id: None,
            action: String::new(),
            subject: Some("x".repeat(201)),
            details: json!([1, 2]),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["action", "details", "subject"]);
    let err = tenant_activity::record(
        &mut conn,
        TenantId::new(),
        &NewActivity {
            action: "x".into(),
            details: json!({}),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "tenant" }),
        "{err:?}"
    );
    assert_eq!(t.count("tenant_activity").await, before);
}

/// Every tenant-scoped function, called with tenant B's id on tenant A's
/// rows, neither sees nor changes them.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_crosses_from_one_tenant_to_another() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await; // owner of A
    let bob = user(&t, "bob@example.com").await; // owner of B
    let cat = user(&t, "cat@example.com").await; // member of A
    let a = tenant(&t, "tenant-a", ann).await;
    let b = tenant(&t, "tenant-b", bob).await;
    let mut conn = t.conn().await;
    tenant_members::add(
        &mut conn,
        a.id,
        ann,
        &NewMember {
            user_id: cat,
            role: TenantRole::Member,
        },
    )
    .await
    .unwrap();
    let inv = tenant_invites::invite(
        &mut conn,
        a.id,
        ann,
        &invite_input("x@example.com", TenantRole::Admin),
    )
    .await
    .unwrap();
    tenant_activity::record(
        &mut conn,
        a.id,
        &NewActivity {
            actor_id: Some(ann),
            action: "a.secret".into(),
            details: json!({}),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let a_activity = t.count("tenant_activity").await;

    // tenant_members::find / list / change_role / remove
    for who in [ann, cat] {
        let err = tenant_members::find(&mut conn, b.id, who)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        let err = tenant_members::change_role(&mut conn, b.id, bob, who, TenantRole::Owner)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        let err = tenant_members::remove(&mut conn, b.id, bob, who)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }
    let b_members = tenant_members::list(&mut conn, b.id, None, 100)
        .await
        .unwrap()
        .items;
    assert_eq!(
        b_members.iter().map(|m| m.user_id).collect::<Vec<_>>(),
        vec![bob]
    );
    // tenant_members::add into B touches only B.
    tenant_members::add(
        &mut conn,
        b.id,
        bob,
        &NewMember {
            user_id: cat,
            role: TenantRole::Admin,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        tenant_members::find(&mut conn, a.id, cat)
            .await
            .unwrap()
            .role,
        TenantRole::Member
    );

    // tenant_invites::list_pending / revoke / accept
    assert!(
        tenant_invites::list_pending(&mut conn, b.id, None, 100)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let err = tenant_invites::revoke(&mut conn, b.id, bob, inv.invite.id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = tenant_invites::accept(&mut conn, b.id, inv.token.expose(), bob)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TokenRejected(TokenRejection::Unknown)),
        "{err:?}"
    );
    let a_pending = tenant_invites::list_pending(&mut conn, a.id, None, 100)
        .await
        .unwrap()
        .items;
    assert_eq!(
        a_pending.len(),
        1,
        "A's invite is untouched and still pending"
    );
    // tenant_invites::invite into B is listed only in B.
    tenant_invites::invite(
        &mut conn,
        b.id,
        bob,
        &invite_input("y@example.com", TenantRole::Member),
    )
    .await
    .unwrap();
    assert_eq!(
        tenant_invites::list_pending(&mut conn, a.id, None, 100)
            .await
            .unwrap()
            .items,
        a_pending
    );

    // tenant_activity::list / record
    let b_log = tenant_activity::list(&mut conn, b.id, None, 100)
        .await
        .unwrap()
        .items;
    assert!(b_log.iter().all(|e| e.tenant_id == b.id));
    assert!(b_log.iter().all(|e| e.action != "a.secret"));
    tenant_activity::record(
        &mut conn,
        b.id,
        &NewActivity {
            action: "b.secret".into(),
            details: json!({}),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let a_log = tenant_activity::list(&mut conn, a.id, None, 100)
        .await
        .unwrap()
        .items;
    assert!(a_log.iter().all(|e| e.tenant_id == a.id));
    assert_eq!(a_log.len() as i64, {
        // A's rows: everything recorded before B's writes, minus B's creation entry.
        a_activity - 1
    });

    // tenants::list_for_user: each user sees exactly their tenants.
    let ann_t: Vec<_> = tenants::list_for_user(&mut conn, ann)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.tenant.id)
        .collect();
    assert_eq!(ann_t, vec![a.id]);
    let cat_t: Vec<_> = tenants::list_for_user(&mut conn, cat)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.tenant.id, m.role))
        .collect();
    assert_eq!(
        cat_t,
        vec![(a.id, TenantRole::Member), (b.id, TenantRole::Admin)]
    );
}
