//! `execution_steps`: one per graph node of an execution, and their state
//! machine. As for executions, every status change is one guarded UPDATE
//! whose allowed sources come from `StepStatus::TRANSITIONS`, and retries are
//! bounded by `max_attempts` in the same statement.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use serde_json::Value;

use crate::render_once::RenderOnceDsl;
use crate::schema::{execution_steps, executions};
use crate::workflows::executions::ExecutionStatus;
use crate::{Conn, Error, ExecutionId, ExecutionStepId, Result, TenantId};

/// The `Conflict { constraint }` of `start` or `retry` of a step that used all its attempts.
pub const ATTEMPTS_EXHAUSTED: &str = "execution_steps_attempts_bounded";

crate::sql_enum! {
    /// Where a step is in its life.
    pub enum StepStatus: crate::schema::sql_types::StepStatus {
        /// Not started (or waiting for a retry).
        Pending => "pending",
        /// A worker runs it.
        Running => "running",
        /// Done (terminal).
        Completed => "completed",
        /// The last attempt failed; may be retried while attempts remain.
        Failed => "failed",
        /// Will not run (terminal).
        Skipped => "skipped",
    }
}

impl StepStatus {
    /// The legal moves, `(from, to)`.
    pub const TRANSITIONS: &'static [(StepStatus, StepStatus)] = {
        use StepStatus::*;
        &[
            (Pending, Running),
            (Pending, Skipped),
            (Running, Completed),
            (Running, Failed),
            // A retry, bounded by max_attempts.
            (Failed, Pending),
            // Give up on a failed step and let the run go on.
            (Failed, Skipped),
        ]
    };

    /// Whether `self -> to` is a legal move.
    pub fn can_become(self, to: StepStatus) -> bool {
        Self::TRANSITIONS.contains(&(self, to))
    }

    /// The statuses from which `to` may be entered.
    pub fn sources(to: StepStatus) -> Vec<StepStatus> {
        Self::TRANSITIONS
            .iter()
            .filter(|(_, t)| *t == to)
            .map(|(f, _)| *f)
            .collect()
    }
}

/// The rule reported (as `Conflict { constraint }`) when a step is moved
/// while its execution is not `running`.
pub const EXECUTION_NOT_RUNNING: &str = "execution_steps_execution_running";

/// A row of `execution_steps`.
#[derive(
    Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Identifiable, Serialize,
)]
#[diesel(table_name = execution_steps, check_for_backend(diesel::pg::Pg))]
pub struct ExecutionStep {
    /// Primary key.
    pub id: ExecutionStepId,
    /// The execution it belongs to.
    pub execution_id: ExecutionId,
    /// The graph node it runs.
    pub node_id: String,
    /// The node's place in the graph's node order.
    pub position: i32,
    /// Where it is in its life.
    pub status: StepStatus,
    /// What the node was given (latest attempt).
    pub input: Option<Value>,
    /// What the node produced.
    pub output: Option<Value>,
    /// What validating the output said.
    pub validation: Option<Value>,
    /// How many times it was started.
    pub attempts: i32,
    /// The most starts allowed.
    pub max_attempts: i32,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it completed, failed or was skipped.
    pub finished_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

/// A new step as `executions::start` writes it: pending, at `position` in
/// its execution's graph order. `start` sends its steps as arrays in one
/// statement (`InsertSteps`); this row type is the same shape, one row, for
/// code that writes steps through Diesel's `Insertable` (the seed).
#[derive(Insertable)]
#[diesel(table_name = execution_steps, treat_none_as_default_value = false)]
pub(crate) struct InsertStep<'a> {
    pub(crate) id: crate::ExecutionStepId,
    pub(crate) execution_id: ExecutionId,
    pub(crate) node_id: &'a str,
    pub(crate) position: i32,
    pub(crate) max_attempts: i32,
}

/// What a step transition writes besides status and attempts.
#[derive(AsChangeset)]
#[diesel(table_name = execution_steps)]
struct StepChanges<'a> {
    status: StepStatus,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<Option<DateTime<Utc>>>,
    input: Option<Option<&'a Value>>,
    output: Option<&'a Value>,
    validation: Option<Option<&'a Value>>,
    error: Option<Option<&'a str>>,
}

impl StepChanges<'_> {
    fn to(status: StepStatus) -> Self {
        StepChanges {
            status,
            started_at: None,
            finished_at: None,
            input: None,
            output: None,
            validation: None,
            error: None,
        }
    }
}

/// The one place a step's status changes: a guarded UPDATE of a step of
/// one of the tenant's *running* executions whose status may become
/// `changes.status`. Starting counts an attempt; a retry (back to pending)
/// needs one left. The execution is read `FOR SHARE`, so a concurrent
/// status change of the execution (which closes its open steps) waits for
/// this move or this move sees its result: a step never moves after its
/// execution stopped. `Conflict { EXECUTION_NOT_RUNNING }` otherwise.
async fn transition(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ExecutionStepId,
    changes: StepChanges<'_>,
) -> Result<ExecutionStep> {
    let to = changes.status;
    let counts_attempt: i32 = (to == StepStatus::Running).into();
    let needs_attempt_left = to == StepStatus::Pending;
    let running_of_tenant = executions::table
        .filter(executions::tenant_id.eq(tenant_id))
        .filter(executions::status.eq(ExecutionStatus::Running))
        .select(executions::id)
        .for_share();
    let changed = diesel::update(
        execution_steps::table
            .find(id)
            .filter(execution_steps::execution_id.eq_any(running_of_tenant))
            .filter(execution_steps::status.eq_any(StepStatus::sources(to)))
            .filter(
                execution_steps::attempts
                    .lt(execution_steps::max_attempts)
                    .or((!needs_attempt_left).into_sql::<Bool>()),
            ),
    )
    .set((
        changes,
        execution_steps::attempts.eq(execution_steps::attempts + counts_attempt),
    ))
    .returning(ExecutionStep::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(step) = changed {
        return Ok(step);
    }
    let current = find(conn, tenant_id, id).await?;
    let execution_status: ExecutionStatus = executions::table
        .find(current.execution_id)
        .select(executions::status)
        .get_result(conn)
        .await?;
    if execution_status != ExecutionStatus::Running {
        return Err(Error::Conflict {
            constraint: EXECUTION_NOT_RUNNING.to_owned(),
            message: format!(
                "step {} cannot move: its execution is {execution_status}",
                current.node_id
            ),
        });
    }
    if current.status.can_become(to) && needs_attempt_left {
        return Err(Error::Conflict {
            constraint: ATTEMPTS_EXHAUSTED.to_owned(),
            message: format!(
                "step {} used all {} attempts",
                current.node_id, current.max_attempts
            ),
        });
    }
    Err(Error::IllegalTransition {
        from: current.status.to_string(),
        to: to.to_string(),
    })
}

/// Closes the open (pending or running) steps of an execution that just
/// reached a terminal status: they become `skipped`, in the caller's
/// transaction. Failed and finished steps keep their record.
pub(crate) async fn close_open_steps(conn: &mut Conn, execution_id: ExecutionId) -> Result<usize> {
    Ok(diesel::update(
        execution_steps::table
            .filter(execution_steps::execution_id.eq(execution_id))
            .filter(execution_steps::status.eq_any([StepStatus::Pending, StepStatus::Running])),
    )
    .set((
        execution_steps::status.eq(StepStatus::Skipped),
        execution_steps::finished_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?)
}

/// The step with this id, if it belongs to one of the tenant's executions.
pub async fn find(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ExecutionStepId,
) -> Result<ExecutionStep> {
    execution_steps::table
        .inner_join(executions::table)
        .filter(execution_steps::id.eq(id))
        .filter(executions::tenant_id.eq(tenant_id))
        .select(ExecutionStep::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound {
            entity: "execution step",
        })
}

/// The steps of the tenant's execution, in graph order.
pub async fn list_for_execution(
    conn: &mut Conn,
    tenant_id: TenantId,
    execution_id: ExecutionId,
) -> Result<Vec<ExecutionStep>> {
    Ok(execution_steps::table
        .inner_join(executions::table)
        .filter(execution_steps::execution_id.eq(execution_id))
        .filter(executions::tenant_id.eq(tenant_id))
        .order(execution_steps::position)
        .select(ExecutionStep::as_select())
        .load(conn)
        .await?)
}

/// pending -> running: counts an attempt, records the input.
pub async fn start(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ExecutionStepId,
    input: Option<&Value>,
) -> Result<ExecutionStep> {
    if let Some(input) = input {
        crate::input::check_json("input", input)?;
    }
    let changes = StepChanges {
        started_at: Some(Utc::now()),
        finished_at: Some(None),
        input: Some(input),
        error: Some(None),
        ..StepChanges::to(StepStatus::Running)
    };
    transition(conn, tenant_id, id, changes).await
}

/// running -> completed, with the output and what validating it said.
pub async fn finish(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ExecutionStepId,
    output: &Value,
    validation: Option<&Value>,
) -> Result<ExecutionStep> {
    crate::input::check_json("output", output)?;
    if let Some(validation) = validation {
        crate::input::check_json("validation", validation)?;
    }
    let changes = StepChanges {
        finished_at: Some(Some(Utc::now())),
        output: Some(output),
        validation: Some(validation),
        ..StepChanges::to(StepStatus::Completed)
    };
    transition(conn, tenant_id, id, changes).await
}

/// running -> failed, with why (1 to 10000 characters).
pub async fn fail(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ExecutionStepId,
    error: &str,
) -> Result<ExecutionStep> {
    crate::input::check_text("error", error, 1, 10_000)?;
    let changes = StepChanges {
        finished_at: Some(Some(Utc::now())),
        error: Some(Some(error)),
        ..StepChanges::to(StepStatus::Failed)
    };
    transition(conn, tenant_id, id, changes).await
}

/// pending or failed -> skipped.
pub async fn skip(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ExecutionStepId,
) -> Result<ExecutionStep> {
    let changes = StepChanges {
        finished_at: Some(Some(Utc::now())),
        ..StepChanges::to(StepStatus::Skipped)
    };
    transition(conn, tenant_id, id, changes).await
}

/// failed -> pending, while attempts remain; otherwise `Conflict` on
/// `execution_steps_attempts_bounded` and nothing changes.
pub async fn retry(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ExecutionStepId,
) -> Result<ExecutionStep> {
    let changes = StepChanges {
        finished_at: Some(None),
        ..StepChanges::to(StepStatus::Pending)
    };
    transition(conn, tenant_id, id, changes).await
}
