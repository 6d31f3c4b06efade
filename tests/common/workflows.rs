//! Workflow fixtures shared by `tests/workflows.rs` and `tests/execution_steps.rs`.

use database::workflows::{GraphEdge, GraphNode, NewWorkflow, WorkflowGraph, workflows};
use database::{Conn, TenantId, WorkflowId};
use serde_json::json;

/// A task node.
pub fn node(id: &str) -> GraphNode {
    GraphNode {
        id: id.to_owned(),
        node_type: "task".to_owned(),
        data: json!({}),
    }
}

/// An edge from `source` to `target`.
pub fn edge(source: &str, target: &str) -> GraphEdge {
    GraphEdge {
        source: source.to_owned(),
        target: target.to_owned(),
    }
}

/// a -> b -> c
pub fn chain() -> WorkflowGraph {
    WorkflowGraph {
        nodes: vec![node("a"), node("b"), node("c")],
        edges: vec![edge("a", "b"), edge("b", "c")],
    }
}

/// A workflow input with this name and graph.
pub fn new_workflow(name: &str, graph: WorkflowGraph) -> NewWorkflow {
    NewWorkflow {
        name: name.to_owned(),
        graph,
        ..NewWorkflow::default()
    }
}

/// A "Pipeline" workflow (the chain) in `tenant_id`.
pub async fn workflow(conn: &mut Conn, tenant_id: TenantId) -> WorkflowId {
    workflows::create(conn, tenant_id, None, &new_workflow("Pipeline", chain()))
        .await
        .unwrap()
        .id
}
