//! The raw side's decoding of `executions` and `execution_steps` rows,
//! every column the crate's models hold: shared by the side-by-side
//! benchmark and the instruction counter (`benches/instructions.rs`).

use uuid::Uuid;

pub type Ts = chrono::DateTime<chrono::Utc>;

/// Every column of an `executions` row, as the crate's `Execution` holds them.
pub const EXECUTION_COLUMNS: &str = "id, tenant_id, workflow_id, user_id, workflow_version, status::text, input, output, \
     error, worker_id, started_at, finished_at, created_at, updated_at";

pub type ExecutionRow = (
    Uuid,
    Uuid,
    Uuid,
    Option<Uuid>,
    i64,
    String,
    serde_json::Value,
    Option<serde_json::Value>,
    Option<String>,
    Option<String>,
    Option<Ts>,
    Option<Ts>,
    Ts,
    Ts,
);

pub fn decode_execution(r: &tokio_postgres::Row) -> ExecutionRow {
    (
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
        r.get(8),
        r.get(9),
        r.get(10),
        r.get(11),
        r.get(12),
        r.get(13),
    )
}

/// Every column of an `execution_steps` row, as the crate's `ExecutionStep` holds them.
pub const STEP_COLUMNS: &str = "id, execution_id, node_id, position, status::text, input, output, validation, attempts, \
     max_attempts, error, started_at, finished_at, created_at, updated_at";

pub type StepRow = (
    Uuid,
    Uuid,
    String,
    i32,
    String,
    Option<serde_json::Value>,
    Option<serde_json::Value>,
    Option<serde_json::Value>,
    i32,
    i32,
    Option<String>,
    Option<Ts>,
    Option<Ts>,
    Ts,
    Ts,
);

pub fn decode_step(r: &tokio_postgres::Row) -> StepRow {
    (
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
        r.get(8),
        r.get(9),
        r.get(10),
        r.get(11),
        r.get(12),
        r.get(13),
        r.get(14),
    )
}
