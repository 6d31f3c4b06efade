//! Projects and their canvas against a real PostgreSQL: validation, keyset
//! pagination, whole-canvas saves under optimistic concurrency (with real
//! concurrent editors) and tenant isolation.

mod common;

use std::collections::HashSet;

use common::{TestDb, bare_tenant as tenant};
use database::auth::{NewUser, users};
use database::projects::{
    CanvasNodeInput, NewProject, ProjectFilter, RenameProject, SaveCanvas, canvas_nodes, projects,
};
use database::{Conn, Error, ProjectId, TenantId, UserId};
use serde_json::json;

fn new_project(name: &str) -> NewProject {
    NewProject {
        name: name.to_owned(),
        ..NewProject::default()
    }
}

async fn project(conn: &mut Conn, tn: TenantId) -> ProjectId {
    projects::create(conn, tn, None, &new_project("Site"))
        .await
        .unwrap()
        .id
}

fn node(id: &str, x: f64) -> CanvasNodeInput {
    CanvasNodeInput {
        node_id: id.to_owned(),
        node_type: "text".to_owned(),
        position_x: x,
        position_y: 0.0,
        width: Some(100.0),
        height: None,
        data: json!({"label": id}),
    }
}

fn save(version: i64, nodes: Vec<CanvasNodeInput>) -> SaveCanvas {
    SaveCanvas {
        expected_version: version,
        nodes,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_rename_archive_and_find_a_project() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let owner = users::create(
        &mut conn,
        &NewUser {
            email: "ann@example.com".into(),
            ..NewUser::default()
        },
    )
    .await
    .unwrap()
    .id;
    let created = projects::create(
        &mut conn,
        tn,
        Some(owner),
        &NewProject {
            name: "Site".into(),
            description: Some("marketing".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(created.canvas_version, 0);
    assert_eq!(created.owner_id, Some(owner));
    assert!(created.archived_at.is_none());

    let renamed = projects::rename(
        &mut conn,
        tn,
        created.id,
        &RenameProject {
            name: "New site".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(renamed.name, "New site");

    let archived = projects::archive(&mut conn, tn, created.id).await.unwrap();
    let when = archived.archived_at.expect("archived");
    let again = projects::archive(&mut conn, tn, created.id).await.unwrap();
    assert_eq!(
        again.archived_at,
        Some(when),
        "archiving twice keeps the first time"
    );
    assert_eq!(
        projects::find(&mut conn, tn, created.id).await.unwrap(),
        again
    );

    for err in [
        projects::find(&mut conn, tn, ProjectId::new())
            .await
            .unwrap_err(),
        projects::archive(&mut conn, tn, ProjectId::new())
            .await
            .unwrap_err(),
        projects::rename(
            &mut conn,
            tn,
            ProjectId::new(),
            &RenameProject { name: "x".into() },
        )
        .await
        .unwrap_err(),
    ] {
        assert!(
            matches!(err, Error::NotFound { entity: "project" }),
            "{err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_project_input_is_refused_and_nothing_is_written() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let err = projects::create(
        &mut conn,
        tn,
        None,
        &NewProject {
            name: String::new(),
            description: Some("d".repeat(2001)),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["description", "name"]);
    let err = projects::create(&mut conn, tn, None, &new_project(&"n".repeat(101)))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["name"]);
    let err = projects::create(&mut conn, tn, Some(UserId::new()), &new_project("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }), "{err:?}");
    let err = projects::create(&mut conn, TenantId::new(), None, &new_project("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "tenant" }),
        "{err:?}"
    );
    drop(conn);
    assert_eq!(t.count("projects").await, 0);

    let mut conn = t.conn().await;
    let id = project(&mut conn, tn).await;
    let err = projects::rename(
        &mut conn,
        tn,
        id,
        &RenameProject {
            name: String::new(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["name"]);
    assert_eq!(
        projects::find(&mut conn, tn, id).await.unwrap().name,
        "Site"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_pages_a_tenants_projects_newest_first() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let other = tenant(&mut conn, "other").await;
    project(&mut conn, other).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(
            projects::create(&mut conn, tn, None, &new_project(&format!("p{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    for id in &ids[..3] {
        projects::archive(&mut conn, tn, *id).await.unwrap();
    }

    let filter = ProjectFilter::default();
    let mut after = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = projects::list(&mut conn, tn, &filter, after, 10)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|p| (p.created_at, p.id)));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 22, "archived projects are hidden");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
    assert_eq!(
        seen.iter().map(|(_, id)| *id).collect::<HashSet<_>>(),
        ids[3..].iter().copied().collect::<HashSet<_>>()
    );

    let all = projects::list(
        &mut conn,
        tn,
        &ProjectFilter {
            include_archived: true,
        },
        None,
        100,
    )
    .await
    .unwrap();
    assert_eq!(all.items.len(), 25);
    assert!(all.next.is_none());

    let err = projects::list(&mut conn, tn, &ProjectFilter::default(), None, 101)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["limit"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn saving_a_canvas_upserts_sent_nodes_deletes_missing_ones_and_bumps_the_version() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let id = project(&mut conn, tn).await;

    let empty = canvas_nodes::load(&mut conn, tn, id).await.unwrap();
    assert_eq!((empty.version, empty.nodes.len()), (0, 0));

    let first = canvas_nodes::save(
        &mut conn,
        tn,
        id,
        &save(0, vec![node("a", 1.0), node("b", 2.0), node("c", 3.0)]),
    )
    .await
    .unwrap();
    assert_eq!(first.version, 1);
    let names: Vec<_> = first.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let a_id = first.nodes[0].id;

    let mut moved = node("a", 50.0);
    moved.data = json!({"label": "moved"});
    let second = canvas_nodes::save(
        &mut conn,
        tn,
        id,
        &save(1, vec![moved, node("c", 3.0), node("d", 4.0)]),
    )
    .await
    .unwrap();
    assert_eq!(second.version, 2);
    let names: Vec<_> = second.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(names, ["a", "c", "d"], "b was deleted, d added");
    assert_eq!(
        second.nodes[0].id, a_id,
        "a node keeps its row across saves"
    );
    assert_eq!(second.nodes[0].position_x, 50.0);
    assert_eq!(second.nodes[0].data, json!({"label": "moved"}));
    assert_eq!(canvas_nodes::load(&mut conn, tn, id).await.unwrap(), second);
    assert_eq!(
        projects::find(&mut conn, tn, id)
            .await
            .unwrap()
            .canvas_version,
        2
    );

    // Saved against version 1 again: refused, nothing changes.
    let err = canvas_nodes::save(&mut conn, tn, id, &save(1, vec![node("z", 0.0)]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Stale {
                entity: "canvas",
                expected: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(canvas_nodes::load(&mut conn, tn, id).await.unwrap(), second);

    // An empty canvas deletes every node.
    let cleared = canvas_nodes::save(&mut conn, tn, id, &save(2, vec![]))
        .await
        .unwrap();
    assert_eq!((cleared.version, cleared.nodes.len()), (3, 0));
    drop(conn);
    assert_eq!(t.count("canvas_nodes").await, 0);

    let mut conn = t.conn().await;
    let err = canvas_nodes::save(&mut conn, tn, ProjectId::new(), &save(0, vec![]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "project" }));
    let err = canvas_nodes::load(&mut conn, tn, ProjectId::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "project" }));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_canvas_is_refused_and_nothing_is_written() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let id = project(&mut conn, tn).await;
    canvas_nodes::save(&mut conn, tn, id, &save(0, vec![node("a", 0.0)]))
        .await
        .unwrap();
    let before = canvas_nodes::load(&mut conn, tn, id).await.unwrap();

    let mut no_type = node("b", 0.0);
    no_type.node_type = String::new();
    let mut nan = node("c", f64::NAN);
    nan.width = Some(0.0);
    let err = canvas_nodes::save(
        &mut conn,
        tn,
        id,
        &save(1, vec![node("a", 1.0), node("a", 2.0), no_type, nan]),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.invalid_fields(),
        vec![
            "nodes[1].node_id",
            "nodes[2].node_type",
            "nodes[3].position_x",
            "nodes[3].width"
        ]
    );
    let err = canvas_nodes::save(&mut conn, tn, id, &save(-1, vec![]))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["expected_version"]);
    assert_eq!(canvas_nodes::load(&mut conn, tn, id).await.unwrap(), before);
    drop(conn);
    assert_eq!(t.count("canvas_nodes").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_editors_saving_one_version_one_wins_the_other_is_stale() {
    let t = TestDb::new().await;
    let tn = tenant(&mut *t.conn().await, "acme").await;
    let id = project(&mut *t.conn().await, tn).await;
    let mut tasks = Vec::new();
    for editor in 0..8 {
        let mut conn = t.owner.conn().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let nodes = (0..5)
                .map(|i| node(&format!("e{editor}-n{i}"), i as f64))
                .collect();
            canvas_nodes::save(&mut conn, tn, id, &save(0, nodes)).await
        }));
    }
    let mut winners = Vec::new();
    let mut stale = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(canvas) => winners.push(canvas),
            Err(Error::Stale { expected: 0, .. }) => stale += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(stale, 7);
    let stored = canvas_nodes::load(&mut *t.conn().await, tn, id)
        .await
        .unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored, winners[0], "exactly the winner's canvas, no mix");
    assert_eq!(t.count("canvas_nodes").await, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenant_finds_and_changes_nothing() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let mine = tenant(&mut conn, "mine").await;
    let theirs = tenant(&mut conn, "theirs").await;
    let id = project(&mut conn, mine).await;
    canvas_nodes::save(&mut conn, mine, id, &save(0, vec![node("a", 0.0)]))
        .await
        .unwrap();
    let project_before = projects::find(&mut conn, mine, id).await.unwrap();
    let canvas_before = canvas_nodes::load(&mut conn, mine, id).await.unwrap();

    let nf = |r: Result<(), Error>| matches!(r, Err(Error::NotFound { entity: "project" }));
    assert!(nf(projects::find(&mut conn, theirs, id).await.map(|_| ())));
    assert!(nf(projects::rename(
        &mut conn,
        theirs,
        id,
        &RenameProject { name: "x".into() }
    )
    .await
    .map(|_| ())));
    assert!(nf(projects::archive(&mut conn, theirs, id)
        .await
        .map(|_| ())));
    assert!(nf(canvas_nodes::load(&mut conn, theirs, id)
        .await
        .map(|_| ())));
    assert!(nf(canvas_nodes::save(
        &mut conn,
        theirs,
        id,
        &save(1, vec![])
    )
    .await
    .map(|_| ())));
    let page = projects::list(
        &mut conn,
        theirs,
        &ProjectFilter {
            include_archived: true,
        },
        None,
        100,
    )
    .await
    .unwrap();
    assert!(page.items.is_empty());

    assert_eq!(
        projects::find(&mut conn, mine, id).await.unwrap(),
        project_before
    );
    assert_eq!(
        canvas_nodes::load(&mut conn, mine, id).await.unwrap(),
        canvas_before
    );
}

/// A canvas node's data a million levels deep (built in code): refused by
/// depth, naming the field, without overflowing a tokio worker's stack, and
/// nothing written.
#[tokio::test(flavor = "multi_thread")]
async fn canvas_data_a_million_levels_deep_is_refused_not_a_stack_overflow() {
    fn nested(levels: usize) -> serde_json::Value {
        let mut v = json!(1);
        for _ in 0..levels {
            v = serde_json::Value::Array(vec![v]);
        }
        v
    }
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "deep").await;
    let project = projects::create(
        &mut conn,
        tn,
        None,
        &NewProject {
            name: "Deep".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .id;
    drop(conn);
    let db = t.owner.clone();
    let result = tokio::spawn(async move {
        let mut input = SaveCanvas {
            nodes: vec![CanvasNodeInput {
                node_id: "n1".into(),
                node_type: "note".into(),
                position_x: 0.0,
                position_y: 0.0,
                width: None,
                height: None,
                data: nested(1_000_000),
            }],
            ..Default::default()
        };
        let result = canvas_nodes::save(&mut db.conn().await.unwrap(), tn, project, &input)
            .await
            .map(drop);
        // serde_json's drop recurses: take the value apart level by level.
        let mut v = std::mem::take(&mut input.nodes[0].data);
        while let serde_json::Value::Array(mut items) = v {
            match items.pop() {
                Some(inner) => v = inner,
                None => break,
            }
        }
        result
    })
    .await
    .expect("the task ran to its end");
    match result {
        Err(Error::Invalid(invalid)) => assert_eq!(invalid.field_names(), ["nodes[0].data"]),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(t.count("canvas_nodes").await, 0);
}
