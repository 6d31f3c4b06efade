//! Admin roles, grants, permission checks and the append-only audit log
//! against a real PostgreSQL.

mod common;

use chrono::{Duration, Utc};
use common::{TestDb, conflict_on, user};
use database::admin::{
    AuditContext, AuditFilter, NewAuditEntry, NewRole, RolePermissions, admin_audit_log,
    admin_roles, admin_users,
};
use database::auth::users;
use database::{AdminRoleId, Error, UserId};
use diesel_async::RunQueryDsl;
use serde_json::json;

fn ctx(actor: UserId) -> AuditContext {
    AuditContext {
        actor,
        ip_address: Some("203.0.113.7".into()),
    }
}

fn role(name: &str, permissions: &[&str]) -> NewRole {
    NewRole {
        name: name.to_owned(),
        description: Some(format!("{name} role")),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_are_created_and_changed_with_an_audit_entry_each() {
    let t = TestDb::new().await;
    let root = user(&t, "root@example.com").await;
    let mut conn = t.conn().await;

    let support = admin_roles::create(
        &mut conn,
        &ctx(root),
        &role("support", &["users.read", "tenants.read", "users.read"]),
    )
    .await
    .unwrap();
    assert_eq!(support.permissions, vec!["tenants.read", "users.read"]);
    assert_eq!(
        admin_roles::find_by_name(&mut conn, "support")
            .await
            .unwrap(),
        support
    );

    let changed = admin_roles::set_permissions(
        &mut conn,
        &ctx(root),
        support.id,
        &RolePermissions {
            permissions: vec!["users.write".into()],
        },
    )
    .await
    .unwrap();
    assert_eq!(changed.permissions, vec!["users.write"]);

    let log = admin_audit_log::list(&mut conn, &AuditFilter::default(), None, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].action, "admin_role.permissions_changed");
    assert_eq!(log[0].actor_id, root);
    assert_eq!(log[0].ip_address.as_deref(), Some("203.0.113.7"));
    assert_eq!(log[0].entity_id, Some(support.id.to_string()));
    assert_eq!(
        log[0].before.as_ref().unwrap()["permissions"],
        json!(["tenants.read", "users.read"])
    );
    assert_eq!(
        log[0].after.as_ref().unwrap()["permissions"],
        json!(["users.write"])
    );
    assert_eq!(log[1].action, "admin_role.created");
    assert_eq!(log[1].before, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn role_writes_reject_bad_input_and_conflicts_writing_nothing() {
    let t = TestDb::new().await;
    let root = user(&t, "root@example.com").await;
    let mut conn = t.conn().await;

    let err = admin_roles::create(
        &mut conn,
        &ctx(root),
        &NewRole {
            name: String::new(),
            description: Some("d".repeat(501)),
            permissions: vec!["Bad Perm".into()],
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.invalid_fields(),
        vec!["description", "name", "permissions"]
    );
    let err = admin_roles::create(
        &mut conn,
        &AuditContext {
            actor: root,
            ip_address: Some("999.1.1.1".into()),
        },
        &role("ops", &["ops.all"]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["ip_address"]);
    assert_eq!(t.count("admin_roles").await, 0);
    assert_eq!(t.count("admin_audit_log").await, 0);

    let ops = admin_roles::create(&mut conn, &ctx(root), &role("ops", &["ops.all"]))
        .await
        .unwrap();
    let err = admin_roles::create(&mut conn, &ctx(root), &role("ops", &[]))
        .await
        .unwrap_err();
    assert_eq!(conflict_on(&err), "admin_roles_name_key");

    let err = admin_roles::set_permissions(
        &mut conn,
        &ctx(root),
        ops.id,
        &RolePermissions {
            permissions: vec!["".into()],
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["permissions"]);
    let err = admin_roles::set_permissions(
        &mut conn,
        &ctx(root),
        AdminRoleId::new(),
        &RolePermissions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                entity: "admin role"
            }
        ),
        "{err:?}"
    );

    assert_eq!(t.count("admin_roles").await, 1);
    assert_eq!(t.count("admin_audit_log").await, 1);
    assert_eq!(
        admin_roles::find_by_name(&mut conn, "ops")
            .await
            .unwrap()
            .permissions,
        vec!["ops.all"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wildcards_grant_what_they_say_and_the_grammar_is_enforced_everywhere() {
    let t = TestDb::new().await;
    let root = user(&t, "root@example.com").await;
    let ann = user(&t, "ann@example.com").await;
    let bob = user(&t, "bob@example.com").await;
    let mut conn = t.conn().await;
    let superadmin = admin_roles::create(&mut conn, &ctx(root), &role("superadmin", &["*"]))
        .await
        .unwrap();
    let users_all = admin_roles::create(&mut conn, &ctx(root), &role("users", &["users.*"]))
        .await
        .unwrap();
    admin_users::grant_role(&mut conn, &ctx(root), ann, superadmin.id)
        .await
        .unwrap();
    admin_users::grant_role(&mut conn, &ctx(root), bob, users_all.id)
        .await
        .unwrap();
    for (who, perm, expected) in [
        (ann, "users.read", true),
        (ann, "billing.write", true),
        (bob, "users.read", true),
        (bob, "users.delete", true),
        (bob, "billing.read", false),
        (root, "users.read", false),
    ] {
        assert_eq!(
            admin_users::has_permission(&mut conn, who, perm)
                .await
                .unwrap(),
            expected,
            "{perm}"
        );
    }
    // One grammar: what a role may not hold is refused when asked, and a
    // question with a wildcard is not a permission.
    for bad in [
        "users:read",
        "Users.read",
        "users",
        "users.read.all",
        "*",
        "users.*",
        "",
    ] {
        let err = admin_users::has_permission(&mut conn, ann, bad)
            .await
            .unwrap_err();
        assert_eq!(err.invalid_fields(), vec!["permission"], "{bad}");
    }
    for bad in [
        "users:read",
        "*.read",
        "users.",
        ".read",
        "users.read.all",
        "users.**",
    ] {
        let err = admin_roles::create(&mut conn, &ctx(root), &role("bad", &[bad]))
            .await
            .unwrap_err();
        assert_eq!(err.invalid_fields(), vec!["permissions"], "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_give_permissions_and_every_grant_and_revoke_is_audited() {
    let t = TestDb::new().await;
    let root = user(&t, "root@example.com").await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;
    let support = admin_roles::create(&mut conn, &ctx(root), &role("support", &["users.read"]))
        .await
        .unwrap();
    let billing = admin_roles::create(&mut conn, &ctx(root), &role("billing", &["billing.write"]))
        .await
        .unwrap();

    assert!(
        !admin_users::has_permission(&mut conn, ann, "users.read")
            .await
            .unwrap()
    );
    let grant = admin_users::grant_role(&mut conn, &ctx(root), ann, support.id)
        .await
        .unwrap();
    assert_eq!(grant.granted_by, Some(root));
    admin_users::grant_role(&mut conn, &ctx(root), ann, billing.id)
        .await
        .unwrap();
    assert!(
        admin_users::has_permission(&mut conn, ann, "users.read")
            .await
            .unwrap()
    );
    assert!(
        admin_users::has_permission(&mut conn, ann, "billing.write")
            .await
            .unwrap()
    );
    assert!(
        !admin_users::has_permission(&mut conn, ann, "users.delete")
            .await
            .unwrap()
    );
    assert!(
        !admin_users::has_permission(&mut conn, root, "users.read")
            .await
            .unwrap()
    );
    let names: Vec<_> = admin_users::roles_of(&mut conn, ann)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["billing", "support"]);

    let audited = t.count("admin_audit_log").await;
    let err = admin_users::grant_role(&mut conn, &ctx(root), ann, support.id)
        .await
        .unwrap_err();
    assert_eq!(conflict_on(&err), "admin_users_user_role_key");
    let err = admin_users::grant_role(&mut conn, &ctx(root), ann, AdminRoleId::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                entity: "admin role"
            }
        ),
        "{err:?}"
    );
    let err = admin_users::grant_role(&mut conn, &ctx(root), UserId::new(), support.id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }), "{err:?}");
    let bad_ctx = AuditContext {
        actor: root,
        ip_address: Some("localhost".into()),
    };
    let err = admin_users::grant_role(&mut conn, &bad_ctx, root, support.id)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["ip_address"]);
    let err = admin_users::revoke_role(&mut conn, &bad_ctx, ann, support.id)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["ip_address"]);
    assert_eq!(t.count("admin_users").await, 2);
    assert_eq!(t.count("admin_audit_log").await, audited);

    admin_users::revoke_role(&mut conn, &ctx(root), ann, support.id)
        .await
        .unwrap();
    assert!(
        !admin_users::has_permission(&mut conn, ann, "users.read")
            .await
            .unwrap()
    );
    let err = admin_users::revoke_role(&mut conn, &ctx(root), ann, support.id)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                entity: "admin grant"
            }
        ),
        "{err:?}"
    );

    let about_ann = admin_audit_log::list(
        &mut conn,
        &AuditFilter {
            entity_type: Some("user".into()),
            entity_id: Some(ann.to_string()),
            ..Default::default()
        },
        None,
        10,
    )
    .await
    .unwrap()
    .items;
    let actions: Vec<_> = about_ann.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "admin_role.revoked",
            "admin_role.granted",
            "admin_role.granted"
        ]
    );
    assert_eq!(
        about_ann[0].before.as_ref().unwrap()["role_id"],
        json!(support.id)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_is_paged_and_filtered_by_actor_entity_and_time() {
    let t = TestDb::new().await;
    let a = user(&t, "a@example.com").await;
    let b = user(&t, "b@example.com").await;
    let mut conn = t.conn().await;
    let entry = |entity: &str, n: i32| NewAuditEntry {
        action: "thing.touched".into(),
        entity_type: entity.into(),
        entity_id: Some(n.to_string()),
        before: None,
        after: Some(json!({ "n": n })),
    };
    let mut all = Vec::new();
    for n in 0..6 {
        let actor = if n % 2 == 0 { a } else { b };
        let entity = if n < 3 { "tenant" } else { "user" };
        all.push(
            admin_audit_log::record(&mut conn, &AuditContext::new(actor), &entry(entity, n))
                .await
                .unwrap(),
        );
    }
    all.reverse();

    // Paging: two at a time, newest first, every row once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = admin_audit_log::list(&mut conn, &AuditFilter::default(), after, 2)
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|e| e.id));
        let Some(next) = page.next else { break };
        after = Some(next);
    }
    assert_eq!(seen, all.iter().map(|e| e.id).collect::<Vec<_>>());

    let by_a = admin_audit_log::list(
        &mut conn,
        &AuditFilter {
            actor: Some(a),
            ..Default::default()
        },
        None,
        100,
    )
    .await
    .unwrap()
    .items;
    assert_eq!(by_a.len(), 3);
    assert!(by_a.iter().all(|e| e.actor_id == a));

    let a_on_users = admin_audit_log::list(
        &mut conn,
        &AuditFilter {
            actor: Some(a),
            entity_type: Some("user".into()),
            ..Default::default()
        },
        None,
        100,
    )
    .await
    .unwrap()
    .items;
    assert_eq!(
        a_on_users
            .iter()
            .map(|e| e.entity_id.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["4"]
    );

    // Time range: [from, until).
    let now = Utc::now();
    let window = |from, until| AuditFilter {
        from,
        until,
        ..Default::default()
    };
    let everything = admin_audit_log::list(
        &mut conn,
        &window(
            Some(now - Duration::hours(1)),
            Some(now + Duration::hours(1)),
        ),
        None,
        100,
    )
    .await
    .unwrap()
    .items;
    assert_eq!(everything.len(), 6);
    let future = admin_audit_log::list(
        &mut conn,
        &window(Some(now + Duration::hours(1)), None),
        None,
        100,
    )
    .await
    .unwrap()
    .items;
    assert!(future.is_empty());
    let until_first =
        admin_audit_log::list(&mut conn, &window(None, Some(all[5].created_at)), None, 100)
            .await
            .unwrap()
            .items;
    assert!(until_first.is_empty(), "until is exclusive");

    let err = admin_audit_log::list(
        &mut conn,
        &window(Some(now), Some(now - Duration::hours(1))),
        None,
        10,
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["from"]);
    let err = admin_audit_log::list(&mut conn, &AuditFilter::default(), None, 0)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["limit"]);
    let err = admin_audit_log::list(
        &mut conn,
        &AuditFilter {
            entity_type: Some(String::new()),
            ..Default::default()
        },
        None,
        10,
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["entity_type"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn record_rejects_bad_input_and_writes_nothing() {
    let t = TestDb::new().await;
    let a = user(&t, "a@example.com").await;
    let mut conn = t.conn().await;
    let err = admin_audit_log::record(
        &mut conn,
        &AuditContext::new(a),
        &NewAuditEntry {
            action: String::new(),
            entity_type: "e".repeat(65),
            entity_id: Some("i".repeat(201)),
            before: None,
            after: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.invalid_fields(),
        vec!["action", "entity_id", "entity_type"]
    );
    assert_eq!(t.count("admin_audit_log").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_refuses_to_update_delete_or_truncate_the_audit_log() {
    let t = TestDb::new().await;
    let a = user(&t, "a@example.com").await;
    let mut conn = t.conn().await;
    let entry = admin_audit_log::record(
        &mut conn,
        &AuditContext::new(a),
        &NewAuditEntry {
            action: "x.done".into(),
            entity_type: "x".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    for sql in [
        "UPDATE admin_audit_log SET action = 'forged'",
        "DELETE FROM admin_audit_log",
        "TRUNCATE admin_audit_log",
    ] {
        let err = diesel::sql_query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let log = admin_audit_log::list(&mut conn, &AuditFilter::default(), None, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(log, vec![entry]);

    // Deleting the actor leaves the log intact (no foreign key to cascade).
    users::delete(&mut conn, a).await.unwrap();
    assert_eq!(t.count("admin_audit_log").await, 1);
}

/// An admin action taken through the escape hatch records its reason on the
/// audit entry, which outlives the logs; one taken without it records none.
#[tokio::test(flavor = "multi_thread")]
async fn an_audit_entry_written_through_the_escape_hatch_says_why() {
    let t = TestDb::new().await;
    let a = user(&t, "a@example.com").await;
    let db = t.service_db();
    let entry = |action: &str| NewAuditEntry {
        action: action.into(),
        entity_type: "tenant".into(),
        ..Default::default()
    };
    let hatch = db.with(database::Ctx::system(
        "support ticket 42: merge two tenants",
    ));
    let through = hatch
        .transaction(async |conn| {
            admin_audit_log::record(conn, &AuditContext::new(a), &entry("tenant.merged")).await
        })
        .await
        .unwrap();
    assert_eq!(
        through.system_reason.as_deref(),
        Some("support ticket 42: merge two tenants")
    );
    let plain = db
        .run(async |conn| {
            admin_audit_log::record(conn, &AuditContext::new(a), &entry("tenant.renamed")).await
        })
        .await
        .unwrap();
    assert_eq!(plain.system_reason, None);
}
