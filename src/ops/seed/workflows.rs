//! The workflows domain: workflows with their graphs, executions in every
//! status, and steps that agree with their execution's status and times.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};

use super::generator::{WORKFLOW_NAMES, at, pick, tag};
use super::{Seeder, fill};
use crate::Result;
use crate::error::validate;
use crate::schema::{execution_steps, executions, workflows};
use crate::workflows::execution_steps::InsertStep;
use crate::workflows::executions::{InsertExecution, StartExecution};
use crate::workflows::workflows::{
    GraphEdge, GraphNode, InsertWorkflow, NewWorkflow, WorkflowGraph, validate_with_graph,
};
use crate::workflows::{ExecutionStatus, StepStatus};
use rand::Rng;

/// What an execution's run set: status, result, worker and times.
struct ExecutionLife {
    version: i64,
    status: ExecutionStatus,
    output: Option<Value>,
    error: Option<&'static str>,
    worker_id: Option<String>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// What a step's run set.
struct StepLife {
    status: StepStatus,
    input: Option<Value>,
    output: Option<Value>,
    validation: Option<Value>,
    attempts: i32,
    error: Option<&'static str>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub(super) async fn seed(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let p = g.plan;

    fill!(
        s,
        workflows,
        p.workflows(),
        |w: u64, rows: &mut Vec<(u64, NewWorkflow, (Value, Value), crate::UserId)>| {
            let t = w / p.workflows_per_tenant;
            let mut rng = g.rng(tag("workflows"), w);
            let shape = g.shape(w);
            let graph = WorkflowGraph {
                nodes: shape
                    .nodes
                    .iter()
                    .map(|(id, kind)| GraphNode {
                        id: id.clone(),
                        node_type: (*kind).to_owned(),
                        data: json!({"label": id}),
                    })
                    .collect(),
                edges: shape
                    .nodes
                    .windows(2)
                    .map(|pair| GraphEdge {
                        source: pair[0].0.clone(),
                        target: pair[1].0.clone(),
                    })
                    .collect(),
            };
            let owner = g.user_id(g.member(t, rng.random_range(0..3)));
            let workflow = NewWorkflow {
                name: pick(&mut rng, WORKFLOW_NAMES).to_owned(),
                description: Some(format!(
                    "{} steps, edited {} times",
                    shape.nodes.len(),
                    shape.version - 1
                )),
                graph,
            };
            validate_with_graph(&workflow, Some(&workflow.graph)).expect("a valid workflow");
            let json = workflow.graph.to_json();
            rows.push((w, workflow, json, owner));
        },
        |(w, workflow, (nodes, edges), owner): &(
            u64,
            NewWorkflow,
            (Value, Value),
            crate::UserId,
        )| {
            let shape_version = g.shape(*w).version;
            let created = at(g.workflow_created(*w));
            (
                InsertWorkflow {
                    id: g.id(tag("workflows"), *w).into(),
                    tenant_id: g.tenant_id(w / p.workflows_per_tenant),
                    owner_id: Some(*owner),
                    name: &workflow.name,
                    description: workflow.description.as_deref(),
                    nodes: nodes.clone(),
                    edges: edges.clone(),
                },
                (
                    workflows::version.eq(shape_version),
                    workflows::created_at.eq(created),
                    workflows::updated_at.eq(created + chrono::Duration::hours(shape_version - 1)),
                ),
            )
        }
    );

    fill!(
        s,
        executions,
        p.executions(),
        |e: u64, rows: &mut Vec<(u64, StartExecution, ExecutionLife)>| {
            let run = g.run(e);
            let t = run.workflow / p.workflows_per_tenant;
            let mut rng = g.rng(tag("executions.extra"), e);
            use ExecutionStatus::*;
            let last = run.finished.or(run.started).unwrap_or(run.created);
            let start = StartExecution {
                user_id: Some(g.user_id(g.member(t, rng.random_range(0..p.members_per_tenant)))),
                ..StartExecution::default()
            };
            let version = rng.random_range(1..=g.shape(run.workflow).version);
            let start = StartExecution {
                input: json!({
                    "trigger": pick(&mut rng, &["manual", "schedule", "webhook"]),
                    "run": e,
                }),
                ..start
            };
            validate(&start).expect("a valid execution");
            let life = ExecutionLife {
                version,
                status: run.status,
                output: (run.status == Completed)
                    .then(|| json!({"ok": true, "items": rng.random_range(0..500)})),
                error: (run.status == Failed)
                    .then_some("step failed after 3 attempts: upstream returned 502"),
                worker_id: run
                    .started
                    .map(|_| format!("worker-{}", rng.random_range(1..9))),
                started_at: run.started.map(at),
                finished_at: run.finished.map(at),
                created_at: at(run.created),
                updated_at: at(last),
            };
            rows.push((e, start, life));
        },
        |(e, start, life): &(u64, StartExecution, ExecutionLife)| {
            let w = e / p.executions_per_workflow;
            (
                InsertExecution {
                    id: g.id(tag("executions"), *e).into(),
                    tenant_id: g.tenant_id(w / p.workflows_per_tenant),
                    workflow_id: g.id(tag("workflows"), w).into(),
                    user_id: start.user_id,
                    workflow_version: life.version,
                    input: &start.input,
                },
                (
                    executions::status.eq(life.status),
                    executions::output.eq(life.output.as_ref()),
                    executions::error.eq(life.error),
                    executions::worker_id.eq(life.worker_id.as_deref()),
                    executions::started_at.eq(life.started_at),
                    executions::finished_at.eq(life.finished_at),
                    executions::created_at.eq(life.created_at),
                    executions::updated_at.eq(life.updated_at),
                ),
            )
        }
    );

    fill!(
        s,
        execution_steps,
        p.executions(),
        |e: u64, rows: &mut Vec<(u64, usize, String, StepLife)>| {
            let run = g.run(e);
            let shape = g.shape(run.workflow);
            let mut rng = g.rng(tag("execution_steps"), e);
            let n = shape.nodes.len();
            // Step k of a started execution runs in the k-th slice of its window.
            let window_start = run.started.unwrap_or(run.created);
            let window_end = run.finished.unwrap_or(window_start + 60 * n as i64);
            let slice = ((window_end - window_start) / n as i64).max(1);
            for (k, (node_id, kind)) in shape.nodes.iter().enumerate() {
                use StepStatus::*;
                let status = match run.status {
                    ExecutionStatus::Completed => {
                        if k > 0 && *kind == "condition" && rng.random_bool(0.3) {
                            Skipped
                        } else {
                            Completed
                        }
                    }
                    ExecutionStatus::Pending => Pending,
                    ExecutionStatus::Running if k == run.reached => Running,
                    ExecutionStatus::Failed if k == run.reached => Failed,
                    _ if k < run.reached => Completed,
                    ExecutionStatus::Failed | ExecutionStatus::Cancelled => Skipped,
                    _ => Pending,
                };
                let from = window_start + slice * k as i64;
                let (started, finished) = match status {
                    Completed | Failed => {
                        (Some(from), Some(from + slice.min(rng.random_range(1..60))))
                    }
                    Running => (Some(from), None),
                    _ => (None, None),
                };
                let attempts = match status {
                    Completed => {
                        if rng.random_bool(0.1) {
                            2
                        } else {
                            1
                        }
                    }
                    Failed => 3,
                    Running => 1,
                    _ => 0,
                };
                let stamp = finished.or(started).unwrap_or(run.created);
                let from_node = if k == 0 {
                    "trigger"
                } else {
                    shape.nodes[k - 1].0.as_str()
                };
                let life = StepLife {
                    status,
                    input: started.map(|_| json!({ "from": from_node })),
                    output: (status == Completed)
                        .then(|| json!({"status": 200, "ms": rng.random_range(5..900)})),
                    validation: (status == Completed && *kind == "llm")
                        .then(|| json!({"schema": "ok"})),
                    attempts,
                    error: (status == Failed).then_some("upstream returned 502 Bad Gateway"),
                    started_at: started.map(at),
                    finished_at: finished.map(at),
                    created_at: at(run.created),
                    updated_at: at(stamp),
                };
                rows.push((e, k, node_id.clone(), life));
            }
        },
        |(e, k, node_id, life): &(u64, usize, String, StepLife)| {
            (
                InsertStep {
                    id: g.id(tag("execution_steps"), e * 8 + *k as u64).into(),
                    execution_id: g.id(tag("executions"), *e).into(),
                    node_id,
                    position: *k as i32,
                    max_attempts: 3,
                },
                (
                    execution_steps::status.eq(life.status),
                    execution_steps::input.eq(life.input.as_ref()),
                    execution_steps::output.eq(life.output.as_ref()),
                    execution_steps::validation.eq(life.validation.as_ref()),
                    execution_steps::attempts.eq(life.attempts),
                    execution_steps::error.eq(life.error),
                    execution_steps::started_at.eq(life.started_at),
                    execution_steps::finished_at.eq(life.finished_at),
                    execution_steps::created_at.eq(life.created_at),
                    execution_steps::updated_at.eq(life.updated_at),
                ),
            )
        }
    );
    Ok(())
}
