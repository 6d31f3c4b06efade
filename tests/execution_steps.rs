//! Execution steps against a real PostgreSQL: their state machine, retries
//! bounded by attempts, moving only while their execution runs, and the
//! payload rules (nothing unreadable is committed). Workflows and executions
//! are in `tests/workflows.rs`.

mod common;

use common::workflows::{chain, new_workflow, node, workflow};
use common::{TestDb, bare_tenant as tenant};
use database::auth::users;
use database::workflows::{
    GraphNode, NewWorkflow, StartExecution, StepStatus, WorkflowGraph, execution_steps, executions,
    workflows,
};
use database::{Conn, Error, ExecutionId, TenantId};
use serde_json::json;

/// Claims the oldest pending execution of the tenant, which must be `id`:
/// steps move only while their execution runs.
async fn claim(conn: &mut Conn, tenant_id: TenantId, id: ExecutionId) {
    let claimed = executions::claim_next(conn, tenant_id, "worker-1")
        .await
        .unwrap()
        .expect("a pending execution");
    assert_eq!(claimed.id, id);
}

// -------------------------------------------------------------------- steps

#[tokio::test(flavor = "multi_thread")]
async fn steps_run_fail_retry_within_their_attempts() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let wf = workflow(&mut conn, tn).await;
    let run = executions::start(
        &mut conn,
        tn,
        wf,
        &StartExecution {
            max_attempts: 2,
            ..StartExecution::default()
        },
    )
    .await
    .unwrap();
    claim(&mut conn, tn, run.execution.id).await;
    let [a, b, c] = [run.steps[0].id, run.steps[1].id, run.steps[2].id];

    let s = execution_steps::start(&mut conn, tn, a, Some(&json!({"x": 1})))
        .await
        .unwrap();
    assert_eq!((s.status, s.attempts), (StepStatus::Running, 1));
    assert!(s.started_at.is_some() && s.finished_at.is_none());
    let s = execution_steps::finish(
        &mut conn,
        tn,
        a,
        &json!({"y": 2}),
        Some(&json!({"valid": true})),
    )
    .await
    .unwrap();
    assert_eq!(s.status, StepStatus::Completed);
    assert_eq!(s.output, Some(json!({"y": 2})));
    assert_eq!(s.validation, Some(json!({"valid": true})));
    assert!(s.finished_at.is_some());

    // b: fails, is retried once, fails again: no attempt left.
    execution_steps::start(&mut conn, tn, b, None)
        .await
        .unwrap();
    let err = execution_steps::fail(&mut conn, tn, b, "")
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["error"]);
    let s = execution_steps::fail(&mut conn, tn, b, "timeout")
        .await
        .unwrap();
    assert_eq!(s.status, StepStatus::Failed);
    assert_eq!(s.error.as_deref(), Some("timeout"));
    let s = execution_steps::retry(&mut conn, tn, b).await.unwrap();
    assert_eq!((s.status, s.attempts), (StepStatus::Pending, 1));
    assert!(s.finished_at.is_none());
    let s = execution_steps::start(&mut conn, tn, b, None)
        .await
        .unwrap();
    assert_eq!(s.attempts, 2);
    assert!(s.error.is_none(), "a new attempt clears the last error");
    let failed = execution_steps::fail(&mut conn, tn, b, "timeout again")
        .await
        .unwrap();
    let err = execution_steps::retry(&mut conn, tn, b).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { constraint, .. } if constraint == "execution_steps_attempts_bounded"),
        "{err:?}"
    );
    assert_eq!(
        execution_steps::find(&mut conn, tn, b).await.unwrap(),
        failed
    );
    // Giving up on it is allowed.
    let s = execution_steps::skip(&mut conn, tn, b).await.unwrap();
    assert_eq!(s.status, StepStatus::Skipped);

    let s = execution_steps::skip(&mut conn, tn, c).await.unwrap();
    assert_eq!(s.status, StepStatus::Skipped);
    assert!(s.finished_at.is_some());

    let err = execution_steps::start(&mut conn, tn, database::ExecutionStepId::new(), None)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::NotFound {
            entity: "execution step"
        }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_illegal_step_transition_is_refused_and_writes_nothing() {
    use StepStatus::*;
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let wf = workflow(&mut conn, tn).await;
    let (mut legal, mut refused) = (0, 0);
    for &from in StepStatus::ALL {
        for &to in StepStatus::ALL {
            let run = executions::start(&mut conn, tn, wf, &StartExecution::default())
                .await
                .unwrap();
            claim(&mut conn, tn, run.execution.id).await;
            let id = run.steps[0].id;
            // Reach `from` by legal moves.
            match from {
                Pending => {}
                Skipped => {
                    execution_steps::skip(&mut conn, tn, id).await.unwrap();
                }
                _ => {
                    execution_steps::start(&mut conn, tn, id, None)
                        .await
                        .unwrap();
                    if from == Completed {
                        execution_steps::finish(&mut conn, tn, id, &json!(1), None)
                            .await
                            .unwrap();
                    } else if from == Failed {
                        execution_steps::fail(&mut conn, tn, id, "x").await.unwrap();
                    }
                }
            }
            let before = execution_steps::find(&mut conn, tn, id).await.unwrap();
            assert_eq!(before.status, from);
            let result = match to {
                Pending => execution_steps::retry(&mut conn, tn, id).await,
                Running => execution_steps::start(&mut conn, tn, id, None).await,
                Completed => execution_steps::finish(&mut conn, tn, id, &json!(1), None).await,
                Failed => execution_steps::fail(&mut conn, tn, id, "x").await,
                Skipped => execution_steps::skip(&mut conn, tn, id).await,
            };
            match result {
                Ok(after) => {
                    assert!(from.can_become(to), "{from} -> {to} was allowed");
                    assert_eq!(after.status, to);
                    legal += 1;
                }
                Err(Error::IllegalTransition { from: f, to: tt }) => {
                    assert!(!from.can_become(to), "{from} -> {to} was refused");
                    assert_eq!((f.as_str(), tt.as_str()), (from.as_str(), to.as_str()));
                    let after = execution_steps::find(&mut conn, tn, id).await.unwrap();
                    assert_eq!(after, before, "{from} -> {to} wrote something");
                    refused += 1;
                }
                Err(e) => panic!("{from} -> {to}: {e:?}"),
            }
        }
    }
    assert_eq!(legal, StepStatus::TRANSITIONS.len());
    assert_eq!(refused, 25 - StepStatus::TRANSITIONS.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn steps_move_only_while_their_execution_runs_and_close_with_it() {
    use database::workflows::execution_steps::EXECUTION_NOT_RUNNING;
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let wf = workflow(&mut conn, tn).await;
    let not_running = |r: Result<_, Error>| match r {
        Err(Error::Conflict { constraint, .. }) => constraint == EXECUTION_NOT_RUNNING,
        other => panic!(
            "expected {EXECUTION_NOT_RUNNING}, got {:?}",
            other.map(|_: database::workflows::ExecutionStep| ())
        ),
    };

    // Never claimed: nothing moves.
    let run = executions::start(&mut conn, tn, wf, &StartExecution::default())
        .await
        .unwrap();
    let a = run.steps[0].id;
    assert!(not_running(
        execution_steps::start(&mut conn, tn, a, None).await
    ));
    assert!(not_running(execution_steps::skip(&mut conn, tn, a).await));

    // Running: a starts; paused: a can't finish; resumed: it can.
    claim(&mut conn, tn, run.execution.id).await;
    execution_steps::start(&mut conn, tn, a, None)
        .await
        .unwrap();
    executions::pause(&mut conn, tn, run.execution.id)
        .await
        .unwrap();
    assert!(not_running(
        execution_steps::finish(&mut conn, tn, a, &json!(1), None).await
    ));
    executions::resume(&mut conn, tn, run.execution.id)
        .await
        .unwrap();
    execution_steps::start(&mut conn, tn, run.steps[1].id, None)
        .await
        .unwrap();

    // Cancelled: the open steps (b running, c pending) are closed with it,
    // the finished ones keep their record, and nothing moves any more.
    execution_steps::finish(&mut conn, tn, a, &json!(1), None)
        .await
        .unwrap();
    executions::cancel(&mut conn, tn, run.execution.id)
        .await
        .unwrap();
    let steps = execution_steps::list_for_execution(&mut conn, tn, run.execution.id)
        .await
        .unwrap();
    let statuses: Vec<StepStatus> = steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![
            StepStatus::Completed,
            StepStatus::Skipped,
            StepStatus::Skipped
        ]
    );
    assert!(steps.iter().all(|s| s.finished_at.is_some()));
    assert!(not_running(
        execution_steps::finish(&mut conn, tn, run.steps[1].id, &json!(1), None).await
    ));
    assert!(not_running(
        execution_steps::retry(&mut conn, tn, run.steps[2].id).await
    ));

    // Completed and failed executions close their steps too.
    for complete in [true, false] {
        let run = executions::start(&mut conn, tn, wf, &StartExecution::default())
            .await
            .unwrap();
        claim(&mut conn, tn, run.execution.id).await;
        if complete {
            executions::complete(&mut conn, tn, run.execution.id, &json!({}))
                .await
                .unwrap();
        } else {
            executions::fail(&mut conn, tn, run.execution.id, "boom")
                .await
                .unwrap();
        }
        let steps = execution_steps::list_for_execution(&mut conn, tn, run.execution.id)
            .await
            .unwrap();
        assert!(steps.iter().all(|s| s.status == StepStatus::Skipped));
        assert!(not_running(
            execution_steps::start(&mut conn, tn, run.steps[0].id, None).await
        ));
    }
}

/// A JSON value nested `depth` levels deep.
fn nested(depth: usize) -> serde_json::Value {
    (1..depth).fold(json!({}), |v, _| json!({ "a": v }))
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_unreadable_or_unstorable_is_committed() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let tn = tenant(&mut conn, "acme").await;
    let with_data = |data: serde_json::Value| {
        new_workflow(
            "deep",
            WorkflowGraph {
                nodes: vec![GraphNode { data, ..node("a") }],
                edges: vec![],
            },
        )
    };
    // Too deep to read back (serde_json stops at 128), a NUL PostgreSQL
    // refuses: both are refused by validation, naming the field.
    for data in [
        nested(130),
        nested(65),
        json!({"k": "a\u{0}b"}),
        json!({"a\u{0}": 1}),
    ] {
        let err = workflows::create(&mut conn, tn, None, &with_data(data))
            .await
            .unwrap_err();
        assert_eq!(err.invalid_fields(), vec!["graph.nodes[0].data"], "{err}");
    }
    // Over 1 MiB in all.
    let big = json!({ "blob": "x".repeat(1024 * 1024) });
    let err = workflows::create(&mut conn, tn, None, &with_data(big))
        .await
        .unwrap_err();
    assert!(err.invalid_fields().contains(&"graph"), "{err}");
    // Bad text: NUL, control characters, whitespace-only names.
    for name in ["a\u{0}b", "   ", "line\nbreak", "bell\u{7}"] {
        let err = workflows::create(&mut conn, tn, None, &new_workflow(name, chain()))
            .await
            .unwrap_err();
        assert_eq!(err.invalid_fields(), vec!["name"], "{name:?}");
    }
    let err = workflows::create(
        &mut conn,
        tn,
        None,
        &NewWorkflow {
            description: Some("nul \u{0} inside".into()),
            ..new_workflow("x", chain())
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["description"]);
    // Counts are told in their own unit.
    let many = WorkflowGraph {
        nodes: (0..1001).map(|i| node(&format!("n{i}"))).collect(),
        edges: vec![],
    };
    let err = workflows::create(&mut conn, tn, None, &new_workflow("many", many))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most 1000 nodes"), "{err}");
    assert_eq!(t.count("workflows").await, 0);

    // Parameters are checked too: a step's output, an execution's error.
    let wf = workflow(&mut conn, tn).await;
    let run = executions::start(&mut conn, tn, wf, &StartExecution::default())
        .await
        .unwrap();
    claim(&mut conn, tn, run.execution.id).await;
    let step = run.steps[0].id;
    execution_steps::start(&mut conn, tn, step, None)
        .await
        .unwrap();
    let err = execution_steps::finish(&mut conn, tn, step, &nested(200), None)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["output"]);
    let err = executions::fail(&mut conn, tn, run.execution.id, "nul \u{0}")
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["error"]);

    // Whatever is accepted reads back: the deepest allowed value, in a graph.
    let deepest = workflows::create(&mut conn, tn, None, &with_data(nested(64)))
        .await
        .unwrap();
    let found = workflows::find(&mut conn, tn, deepest.id).await.unwrap();
    assert_eq!(found.graph().unwrap().nodes[0].data, nested(64));
    assert_eq!(
        users::find_by_email(&mut conn, "a\u{0}@example.com")
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string(),
        "user not found"
    );
}
