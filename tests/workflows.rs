//! The workflow engine against a real PostgreSQL: workflows, executions and
//! steps, their state machines, the claim queue under real concurrency, and
//! the nested load's bounded query count.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::workflows::{chain, edge, new_workflow, node, workflow};
use common::{TestDb, bare_tenant as tenant};
use database::auth::{NewUser, users};
use database::workflows::{
    ExecutionFilter, ExecutionStatus, NewWorkflow, StartExecution, StepStatus, WorkflowGraph,
    WorkflowPatch, execution_steps, executions, workflows,
};
use database::{Conn, Error, ExecutionId, TenantId, UserId, WorkflowId};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::json;

async fn user(conn: &mut Conn, email: &str) -> UserId {
    users::create(
        conn,
        &NewUser {
            email: email.to_owned(),
            ..NewUser::default()
        },
    )
    .await
    .unwrap()
    .id
}

async fn start(conn: &mut Conn, tenant_id: TenantId, workflow_id: WorkflowId) -> ExecutionId {
    executions::start(conn, tenant_id, workflow_id, &StartExecution::default())
        .await
        .unwrap()
        .execution
        .id
}

// ---------------------------------------------------------------- workflows

#[tokio::test(flavor = "multi_thread")]
async fn create_and_find_a_workflow() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let owner = user(&mut conn, "ann@example.com").await;
    let input = NewWorkflow {
        description: Some("nightly".into()),
        ..new_workflow("Pipeline", chain())
    };
    let created = workflows::create(&mut conn, tn, Some(owner), &input)
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.tenant_id, tn);
    assert_eq!(created.owner_id, Some(owner));
    assert_eq!(created.graph().unwrap(), chain());
    let found = workflows::find(&mut conn, tn, created.id).await.unwrap();
    assert_eq!(found, created);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_refuses_bad_input_and_writes_nothing() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;

    let err = workflows::create(&mut conn, tn, None, &new_workflow("", chain()))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["name"]);

    let dangling = WorkflowGraph {
        nodes: vec![node("a"), node("b")],
        edges: vec![edge("a", "b"), edge("b", "ghost")],
    };
    let err = workflows::create(&mut conn, tn, None, &new_workflow("x", dangling))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["graph.edges[1].target"]);

    let twice = WorkflowGraph {
        nodes: vec![node("a"), node("a"), node("")],
        edges: vec![edge("nowhere", "a")],
    };
    let err = workflows::create(&mut conn, tn, None, &new_workflow("", twice))
        .await
        .unwrap_err();
    assert_eq!(
        err.invalid_fields(),
        vec![
            "graph.edges[0].source",
            "graph.nodes[1].id",
            "graph.nodes[2].id",
            "name"
        ]
    );

    let err = workflows::create(
        &mut conn,
        tn,
        Some(UserId::new()),
        &new_workflow("x", chain()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }), "{err:?}");

    let err = workflows::create(
        &mut conn,
        TenantId::new(),
        None,
        &new_workflow("x", chain()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "tenant" }),
        "{err:?}"
    );
    drop(conn);
    assert_eq!(t.count("workflows").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn update_checks_the_version_and_bumps_it() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let id = workflow(&mut conn, tn).await;

    let graph = WorkflowGraph {
        nodes: vec![node("a"), node("z")],
        edges: vec![edge("a", "z")],
    };
    let patch = WorkflowPatch {
        name: Some("Renamed".into()),
        graph: Some(graph.clone()),
        ..WorkflowPatch::default()
    };
    let updated = workflows::update(&mut conn, tn, id, 1, &patch)
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.graph().unwrap(), graph);

    // Based on version 1 again: somebody (we) changed it since.
    let err = workflows::update(&mut conn, tn, id, 1, &patch)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Stale {
                entity: "workflow",
                expected: 1
            }
        ),
        "{err:?}"
    );

    // Bad input: refused before the version check, nothing changes.
    let bad = WorkflowPatch {
        name: Some(String::new()),
        graph: Some(WorkflowGraph {
            nodes: vec![node("a")],
            edges: vec![edge("a", "b")],
        }),
        ..WorkflowPatch::default()
    };
    let err = workflows::update(&mut conn, tn, id, 2, &bad)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["graph.edges[0].target", "name"]);
    let now = workflows::find(&mut conn, tn, id).await.unwrap();
    assert_eq!(now, updated);

    let err = workflows::update(&mut conn, tn, WorkflowId::new(), 1, &patch)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "workflow" }));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_updates_of_one_version_one_wins_the_rest_are_stale() {
    let t = TestDb::new().await;
    let tn = tenant(&mut *t.conn().await, "acme").await;
    let id = workflow(&mut *t.conn().await, tn).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut conn = t.owner.conn().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let patch = WorkflowPatch {
                name: Some(format!("editor {i}")),
                graph: Some(WorkflowGraph {
                    nodes: vec![node(&format!("n{i}"))],
                    edges: vec![],
                }),
                ..WorkflowPatch::default()
            };
            workflows::update(&mut conn, tn, id, 1, &patch).await
        }));
    }
    let mut winners = Vec::new();
    let mut stale = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(w) => winners.push(w),
            Err(Error::Stale { expected: 1, .. }) => stale += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(stale, 7);
    let stored = workflows::find(&mut *t.conn().await, tn, id).await.unwrap();
    assert_eq!(stored.version, 2);
    // The stored graph is the winner's whole graph, not a mix.
    assert_eq!(stored, winners[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_the_workflow_and_its_history() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let id = workflow(&mut conn, tn).await;
    start(&mut conn, tn, id).await;
    workflows::delete(&mut conn, tn, id).await.unwrap();
    let err = workflows::delete(&mut conn, tn, id).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "workflow" }));
    drop(conn);
    assert_eq!(t.count("workflows").await, 0);
    assert_eq!(t.count("executions").await, 0);
    assert_eq!(t.count("execution_steps").await, 0);
}

// --------------------------------------------------------------- executions

#[tokio::test(flavor = "multi_thread")]
async fn start_creates_the_execution_and_its_pending_steps() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let who = user(&mut conn, "ann@example.com").await;
    let id = workflow(&mut conn, tn).await;
    let started = executions::start(
        &mut conn,
        tn,
        id,
        &StartExecution {
            user_id: Some(who),
            input: json!({"n": 1}),
            max_attempts: 2,
        },
    )
    .await
    .unwrap();
    let e = &started.execution;
    assert_eq!(e.status, ExecutionStatus::Pending);
    assert_eq!(e.workflow_version, 1);
    assert_eq!(e.user_id, Some(who));
    assert_eq!(e.input, json!({"n": 1}));
    assert!(e.started_at.is_none() && e.finished_at.is_none());
    let nodes: Vec<_> = started.steps.iter().map(|s| s.node_id.as_str()).collect();
    assert_eq!(nodes, ["a", "b", "c"]);
    assert!(
        started
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Pending && s.attempts == 0 && s.max_attempts == 2)
    );
    assert_eq!(
        execution_steps::list_for_execution(&mut conn, tn, e.id)
            .await
            .unwrap(),
        started.steps
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn start_refuses_bad_input_and_writes_nothing() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let id = workflow(&mut conn, tn).await;
    let err = executions::start(
        &mut conn,
        tn,
        id,
        &StartExecution {
            input: json!([1, 2]),
            max_attempts: 0,
            ..StartExecution::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["input", "max_attempts"]);

    let err = executions::start(
        &mut conn,
        tn,
        id,
        &StartExecution {
            user_id: Some(UserId::new()),
            ..StartExecution::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }), "{err:?}");

    let err = executions::start(&mut conn, tn, WorkflowId::new(), &StartExecution::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "workflow" }));
    drop(conn);
    assert_eq!(t.count("executions").await, 0);
    assert_eq!(t.count("execution_steps").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_statuses_are_refused_with_a_typed_error() {
    let err = "bogus".parse::<ExecutionStatus>().unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["ExecutionStatus"]);
    let err = "done".parse::<StepStatus>().unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["StepStatus"]);
    assert!(
        serde_json::from_value::<ExecutionFilter>(json!({"status": "bogus", "limit": 5})).is_err()
    );
    let ok: ExecutionFilter =
        serde_json::from_value(json!({"status": "paused", "limit": 5})).unwrap();
    assert_eq!(ok.status, Some(ExecutionStatus::Paused));
    // The labels are exactly seed 002's.
    let labels: Vec<_> = ExecutionStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        labels,
        [
            "pending",
            "running",
            "paused",
            "completed",
            "failed",
            "cancelled"
        ]
    );
    let labels: Vec<_> = StepStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        labels,
        ["pending", "running", "completed", "failed", "skipped"]
    );
}

/// Brings a fresh execution into `status` through legal moves only.
async fn execution_in(
    conn: &mut Conn,
    tn: TenantId,
    wf: WorkflowId,
    status: ExecutionStatus,
) -> ExecutionId {
    use ExecutionStatus::*;
    let id = start(conn, tn, wf).await;
    if status == Pending {
        return id;
    }
    if status == Cancelled {
        executions::cancel(conn, tn, id).await.unwrap();
        return id;
    }
    let claimed = executions::claim_next(conn, tn, "w")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, id, "the only pending execution is claimed");
    match status {
        Running => {}
        Paused => {
            executions::pause(conn, tn, id).await.unwrap();
        }
        Completed => {
            executions::complete(conn, tn, id, &json!({}))
                .await
                .unwrap();
        }
        Failed => {
            executions::fail(conn, tn, id, "boom").await.unwrap();
        }
        _ => unreachable!(),
    }
    id
}

/// Asks for `to` through the public function that enters it.
async fn move_to(
    conn: &mut Conn,
    tn: TenantId,
    id: ExecutionId,
    to: ExecutionStatus,
) -> Result<database::workflows::Execution, Error> {
    use ExecutionStatus::*;
    match to {
        Running => executions::resume(conn, tn, id).await,
        Paused => executions::pause(conn, tn, id).await,
        Completed => executions::complete(conn, tn, id, &json!({"ok": true})).await,
        Failed => executions::fail(conn, tn, id, "boom").await,
        Cancelled => executions::cancel(conn, tn, id).await,
        Pending => unreachable!("nothing enters pending"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_illegal_execution_transition_is_refused_and_writes_nothing() {
    use ExecutionStatus::*;
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let wf = workflow(&mut conn, tn).await;
    let (mut legal, mut refused) = (0, 0);
    for &from in ExecutionStatus::ALL {
        for &to in ExecutionStatus::ALL {
            if to == Pending {
                continue; // no function enters pending, and nothing may
            }
            let id = execution_in(&mut conn, tn, wf, from).await;
            let before = executions::find(&mut conn, tn, id).await.unwrap();
            // pending -> running is legal, but only claim_next does it.
            let allowed = from.can_become(to) && !(from == Pending && to == Running);
            match move_to(&mut conn, tn, id, to).await {
                Ok(after) => {
                    assert!(allowed, "{from} -> {to} was allowed");
                    assert_eq!(after.status, to);
                    legal += 1;
                }
                Err(Error::IllegalTransition { from: f, to: tt }) => {
                    assert!(!allowed, "{from} -> {to} was refused");
                    assert_eq!((f.as_str(), tt.as_str()), (from.as_str(), to.as_str()));
                    let after = executions::find(&mut conn, tn, id).await.unwrap();
                    assert_eq!(after, before, "{from} -> {to} wrote something");
                    refused += 1;
                }
                Err(e) => panic!("{from} -> {to}: {e:?}"),
            }
            // Leave no pending execution behind for the next claim.
            let _ = executions::cancel(&mut conn, tn, id).await;
        }
    }
    assert_eq!(legal, 7);
    assert_eq!(refused, 30 - 7);
    // Terminal means terminal.
    for s in [Completed, Failed, Cancelled] {
        assert!(s.is_terminal());
    }
    assert!(!Running.is_terminal());
}

#[tokio::test(flavor = "multi_thread")]
async fn transitions_set_the_timestamps_they_imply() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let wf = workflow(&mut conn, tn).await;
    let id = start(&mut conn, tn, wf).await;
    let claimed = executions::claim_next(&mut conn, tn, "worker-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.worker_id.as_deref(), Some("worker-1"));
    let started = claimed.started_at.expect("claim sets started_at");
    assert!(claimed.finished_at.is_none());
    let paused = executions::pause(&mut conn, tn, id).await.unwrap();
    assert_eq!(paused.started_at, Some(started));
    let resumed = executions::resume(&mut conn, tn, id).await.unwrap();
    assert_eq!(
        resumed.started_at,
        Some(started),
        "resume keeps the first start"
    );
    let done = executions::complete(&mut conn, tn, id, &json!({"answer": 42}))
        .await
        .unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output, Some(json!({"answer": 42})));
    assert!(done.finished_at.unwrap() >= started);

    let id = start(&mut conn, tn, wf).await;
    let cancelled = executions::cancel(&mut conn, tn, id).await.unwrap();
    assert!(cancelled.started_at.is_none());
    assert!(cancelled.finished_at.is_some());

    let id = start(&mut conn, tn, wf).await;
    executions::claim_next(&mut conn, tn, "w").await.unwrap();
    let err = executions::fail(&mut conn, tn, id, "").await.unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["error"]);
    let failed = executions::fail(&mut conn, tn, id, "boom").await.unwrap();
    assert_eq!(failed.error.as_deref(), Some("boom"));
    assert!(failed.finished_at.is_some());

    let err = executions::claim_next(&mut conn, tn, "").await.unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["worker_id"]);
    assert!(
        executions::claim_next(&mut conn, tn, "w")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_transitions_of_one_execution_only_one_succeeds() {
    let t = TestDb::new().await;
    let tn = tenant(&mut *t.conn().await, "acme").await;
    let wf = workflow(&mut *t.conn().await, tn).await;
    let id = execution_in(&mut *t.conn().await, tn, wf, ExecutionStatus::Running).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut conn = t.owner.conn().await.unwrap();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                executions::complete(&mut conn, tn, id, &json!({"by": i})).await
            } else {
                executions::cancel(&mut conn, tn, id).await
            }
        }));
    }
    let mut ok = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(e) => ok.push(e),
            Err(Error::IllegalTransition { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok.len(), 1);
    let stored = executions::find(&mut *t.conn().await, tn, id)
        .await
        .unwrap();
    assert_eq!(stored, ok[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_workers_claim_each_of_1000_pending_executions_exactly_once() {
    let t = TestDb::new().await;
    let tn = tenant(&mut *t.conn().await, "acme").await;
    let wf = workflows::create(
        &mut *t.conn().await,
        tn,
        None,
        &new_workflow(
            "one step",
            WorkflowGraph {
                nodes: vec![node("only")],
                edges: vec![],
            },
        ),
    )
    .await
    .unwrap()
    .id;
    {
        let mut conn = t.conn().await;
        for _ in 0..1000 {
            start(&mut conn, tn, wf).await;
        }
    }
    let mut workers = Vec::new();
    for w in 0..8 {
        let mut conn = t.owner.conn().await.unwrap();
        workers.push(tokio::spawn(async move {
            let name = format!("worker-{w}");
            let mut mine = Vec::new();
            while let Some(e) = executions::claim_next(&mut conn, tn, &name).await.unwrap() {
                assert_eq!(e.status, ExecutionStatus::Running);
                assert_eq!(e.worker_id.as_deref(), Some(name.as_str()));
                mine.push(e.id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    assert_eq!(all.len(), 1000, "every execution claimed once in total");
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), 1000, "no execution claimed twice");

    use database::schema::executions as ex;
    let mut conn = t.conn().await;
    let running: i64 = ex::table
        .filter(ex::status.eq(ExecutionStatus::Running))
        .filter(ex::worker_id.is_not_null())
        .filter(ex::started_at.is_not_null())
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(running, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_pages_newest_first_and_filters_by_status_and_time() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let wf = workflow(&mut conn, tn).await;
    let other = workflow(&mut conn, tn).await;
    start(&mut conn, tn, other).await;
    let mut ids = Vec::new();
    for _ in 0..25 {
        ids.push(start(&mut conn, tn, wf).await);
    }
    // Cancel every fifth one.
    for id in ids.iter().step_by(5) {
        executions::cancel(&mut conn, tn, *id).await.unwrap();
    }

    let mut seen = Vec::new();
    let filter = ExecutionFilter::default();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = executions::list(&mut conn, tn, wf, &filter, after, 10)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|e| (e.created_at, e.id)));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected = seen.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected, "newest first");
    let got: HashSet<_> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(got, ids.iter().copied().collect::<HashSet<_>>());

    let cancelled = executions::list(
        &mut conn,
        tn,
        wf,
        &ExecutionFilter {
            status: Some(ExecutionStatus::Cancelled),
            ..ExecutionFilter::default()
        },
        None,
        50,
    )
    .await
    .unwrap();
    assert_eq!(cancelled.items.len(), 5);
    assert!(cancelled.next.is_none());

    let all = executions::list(&mut conn, tn, wf, &ExecutionFilter::default(), None, 50)
        .await
        .unwrap()
        .items;
    // A window [created_at of the 10th newest, created_at of the 3rd newest).
    let window = ExecutionFilter {
        created_from: Some(all[9].created_at),
        created_before: Some(all[2].created_at),
        ..ExecutionFilter::default()
    };
    let inside = executions::list(&mut conn, tn, wf, &window, None, 50)
        .await
        .unwrap()
        .items;
    assert!(!inside.is_empty());
    assert!(
        inside
            .iter()
            .all(|e| e.created_at >= all[9].created_at && e.created_at < all[2].created_at)
    );

    let err = executions::list(&mut conn, tn, wf, &ExecutionFilter::default(), None, 0)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["limit"]);
    let err = executions::list(
        &mut conn,
        tn,
        wf,
        &ExecutionFilter {
            created_from: Some(all[2].created_at),
            created_before: Some(all[9].created_at),
            ..ExecutionFilter::default()
        },
        None,
        50,
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["created_before"]);
}

/// Counts the statements `f` sends on a dedicated connection.
async fn queries_of<F>(url: &str, f: F) -> usize
where
    F: AsyncFnOnce(&mut Conn),
{
    let mut conn = Conn::establish(url).await.unwrap();
    let counter = Arc::new(AtomicUsize::new(0));
    let seen = counter.clone();
    conn.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
        if let diesel::connection::InstrumentationEvent::StartQuery { .. } = event {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    f(&mut conn).await;
    AtomicUsize::load(&counter, Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nested_load_costs_the_same_queries_for_1_and_100_executions() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let wf = workflow(&mut conn, tn).await;
    start(&mut conn, tn, wf).await;

    let one = queries_of(&t.url, async |c| {
        let tree = workflows::find_with_recent_executions(c, tn, wf, 100)
            .await
            .unwrap();
        assert_eq!(tree.executions.len(), 1);
        assert_eq!(tree.executions[0].steps.len(), 3);
    })
    .await;

    for _ in 0..99 {
        start(&mut conn, tn, wf).await;
    }
    let hundred = queries_of(&t.url, async |c| {
        let tree = workflows::find_with_recent_executions(c, tn, wf, 100)
            .await
            .unwrap();
        assert_eq!(tree.executions.len(), 100);
        for e in &tree.executions {
            let nodes: Vec<_> = e.steps.iter().map(|s| s.node_id.as_str()).collect();
            assert_eq!(nodes, ["a", "b", "c"]);
            assert!(e.steps.iter().all(|s| s.execution_id == e.execution.id));
        }
        let keys: Vec<_> = tree
            .executions
            .iter()
            .map(|e| (e.execution.created_at, e.execution.id))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(keys, sorted, "newest first");
    })
    .await;
    assert_eq!(one, hundred);
    assert_eq!(hundred, 3, "workflow, executions, steps");

    // The seed's example: the last 10.
    let recent = workflows::find_with_recent_executions(&mut conn, tn, wf, 10)
        .await
        .unwrap();
    assert_eq!(recent.executions.len(), 10);
    let err = workflows::find_with_recent_executions(&mut conn, tn, wf, 0)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["limit"]);
}

#[derive(QueryableByName, Debug)]
struct PreparedPlans {
    #[diesel(sql_type = diesel::sql_types::Text)]
    statement: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    generic_plans: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    custom_plans: i64,
}

/// A bound LIMIT hides the row count from the generic plan of a prepared
/// statement, so PostgreSQL re-plans it on every call (the claim and the
/// recent-executions list cost 50-70 µs more per call that way). Their
/// limits are literal: after its first five executions the server settles
/// on one generic plan and reuses it.
#[tokio::test(flavor = "multi_thread")]
async fn the_claim_and_the_recent_list_reuse_one_plan() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let wf = workflow(&mut conn, tn).await;
    start(&mut conn, tn, wf).await;
    // A queue deep enough that a plan for "a tenth of the matches" is
    // clearly costlier than one for the first row.
    diesel::sql_query(
        "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version, status, input, created_at) \
         SELECT gen_random_uuid(), $1, $2, 1, 'pending', '{}', now() - g * interval '1 ms' \
         FROM generate_series(1, 20000) AS g",
    )
    .bind::<diesel::sql_types::Uuid, _>(tn.into_uuid())
    .bind::<diesel::sql_types::Uuid, _>(wf.into_uuid())
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query("ANALYZE executions")
        .execute(&mut conn)
        .await
        .unwrap();

    // One dedicated connection: its prepared statements are ours alone.
    let mut own = Conn::establish(&t.url).await.unwrap();
    for _ in 0..12 {
        executions::claim_next(&mut own, tn, "w")
            .await
            .unwrap()
            .expect("a pending execution");
        workflows::find_with_recent_executions(&mut own, tn, wf, 10)
            .await
            .unwrap();
    }
    let plans: Vec<PreparedPlans> = diesel::sql_query(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements",
    )
    .load(&mut own)
    .await
    .unwrap();
    for (what, prefix) in [
        ("claim", "UPDATE \"executions\""),
        ("recent executions", "SELECT \"executions\".\"id\""),
    ] {
        let p = plans
            .iter()
            .find(|p| p.statement.starts_with(prefix))
            .unwrap_or_else(|| panic!("no prepared {what} statement in {plans:#?}"));
        assert!(
            p.generic_plans >= 6 && p.custom_plans <= 5,
            "{what} is re-planned on every call: {p:#?}"
        );
    }
}

// ------------------------------------------------------------- tenancy

#[tokio::test(flavor = "multi_thread")]
async fn another_tenant_finds_and_changes_nothing() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let mine = tenant(&mut conn, "mine").await;
    let theirs = tenant(&mut conn, "theirs").await;
    let wf = workflow(&mut conn, mine).await;
    let run = executions::start(&mut conn, mine, wf, &StartExecution::default())
        .await
        .unwrap();
    let ex = run.execution.id;
    let step = run.steps[0].id;
    let snapshot = workflows::find_with_recent_executions(&mut conn, mine, wf, 10)
        .await
        .unwrap();

    let nf = |r: Result<_, Error>| matches!(r, Err(Error::NotFound { .. }));
    assert!(nf(workflows::find(&mut conn, theirs, wf).await.map(|_| ())));
    assert!(nf(workflows::update(
        &mut conn,
        theirs,
        wf,
        1,
        &WorkflowPatch {
            name: Some("stolen".into()),
            ..WorkflowPatch::default()
        }
    )
    .await
    .map(|_| ())));
    assert!(nf(workflows::delete(&mut conn, theirs, wf).await));
    assert!(nf(workflows::find_with_recent_executions(
        &mut conn, theirs, wf, 10
    )
    .await
    .map(|_| ())));
    assert!(nf(executions::start(
        &mut conn,
        theirs,
        wf,
        &StartExecution::default()
    )
    .await
    .map(|_| ())));
    assert!(nf(executions::find(&mut conn, theirs, ex)
        .await
        .map(|_| ())));
    assert!(
        executions::claim_next(&mut conn, theirs, "w")
            .await
            .unwrap()
            .is_none()
    );
    assert!(nf(executions::cancel(&mut conn, theirs, ex)
        .await
        .map(|_| ())));
    assert!(nf(executions::pause(&mut conn, theirs, ex)
        .await
        .map(|_| ())));
    assert!(nf(executions::resume(&mut conn, theirs, ex)
        .await
        .map(|_| ())));
    assert!(nf(executions::complete(&mut conn, theirs, ex, &json!({}))
        .await
        .map(|_| ())));
    assert!(nf(executions::fail(&mut conn, theirs, ex, "x")
        .await
        .map(|_| ())));
    let page = executions::list(&mut conn, theirs, wf, &ExecutionFilter::default(), None, 50)
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert!(
        execution_steps::list_for_execution(&mut conn, theirs, ex)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(nf(execution_steps::find(&mut conn, theirs, step)
        .await
        .map(|_| ())));
    assert!(nf(execution_steps::start(&mut conn, theirs, step, None)
        .await
        .map(|_| ())));
    assert!(nf(execution_steps::skip(&mut conn, theirs, step)
        .await
        .map(|_| ())));
    assert!(nf(execution_steps::finish(
        &mut conn,
        theirs,
        step,
        &json!(1),
        None
    )
    .await
    .map(|_| ())));
    assert!(nf(execution_steps::fail(&mut conn, theirs, step, "x")
        .await
        .map(|_| ())));
    assert!(nf(execution_steps::retry(&mut conn, theirs, step)
        .await
        .map(|_| ())));

    // The owner sees everything exactly as it was.
    let after = workflows::find_with_recent_executions(&mut conn, mine, wf, 10)
        .await
        .unwrap();
    assert_eq!(after, snapshot);
}

/// A value nested `levels` deep (`[[[...1...]]]`), built without recursion.
fn nested(levels: usize) -> serde_json::Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = serde_json::Value::Array(vec![v]);
    }
    v
}

/// Drops a value built by `nested` without recursion (serde_json's own drop
/// recurses, and would overflow the stack on it).
fn drop_nested(mut v: serde_json::Value) {
    while let serde_json::Value::Array(mut items) = v {
        match items.pop() {
            Some(inner) => v = inner,
            None => break,
        }
    }
}

/// A JSON value a million levels deep, built in code (serde_json's parser
/// stops at 128): refused by depth, naming the field, on a tokio worker
/// thread's stack. (It aborted the process with a stack overflow: the
/// validation library copied the rejected value into its error, and the
/// graph's size was measured by serialising it.)
#[tokio::test(flavor = "multi_thread")]
async fn a_json_value_a_million_levels_deep_is_refused_not_a_stack_overflow() {
    let t = TestDb::new().await;
    let tn = tenant(&mut *t.conn().await, "deep").await;
    let db = t.owner.clone();
    let (refused, written) = tokio::spawn(async move {
        let mut graph = chain();
        graph.nodes[1].data = nested(1_000_000);
        let mut input = new_workflow("Deep", graph);
        let result = workflows::create(&mut db.conn().await.unwrap(), tn, None, &input).await;
        drop_nested(std::mem::take(&mut input.graph.nodes[1].data));
        (result.map(|w| w.id), ())
    })
    .await
    .expect("the task ran to its end");
    let () = written;
    match refused {
        Err(Error::Invalid(invalid)) => {
            assert_eq!(invalid.field_names(), ["graph.nodes[1].data"]);
            assert_eq!(invalid.fields[0].code, "depth");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(t.count("workflows").await, 0);
}

/// The claim reads the index of pending executions. Other indexes can
/// serve its predicate, and one of them, `executions_tenant_created_idx`
/// walked backward with a filter on status, reads every execution claimed
/// before the next pending one: the planner costs the two within a few
/// hundredths, so the benchmark's claims ran at a quarter of their rate on
/// some runs (BENCHMARKS.md, "The claim's plan", which also says when the
/// planner still takes the walk: a queue of 400,000 analyzed while all
/// pending). The index scans are counted by the server
/// (`pg_stat_user_indexes`) for the crate's own statement.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_reads_the_index_of_pending_executions() {
    #[derive(QueryableByName)]
    struct Scans {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        pending: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        by_created: i64,
    }
    async fn scans(conn: &mut Conn) -> Scans {
        // This session's counts reach the shared statistics when it is idle
        // next; ask for that, then read them in a new statement.
        diesel::sql_query("SELECT pg_stat_force_next_flush()")
            .execute(conn)
            .await
            .unwrap();
        diesel::sql_query(
            "SELECT coalesce(sum(idx_scan) FILTER (WHERE indexrelname = 'executions_pending_idx'), -1)::int8 AS pending, \
                    coalesce(sum(idx_scan) FILTER (WHERE indexrelname = 'executions_tenant_created_idx'), 0)::int8 AS by_created \
             FROM pg_stat_user_indexes WHERE relname = 'executions'",
        )
        .get_result(conn)
        .await
        .unwrap()
    }
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "queue").await;
    let wf = workflow(&mut conn, tn).await;
    // A queue as the benchmark seeds it: many pending, oldest first.
    diesel::sql_query(
        "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version, status, input, created_at) \
         SELECT gen_random_uuid(), $1, $2, 1, 'pending', '{}'::jsonb, \
                timestamptz '2026-01-01' + g * interval '1 millisecond' \
         FROM generate_series(1, 20000) AS g",
    )
    .bind::<diesel::sql_types::Uuid, _>(tn)
    .bind::<diesel::sql_types::Uuid, _>(wf)
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query("ANALYZE executions")
        .execute(&mut conn)
        .await
        .unwrap();
    let before = scans(&mut conn).await;
    assert!(before.pending >= 0, "no executions_pending_idx");
    const CLAIMS: i64 = 300;
    for _ in 0..CLAIMS {
        executions::claim_next(&mut conn, tn, "w")
            .await
            .unwrap()
            .expect("a pending execution");
    }
    // The flush happens at the session's next idle moment: read until the
    // counts arrive (or two seconds pass).
    let mut after = scans(&mut conn).await;
    for _ in 0..20 {
        if after.pending - before.pending >= CLAIMS {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = scans(&mut conn).await;
    }
    assert!(
        after.pending - before.pending >= CLAIMS,
        "{CLAIMS} claims scanned executions_pending_idx {} times",
        after.pending - before.pending
    );
    assert!(
        after.by_created - before.by_created < CLAIMS,
        "the claims walked executions_tenant_created_idx {} times",
        after.by_created - before.by_created
    );
}
