//! Tenancy against a real PostgreSQL: tenants with their first owner,
//! members and the last-owner rule (under forced concurrent demotion), the
//! activity log, and tenant isolation. Invites are in `tests/tenant_invites.rs`.

mod common;
mod locks;

use common::tenancy::{invite_input, tenant};
use common::{TestDb, conflict_on, user};
use database::tenancy::{
    NewActivity, NewMember, NewTenant, TenantRole, tenant_activity, tenant_invites, tenant_members,
    tenants,
};
use database::{Error, TenantId, TokenRejection, UserId};
use serde_json::json;

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

use locks::{LockHolder, lock_waiters};

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

    let mine = tenants::list_for_user(&mut conn, ann, None, 100)
        .await
        .unwrap()
        .items;
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
    assert!(err.is_conflict(tenants::SLUG_TAKEN), "{err:?}");
    assert!(!err.is_conflict(tenant_members::LAST_OWNER));

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
async fn deleting_an_owner_while_the_other_is_demoted_leaves_one_owner() {
    use database::auth::users;
    let t = TestDb::new().await;
    let a = user(&t, "a@example.com").await;
    let b = user(&t, "b@example.com").await;
    let tn = tenant(&t, "race", a).await;
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
    // The membership rows are held locked until both calls wait: without
    // the tenant locks, both would count two owners and both would win.
    let holder = LockHolder::take(
        &t,
        &format!(
            "SELECT 1 FROM tenant_members WHERE tenant_id = '{}' FOR UPDATE",
            tn.id
        ),
    )
    .await;
    let (db1, db2) = (t.owner.clone(), t.owner.clone());
    let delete =
        tokio::spawn(async move { users::delete(&mut db1.conn().await.unwrap(), a).await });
    let demote = tokio::spawn(async move {
        tenant_members::change_role(
            &mut db2.conn().await.unwrap(),
            tn.id,
            b,
            b,
            TenantRole::Member,
        )
        .await
        .map(|_| ())
    });
    lock_waiters(&t, 2).await;
    holder.release().await;
    let outcomes = [delete.await.unwrap(), demote.await.unwrap()];
    let won = outcomes.iter().filter(|r| r.is_ok()).count();
    for refused in outcomes.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(conflict_on(refused), tenant_members::LAST_OWNER);
    }
    assert_eq!(won, 1, "{outcomes:?}");
    assert_eq!(owners(&t, tn.id).await, 1);
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
                let db = t.owner.clone();
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
    let ann_t: Vec<_> = tenants::list_for_user(&mut conn, ann, None, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.tenant.id)
        .collect();
    assert_eq!(ann_t, vec![a.id]);
    let cat_t: Vec<_> = tenants::list_for_user(&mut conn, cat, None, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| (m.tenant.id, m.role))
        .collect();
    assert_eq!(
        cat_t,
        vec![(a.id, TenantRole::Member), (b.id, TenantRole::Admin)]
    );
    // One tenant per page: the cursor leads to the second, which is the last.
    let first = tenants::list_for_user(&mut conn, cat, None, 1)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    assert_eq!(first.items[0].tenant.id, a.id);
    let second = tenants::list_for_user(&mut conn, cat, first.next, 1)
        .await
        .unwrap();
    assert_eq!(second.items[0].tenant.id, b.id);
    assert!(second.next.is_none());
    let err = tenants::list_for_user(&mut conn, cat, None, 0)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["limit"]);
}
