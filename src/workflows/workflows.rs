//! `workflows`: a tenant's workflow definitions, a graph of nodes and edges,
//! changed under optimistic concurrency (`version`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use validator::Validate;

use crate::error::{FieldError, InvalidInput, validate};
use crate::functions::any;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::render_once::RenderOnceDsl;
use crate::schema::{execution_steps, executions, workflows};
use crate::workflows::execution_steps::ExecutionStep;
use crate::workflows::executions::Execution;
use crate::{Conn, Error, ExecutionId, InlineLimitDsl, Result, TenantId, UserId, WorkflowId};

/// A row of `workflows`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = workflows, check_for_backend(diesel::pg::Pg))]
pub struct Workflow {
    /// Primary key.
    pub id: WorkflowId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Who wrote it (cleared when that user is deleted).
    pub owner_id: Option<UserId>,
    /// Display name, 1 to 200 characters.
    pub name: String,
    /// Free text, at most 2000 characters.
    pub description: Option<String>,
    /// The graph's nodes, as stored (a JSON array of `GraphNode`).
    pub nodes: Value,
    /// The graph's edges, as stored (a JSON array of `GraphEdge`).
    pub edges: Value,
    /// Optimistic-concurrency version: 1 on creation, +1 per update.
    pub version: i64,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

impl Workflow {
    /// The graph as typed nodes and edges.
    pub fn graph(&self) -> Result<WorkflowGraph> {
        let parse = |e: serde_json::Error| {
            Error::invalid("graph", "json", format!("stored graph is malformed: {e}"))
        };
        Ok(WorkflowGraph {
            nodes: serde_json::from_value(self.nodes.clone()).map_err(parse)?,
            edges: serde_json::from_value(self.edges.clone()).map_err(parse)?,
        })
    }
}

/// A node of a workflow graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Validate)]
#[validate(schema(function = "data_json", skip_on_field_errors = false))]
pub struct GraphNode {
    /// The node's id, unique in its graph, 1 to 100 characters.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub id: String,
    /// What the node does (`start`, `http`, ...), 1 to 64 characters.
    #[serde(rename = "type")]
    #[validate(length(min = 1, max = 64), custom(function = "crate::input::line"))]
    pub node_type: String,
    /// The node's settings (see `crate::input::json`).
    #[serde(default)]
    pub data: Value,
}

fn data_json(node: &GraphNode) -> Result<(), validator::ValidationError> {
    crate::input::json_field("data", &node.data, crate::input::Shape::Any)
}

/// A directed edge between two nodes of the same graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Validate)]
pub struct GraphEdge {
    /// The node the edge leaves.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub source: String,
    /// The node the edge enters.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub target: String,
}

/// A workflow's graph: nodes and the edges between them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Validate)]
pub struct WorkflowGraph {
    /// At most 1000 nodes.
    #[validate(length(max = 1000, message = "must have at most 1000 nodes"), nested)]
    pub nodes: Vec<GraphNode>,
    /// At most 5000 edges, each between known nodes.
    #[validate(length(max = 5000, message = "must have at most 5000 edges"), nested)]
    pub edges: Vec<GraphEdge>,
}

impl WorkflowGraph {
    /// The rules a derive can't express: node ids are unique and every edge
    /// joins two nodes of this graph. Field names are prefixed with `prefix`.
    fn reference_errors(&self, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !seen.insert(node.id.as_str()) {
                errors.push(FieldError {
                    field: format!("{prefix}.nodes[{i}].id"),
                    code: "unique".into(),
                    message: format!("node id {:?} appears twice", node.id),
                });
            }
        }
        for (i, edge) in self.edges.iter().enumerate() {
            for (end, id) in [("source", &edge.source), ("target", &edge.target)] {
                if !seen.contains(id.as_str()) {
                    errors.push(FieldError {
                        field: format!("{prefix}.edges[{i}].{end}"),
                        code: "unknown_node".into(),
                        message: format!("no node has id {id:?}"),
                    });
                }
            }
        }
        errors
    }

    pub(crate) fn to_json(&self) -> (Value, Value) {
        (
            serde_json::to_value(&self.nodes).expect("nodes serialise"),
            serde_json::to_value(&self.edges).expect("edges serialise"),
        )
    }
}

/// Runs the derive's rules and the graph's reference rules together, so the
/// caller hears about every bad field at once.
pub(crate) fn validate_with_graph<T: Validate>(
    input: &T,
    graph: Option<&WorkflowGraph>,
) -> Result<()> {
    let mut fields = match validate(input) {
        Ok(()) => Vec::new(),
        Err(Error::Invalid(invalid)) => invalid.fields,
        Err(other) => return Err(other),
    };
    if let Some(graph) = graph {
        fields.extend(graph.reference_errors("graph"));
        let bytes = crate::input::size_unless_too_deep(&fields, || crate::input::json_size(graph));
        if bytes > crate::input::MAX_JSON_BYTES {
            fields.push(FieldError {
                field: "graph".into(),
                code: "size".into(),
                message: format!(
                    "must be at most {} bytes of JSON (is {bytes})",
                    crate::input::MAX_JSON_BYTES
                ),
            });
        }
    }
    if fields.is_empty() {
        return Ok(());
    }
    fields.sort_by(|a, b| a.field.cmp(&b.field));
    Err(Error::Invalid(InvalidInput { fields }))
}

/// A page of the tenant's workflows, newest first, after `after`
/// (`workflows_tenant_created_idx`). The graphs are in the rows: a list of
/// many large workflows is as large as they are.
pub async fn list(
    conn: &mut Conn,
    tenant_id: TenantId,
    after: Option<Cursor<WorkflowId>>,
    limit: i64,
) -> Result<Page<Workflow, WorkflowId>> {
    check_limit(limit)?;
    let mut query = workflows::table
        .filter(workflows::tenant_id.eq(tenant_id))
        .select(Workflow::as_select())
        .order((workflows::created_at.desc(), workflows::id.desc()))
        .into_boxed();
    if let Some(c) = after {
        query = query.filter(workflows::created_at.le(c.created_at)).filter(
            workflows::created_at
                .lt(c.created_at)
                .or(workflows::id.lt(c.id)),
        );
    }
    let rows = query.inline_limit((limit + 1) as u32).load(conn).await?;
    Ok(page_of(rows, limit, |w: &Workflow| Cursor {
        created_at: w.created_at,
        id: w.id,
    }))
}

/// Input of `create`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct NewWorkflow {
    /// 1 to 200 characters.
    #[validate(length(min = 1, max = 200), custom(function = "crate::input::line"))]
    pub name: String,
    /// At most 2000 characters.
    #[validate(length(max = 2000), custom(function = "crate::input::text"))]
    pub description: Option<String>,
    /// The graph; edges must join known nodes.
    #[validate(nested)]
    #[serde(default)]
    pub graph: WorkflowGraph,
}

/// Input of `update`: `None` leaves a field alone.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct WorkflowPatch {
    /// New name, 1 to 200 characters.
    #[validate(length(min = 1, max = 200), custom(function = "crate::input::line"))]
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    #[validate(length(max = 2000), custom(function = "crate::input::text"))]
    pub description: Option<Option<String>>,
    /// New graph, replacing nodes and edges together.
    #[validate(nested)]
    pub graph: Option<WorkflowGraph>,
}

#[derive(Insertable)]
#[diesel(table_name = workflows, treat_none_as_default_value = false)]
pub(crate) struct InsertWorkflow<'a> {
    pub(crate) id: WorkflowId,
    pub(crate) tenant_id: TenantId,
    pub(crate) owner_id: Option<UserId>,
    pub(crate) name: &'a str,
    pub(crate) description: Option<&'a str>,
    pub(crate) nodes: Value,
    pub(crate) edges: Value,
}

#[derive(AsChangeset)]
#[diesel(table_name = workflows)]
struct WorkflowChanges<'a> {
    name: Option<&'a str>,
    description: Option<Option<&'a str>>,
    nodes: Option<Value>,
    edges: Option<Value>,
}

/// Creates a workflow at version 1, authored by `owner_id` (the server's
/// choice: the signed-in user, never a field of the client's input).
/// `NotFound` when the tenant or owner doesn't exist.
pub async fn create(
    conn: &mut Conn,
    tenant_id: TenantId,
    owner_id: Option<UserId>,
    input: &NewWorkflow,
) -> Result<Workflow> {
    validate_with_graph(input, Some(&input.graph))?;
    let (nodes, edges) = input.graph.to_json();
    diesel::insert_into(workflows::table)
        .values(InsertWorkflow {
            id: WorkflowId::new(),
            tenant_id,
            owner_id,
            name: &input.name,
            description: input.description.as_deref(),
            nodes,
            edges,
        })
        .returning(Workflow::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| {
            Error::from(e)
                .not_found_on("workflows_tenant_id_fkey", "tenant")
                .not_found_on("workflows_owner_id_fkey", "user")
        })
}

/// The tenant's workflow with this id.
pub async fn find(conn: &mut Conn, tenant_id: TenantId, id: WorkflowId) -> Result<Workflow> {
    find_shared(conn, tenant_id, id).await
}

/// `find` on a shared reference, so it can be pipelined beside another query.
async fn find_shared(mut conn: &Conn, tenant_id: TenantId, id: WorkflowId) -> Result<Workflow> {
    workflows::table
        .find(id)
        .filter(workflows::tenant_id.eq(tenant_id))
        .select(Workflow::as_select())
        .render_once()
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "workflow" })
}

/// Applies `patch` if the workflow is still at `expected_version`, and moves
/// it to the next version. `Stale` when someone else updated it first,
/// `NotFound` when the tenant has no such workflow.
pub async fn update(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: WorkflowId,
    expected_version: i64,
    patch: &WorkflowPatch,
) -> Result<Workflow> {
    validate_with_graph(patch, patch.graph.as_ref())?;
    let (nodes, edges) = match patch.graph.as_ref().map(WorkflowGraph::to_json) {
        Some((n, e)) => (Some(n), Some(e)),
        None => (None, None),
    };
    let changes = WorkflowChanges {
        name: patch.name.as_deref(),
        description: patch.description.as_ref().map(Option::as_deref),
        nodes,
        edges,
    };
    // The version check and the bump are one guarded UPDATE: of two writers
    // that read the same version, exactly one matches.
    let updated = diesel::update(
        workflows::table
            .find(id)
            .filter(workflows::tenant_id.eq(tenant_id))
            .filter(workflows::version.eq(expected_version)),
    )
    .set((workflows::version.eq(workflows::version + 1), changes))
    .returning(Workflow::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    match updated {
        Some(w) => Ok(w),
        None => {
            find(conn, tenant_id, id).await?;
            Err(Error::Stale {
                entity: "workflow",
                expected: expected_version,
            })
        }
    }
}

/// Deletes a workflow with its executions and their steps.
pub async fn delete(conn: &mut Conn, tenant_id: TenantId, id: WorkflowId) -> Result<()> {
    let deleted = diesel::delete(
        workflows::table
            .find(id)
            .filter(workflows::tenant_id.eq(tenant_id)),
    )
    .execute(conn)
    .await?;
    match deleted {
        0 => Err(Error::NotFound { entity: "workflow" }),
        _ => Ok(()),
    }
}

/// A workflow with its most recent executions, each with all its steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowWithExecutions {
    /// The workflow.
    pub workflow: Workflow,
    /// Its most recent executions, newest first.
    pub executions: Vec<ExecutionWithSteps>,
}

/// An execution with its steps in graph order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionWithSteps {
    /// The execution.
    pub execution: Execution,
    /// Its steps, in the graph's node order.
    pub steps: Vec<ExecutionStep>,
}

/// How many executions `find_with_recent_executions` returns by default.
pub const RECENT_EXECUTIONS: i64 = 10;

/// A workflow, its `limit` (1 to 100) most recent executions and all their
/// steps, in three queries whatever the sizes: the workflow, the executions,
/// and every step of those executions at once (no query per execution).
pub async fn find_with_recent_executions(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: WorkflowId,
    limit: i64,
) -> Result<WorkflowWithExecutions> {
    if !(1..=100).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            "range",
            "must be between 1 and 100",
        ));
    }
    // The workflow and its executions are independent queries: both are sent
    // at once, pipelined on this connection. The steps then follow by the
    // executions' ids, so they always belong to exactly the executions listed.
    let mut for_executions = &*conn;
    let recent = executions::table
        .filter(executions::workflow_id.eq(id))
        .filter(executions::tenant_id.eq(tenant_id))
        .order((executions::created_at.desc(), executions::id.desc()))
        .select(Execution::as_select())
        // Validated to 1..=100 above; literal so the plan is reused.
        .inline_limit(limit as u32)
        .load::<Execution>(&mut for_executions);
    let (workflow, recent) = tokio::join!(find_shared(conn, tenant_id, id), recent);
    let workflow = workflow?;
    let recent = recent?;
    let ids: Vec<ExecutionId> = recent.iter().map(|e| e.id).collect();
    let steps: Vec<ExecutionStep> = execution_steps::table
        .filter(execution_steps::execution_id.eq(any(&ids)))
        .order((
            execution_steps::execution_id,
            execution_steps::position,
            execution_steps::id,
        ))
        .select(ExecutionStep::as_select())
        .render_once()
        .load(conn)
        .await?;
    let mut by_execution: HashMap<ExecutionId, Vec<ExecutionStep>> = HashMap::new();
    for step in steps {
        by_execution
            .entry(step.execution_id)
            .or_default()
            .push(step);
    }
    let executions = recent
        .into_iter()
        .map(|execution| ExecutionWithSteps {
            steps: by_execution.remove(&execution.id).unwrap_or_default(),
            execution,
        })
        .collect();
    Ok(WorkflowWithExecutions {
        workflow,
        executions,
    })
}
