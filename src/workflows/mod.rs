//! The workflow engine: workflow definitions, their executions
//! and the steps of each execution. Tables created in
//! `migrations/2026-11-21-131000_create_workflows`.

pub mod execution_steps;
pub mod executions;
// One table, one file: the `workflows` table lives in workflows/workflows.rs.
#[allow(clippy::module_inception)]
pub mod workflows;

pub use execution_steps::{ExecutionStep, StepStatus};
pub use executions::{Execution, ExecutionFilter, ExecutionStatus, StartExecution};
pub use workflows::{
    ExecutionWithSteps, GraphEdge, GraphNode, NewWorkflow, Workflow, WorkflowGraph, WorkflowPatch,
    WorkflowWithExecutions,
};
