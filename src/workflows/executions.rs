//! `executions`: runs of a workflow, and their state machine.
//!
//! Every status change of a known execution goes through `transition`, one
//! guarded UPDATE (`WHERE id = $1 AND status = ANY($sources)`), where
//! `$sources` comes from the one table of legal moves,
//! `ExecutionStatus::TRANSITIONS`. Of two concurrent changes only one can
//! match; the other is refused. The claim (`claim_next`), which picks its
//! execution, is one UPDATE of its own whose subquery only sees pending ones.
//!
//! One file, though long: one table (the crate's rule), whose state machine
//! reads as one piece: the table of legal moves, the guarded UPDATE every
//! move goes through, the claim of pending runs, and the function for each
//! move.

use chrono::{DateTime, Utc};
use diesel::dsl::AsSelect;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use validator::Validate;

use crate::error::validate;
use crate::functions::coalesce;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::render_once::RenderOnceDsl;
use crate::schema::{execution_steps, executions, workflows};
use crate::workflows::execution_steps::ExecutionStep;
use crate::workflows::workflows::ExecutionWithSteps;
use crate::{
    CachedExt, Conn, Error, ExecutionId, ExecutionStepId, FixedSqlExt, InlineLimitDsl, JsonbOf,
    Result, TenantId, UserId, WorkflowId,
};

crate::sql_enum! {
    /// Where an execution is in its life.
    pub enum ExecutionStatus: crate::schema::sql_types::ExecutionStatus {
        /// Waiting for a worker to claim it.
        Pending => "pending",
        /// A worker runs it.
        Running => "running",
        /// Stopped on purpose; may resume.
        Paused => "paused",
        /// Finished successfully (terminal).
        Completed => "completed",
        /// Finished with an error (terminal).
        Failed => "failed",
        /// Stopped for good before finishing (terminal).
        Cancelled => "cancelled",
    }
}

impl ExecutionStatus {
    /// The legal moves, `(from, to)`. Nothing leaves a terminal status.
    pub const TRANSITIONS: &'static [(ExecutionStatus, ExecutionStatus)] = {
        use ExecutionStatus::*;
        &[
            (Pending, Running),
            (Pending, Cancelled),
            (Running, Paused),
            (Running, Completed),
            (Running, Failed),
            (Running, Cancelled),
            (Paused, Running),
            (Paused, Cancelled),
        ]
    };

    /// Whether `self -> to` is a legal move.
    pub fn can_become(self, to: ExecutionStatus) -> bool {
        Self::TRANSITIONS.contains(&(self, to))
    }

    /// The statuses from which `to` may be entered.
    pub fn sources(to: ExecutionStatus) -> Vec<ExecutionStatus> {
        Self::TRANSITIONS
            .iter()
            .filter(|(_, t)| *t == to)
            .map(|(f, _)| *f)
            .collect()
    }

    /// Completed, failed or cancelled: no move leaves it.
    pub fn is_terminal(self) -> bool {
        !Self::TRANSITIONS.iter().any(|(f, _)| *f == self)
    }
}

/// A row of `executions`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = executions, check_for_backend(diesel::pg::Pg))]
pub struct Execution {
    /// Primary key.
    pub id: ExecutionId,
    /// The owning tenant (the workflow's).
    pub tenant_id: TenantId,
    /// The workflow being run.
    pub workflow_id: WorkflowId,
    /// Who started it.
    pub user_id: Option<UserId>,
    /// The workflow version its steps were made from.
    pub workflow_version: i64,
    /// Where it is in its life.
    pub status: ExecutionStatus,
    /// The input it was started with.
    pub input: Value,
    /// The result, once completed.
    pub output: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The worker that claimed it.
    pub worker_id: Option<String>,
    /// When it first ran (set by pending -> running).
    pub started_at: Option<DateTime<Utc>>,
    /// When it entered a terminal status.
    pub finished_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

/// Input of `start`.
#[derive(Debug, Clone, Deserialize, Validate)]
#[validate(schema(function = "input_json", skip_on_field_errors = false))]
pub struct StartExecution {
    /// Who starts it.
    pub user_id: Option<UserId>,
    /// The execution's input: a JSON object.
    #[serde(default = "empty_object")]
    pub input: Value,
    /// How many times each step may be attempted, 1 to 100.
    #[validate(range(min = 1, max = 100))]
    #[serde(default = "default_max_attempts")]
    pub max_attempts: i32,
}

impl Default for StartExecution {
    fn default() -> Self {
        Self {
            user_id: None,
            input: empty_object(),
            max_attempts: default_max_attempts(),
        }
    }
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn default_max_attempts() -> i32 {
    3
}

fn input_json(start: &StartExecution) -> std::result::Result<(), validator::ValidationError> {
    crate::input::json_field("input", &start.input, crate::input::Shape::Object)
}

#[derive(Insertable)]
#[diesel(table_name = executions, treat_none_as_default_value = false)]
pub(crate) struct InsertExecution<'a> {
    pub(crate) id: ExecutionId,
    pub(crate) tenant_id: TenantId,
    pub(crate) workflow_id: WorkflowId,
    pub(crate) user_id: Option<UserId>,
    pub(crate) workflow_version: i64,
    pub(crate) input: &'a Value,
}

/// `insert_steps`'s statement: `INSERT ... SELECT ... FROM unnest(...)
/// RETURNING <every ExecutionStep column>`. The columns travel as three
/// arrays and two scalars whatever the number of steps, so the statement text
/// is constant: prepared once per connection and cached by this Rust type
/// (a VALUES list would be up to 5,000 parameters, parsed and planned afresh
/// for every run). Written by hand because Diesel cannot insert from a
/// custom `SELECT`; the column names come from the schema, and the returned
/// rows decode by position like any Diesel query. PostgreSQL-specific.
struct InsertSteps<'a> {
    ids: Vec<uuid::Uuid>,
    execution_id: ExecutionId,
    node_ids: &'a [&'a str],
    positions: Vec<i32>,
    max_attempts: i32,
    returning: AsSelect<ExecutionStep, Pg>,
}

impl QueryId for InsertSteps<'_> {
    type QueryId = InsertSteps<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for InsertSteps<'_> {
    type SqlType = <AsSelect<ExecutionStep, Pg> as Expression>::SqlType;
}

impl QueryFragment<Pg> for InsertSteps<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::{Array, Int4, Text, Uuid};
        use execution_steps as s;
        out.push_sql("INSERT INTO ");
        s::table.walk_ast(out.reborrow())?;
        out.push_sql(" (");
        for (i, column) in [s::id::NAME, s::execution_id::NAME, s::node_id::NAME]
            .into_iter()
            .chain([s::position::NAME, s::max_attempts::NAME])
            .enumerate()
        {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_identifier(column)?;
        }
        out.push_sql(") SELECT u.id, ");
        out.push_bind_param::<Uuid, _>(&self.execution_id)?;
        out.push_sql(", u.node_id, u.position, ");
        out.push_bind_param::<Int4, _>(&self.max_attempts)?;
        out.push_sql(" FROM unnest(");
        out.push_bind_param::<Array<Uuid>, _>(&self.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.node_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Int4>, _>(&self.positions)?;
        out.push_sql(") AS u (id, node_id, position) RETURNING ");
        self.returning.walk_ast(out.reborrow())
    }
}

/// Inserts an execution's pending steps, one per node id in graph order,
/// in one statement whatever their number (see `InsertSteps`).
async fn insert_steps(
    conn: &mut Conn,
    execution_id: ExecutionId,
    node_ids: &[&str],
    max_attempts: i32,
) -> Result<Vec<ExecutionStep>> {
    if node_ids.is_empty() {
        return Ok(Vec::new());
    }
    let n = node_ids.len();
    let statement = InsertSteps {
        ids: (0..n).map(|_| ExecutionStepId::new().into_uuid()).collect(),
        execution_id,
        node_ids,
        positions: (0..n as i32).collect(),
        max_attempts,
        returning: ExecutionStep::as_select(),
    };
    Ok(statement.load(conn).await?)
}

/// Starts a run of the tenant's workflow: the execution (pending) and one
/// pending step per graph node, in one transaction.
pub async fn start(
    conn: &mut Conn,
    tenant_id: TenantId,
    workflow_id: WorkflowId,
    input: &StartExecution,
) -> Result<ExecutionWithSteps> {
    validate(input)?;
    conn.transaction(async |conn| {
        // FOR SHARE: the graph can't change between reading it and making
        // the steps. Only the version and the node ids are read: the steps
        // need nothing else, and a large graph's edges and node settings are
        // then never decoded.
        #[derive(Deserialize)]
        struct NodeRef {
            id: String,
        }
        let (version, JsonbOf(nodes)): (i64, JsonbOf<Vec<NodeRef>>) = workflows::table
            .find(workflow_id)
            .filter(workflows::tenant_id.eq(tenant_id))
            .select((workflows::version, workflows::nodes))
            .for_share()
            .get_result(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound { entity: "workflow" })?;
        let execution = diesel::insert_into(executions::table)
            .values(InsertExecution {
                id: ExecutionId::new(),
                tenant_id,
                workflow_id,
                user_id: input.user_id,
                workflow_version: version,
                input: &input.input,
            })
            .returning(Execution::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| Error::from(e).not_found_on("executions_user_id_fkey", "user"))?;
        let node_ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        let mut steps = insert_steps(conn, execution.id, &node_ids, input.max_attempts).await?;
        steps.sort_by_key(|s| s.position);
        Ok(ExecutionWithSteps { execution, steps })
    })
    .await
}

/// The tenant's execution with this id.
pub async fn find(conn: &mut Conn, tenant_id: TenantId, id: ExecutionId) -> Result<Execution> {
    executions::table
        .find(id)
        .filter(executions::tenant_id.eq(tenant_id))
        .select(Execution::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound {
            entity: "execution",
        })
}

/// What a transition writes besides the status.
#[derive(AsChangeset, Default)]
#[diesel(table_name = executions)]
struct Outcome<'a> {
    output: Option<&'a Value>,
    error: Option<&'a str>,
}

/// The one place a known execution's status changes. Moves execution `id`
/// of the tenant to `to` if its current status may become `to`; sets the
/// timestamps the move implies (entering `running` the first time sets
/// `started_at`, entering a terminal status sets `finished_at`). One UPDATE
/// statement. `Ok(None)` when nothing matched. `only_from` narrows the legal
/// sources further: `resume` is paused -> running only, and pending ->
/// running belongs to `claim_next` (the one move that picks its execution).
async fn try_transition(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ExecutionId,
    only_from: Option<ExecutionStatus>,
    to: ExecutionStatus,
    outcome: Outcome<'_>,
) -> Result<Option<Execution>> {
    let mut sources = ExecutionStatus::sources(to);
    if let Some(from) = only_from {
        sources.retain(|s| *s == from);
    }
    let now = Utc::now();
    // coalesce keeps the first start across pause/resume; NULL leaves it alone.
    let started = (to == ExecutionStatus::Running).then_some(now);
    let finished = to.is_terminal().then_some(now);
    // `cached()`: Diesel never reuses an UPDATE's prepared statement on its
    // own; these shapes (one per target status and outcome) are prepared
    // once per connection instead.
    Ok(diesel::update(executions::table)
        .filter(executions::id.eq(id))
        .filter(executions::tenant_id.eq(tenant_id))
        .filter(executions::status.eq_any(sources))
        .set((
            executions::status.eq(to.literal()),
            executions::started_at.eq(coalesce(executions::started_at, started)),
            executions::finished_at.eq(coalesce(executions::finished_at, finished)),
            outcome,
        ))
        .returning(Execution::as_returning())
        .cached()
        .get_result(conn)
        .await
        .optional()?)
}

/// `try_transition` of one execution; `IllegalTransition` (or `NotFound`)
/// when its status may not become `to`, and nothing is written. Entering a
/// terminal status closes the execution's open steps in the same
/// transaction (see `execution_steps::close_open_steps`).
async fn transition(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ExecutionId,
    only_from: Option<ExecutionStatus>,
    to: ExecutionStatus,
    outcome: Outcome<'_>,
) -> Result<Execution> {
    let moved = if to.is_terminal() {
        conn.transaction(async |conn| {
            let moved = try_transition(conn, tenant_id, id, only_from, to, outcome).await?;
            if let Some(execution) = &moved {
                crate::workflows::execution_steps::close_open_steps(conn, execution.id).await?;
            }
            Ok::<_, Error>(moved)
        })
        .await?
    } else {
        try_transition(conn, tenant_id, id, only_from, to, outcome).await?
    };
    if let Some(execution) = moved {
        return Ok(execution);
    }
    let from = find(conn, tenant_id, id).await?.status;
    Err(Error::IllegalTransition {
        from: from.to_string(),
        to: to.to_string(),
    })
}

/// Claims the tenant's oldest pending execution for `worker_id` and marks it
/// running; `None` when nothing is pending. Workers polling at once never
/// get the same execution: the candidate row is locked with
/// `FOR UPDATE SKIP LOCKED` inside the claiming UPDATE, so each worker skips
/// rows others are claiming, and the claim is one statement.
pub async fn claim_next(
    conn: &mut Conn,
    tenant_id: TenantId,
    worker_id: &str,
) -> Result<Option<Execution>> {
    crate::input::check_line("worker_id", worker_id, 1, 200)?;
    // The move of `try_transition`, written for the claim alone so that its
    // SQL text never changes (`.fixed_sql()`): the hot path of every worker.
    // The table of legal moves allows it (`tests::a_claim_is_a_legal_move`).
    let to = ExecutionStatus::Running;
    // The candidate comes from the same table, so it needs an alias to be a
    // subquery rather than a correlated reference. A scalar subquery
    // (`id = (SELECT ...)`) runs once per statement; `id IN (SELECT ...)`
    // may be planned as a join that re-runs it.
    diesel::alias!(executions as candidate: Candidate);
    let next_pending = candidate
        .filter(candidate.field(executions::tenant_id).eq(tenant_id))
        // `= 'pending'`, not `= ANY($n)`: only an equality keeps the index's
        // (created_at, id) order, so the oldest is found without sorting the
        // whole queue.
        .filter(
            candidate
                .field(executions::status)
                .eq(ExecutionStatus::Pending.literal()),
        )
        .order((
            candidate.field(executions::created_at),
            candidate.field(executions::id),
        ))
        .select(candidate.field(executions::id))
        .for_update()
        .skip_locked()
        // A literal LIMIT 1: with a bound one the server re-plans the claim
        // on every call (see `inline_limit`).
        .inline_limit(1)
        .single_value();
    // The candidate is locked and checked (tenant, pending) by the subquery,
    // so the UPDATE itself goes by primary key: a second status filter here
    // would let the planner scan the tenant's whole queue.
    Ok(diesel::update(executions::table)
        .filter(executions::id.nullable().eq(next_pending))
        .set((
            executions::status.eq(to.literal()),
            // A pending execution has not started; coalesce as every move
            // into running does.
            executions::started_at.eq(coalesce(executions::started_at, Some(Utc::now()))),
            executions::worker_id.eq(worker_id),
        ))
        .returning(Execution::as_returning())
        .fixed_sql()
        .get_result(conn)
        .await
        .optional()?)
}

/// running -> completed, with its output.
pub async fn complete(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ExecutionId,
    output: &Value,
) -> Result<Execution> {
    crate::input::check_json("output", output)?;
    let outcome = Outcome {
        output: Some(output),
        ..Outcome::default()
    };
    transition(
        conn,
        tenant_id,
        id,
        None,
        ExecutionStatus::Completed,
        outcome,
    )
    .await
}

/// running -> failed, with why (1 to 10000 characters).
pub async fn fail(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ExecutionId,
    error: &str,
) -> Result<Execution> {
    crate::input::check_text("error", error, 1, 10_000)?;
    let outcome = Outcome {
        error: Some(error),
        ..Outcome::default()
    };
    transition(conn, tenant_id, id, None, ExecutionStatus::Failed, outcome).await
}

/// running -> paused.
pub async fn pause(conn: &mut Conn, tenant_id: TenantId, id: ExecutionId) -> Result<Execution> {
    transition(
        conn,
        tenant_id,
        id,
        None,
        ExecutionStatus::Paused,
        Outcome::default(),
    )
    .await
}

/// paused -> running (keeps the first `started_at`).
pub async fn resume(conn: &mut Conn, tenant_id: TenantId, id: ExecutionId) -> Result<Execution> {
    transition(
        conn,
        tenant_id,
        id,
        Some(ExecutionStatus::Paused),
        ExecutionStatus::Running,
        Outcome::default(),
    )
    .await
}

/// pending, running or paused -> cancelled.
pub async fn cancel(conn: &mut Conn, tenant_id: TenantId, id: ExecutionId) -> Result<Execution> {
    transition(
        conn,
        tenant_id,
        id,
        None,
        ExecutionStatus::Cancelled,
        Outcome::default(),
    )
    .await
}

/// Filters of `list`; every `Some` narrows the result.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct ExecutionFilter {
    /// Only executions in this status.
    pub status: Option<ExecutionStatus>,
    /// Only executions created at or after this instant.
    pub created_from: Option<DateTime<Utc>>,
    /// Only executions created before this instant.
    pub created_before: Option<DateTime<Utc>>,
}

/// A page of the executions of the tenant's workflow, newest first,
/// filtered by status and creation time, after `after` (exclusive).
pub async fn list(
    conn: &mut Conn,
    tenant_id: TenantId,
    workflow_id: WorkflowId,
    filter: &ExecutionFilter,
    after: Option<Cursor<ExecutionId>>,
    limit: i64,
) -> Result<Page<Execution, ExecutionId>> {
    page(conn, tenant_id, Some(workflow_id), filter, after, limit).await
}

/// A page of the tenant's executions of every workflow, newest first, after
/// `after`, matching `filter` (`executions_tenant_created_idx`).
pub async fn list_for_tenant(
    conn: &mut Conn,
    tenant_id: TenantId,
    filter: &ExecutionFilter,
    after: Option<Cursor<ExecutionId>>,
    limit: i64,
) -> Result<Page<Execution, ExecutionId>> {
    page(conn, tenant_id, None, filter, after, limit).await
}

/// `list` (of one workflow) and `list_for_tenant` (of all).
async fn page(
    conn: &mut Conn,
    tenant_id: TenantId,
    workflow_id: Option<WorkflowId>,
    filter: &ExecutionFilter,
    after: Option<Cursor<ExecutionId>>,
    limit: i64,
) -> Result<Page<Execution, ExecutionId>> {
    validate(filter)?;
    check_limit(limit)?;
    if let (Some(from), Some(before)) = (filter.created_from, filter.created_before)
        && from >= before
    {
        return Err(Error::invalid(
            "created_before",
            "range",
            "must be after created_from",
        ));
    }
    let mut query = executions::table
        .filter(executions::tenant_id.eq(tenant_id))
        .select(Execution::as_select())
        .order((executions::created_at.desc(), executions::id.desc()))
        .into_boxed();
    if let Some(workflow_id) = workflow_id {
        query = query.filter(executions::workflow_id.eq(workflow_id));
    }
    if let Some(status) = filter.status {
        query = query.filter(executions::status.eq(status));
    }
    if let Some(from) = filter.created_from {
        query = query.filter(executions::created_at.ge(from));
    }
    if let Some(before) = filter.created_before {
        query = query.filter(executions::created_at.lt(before));
    }
    if let Some(after) = after {
        query = query.filter(
            executions::created_at
                .lt(after.created_at)
                .or(executions::created_at
                    .eq(after.created_at)
                    .and(executions::id.lt(after.id))),
        );
    }
    let rows = query.inline_limit(limit as u32 + 1).load(conn).await?;
    Ok(page_of(rows, limit, |e: &Execution| Cursor {
        created_at: e.created_at,
        id: e.id,
    }))
}

#[cfg(test)]
mod tests {
    use super::ExecutionStatus;

    /// `claim_next` moves pending -> running without asking the table.
    #[test]
    fn a_claim_is_a_legal_move() {
        assert!(
            ExecutionStatus::sources(ExecutionStatus::Running).contains(&ExecutionStatus::Pending)
        );
    }
}
