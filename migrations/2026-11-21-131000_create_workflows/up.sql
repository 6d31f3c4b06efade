-- The workflow engine (seed 002): workflow definitions, their executions and
-- the steps of each execution. The state machines of the two status enums
-- live in src/workflows/executions.rs and src/workflows/execution_steps.rs;
-- every status change is a guarded UPDATE (`WHERE status = ANY(sources)`).

CREATE TYPE execution_status AS ENUM (
    'pending', 'running', 'paused', 'completed', 'failed', 'cancelled'
);
CREATE TYPE step_status AS ENUM (
    'pending', 'running', 'completed', 'failed', 'skipped'
);

CREATE TABLE workflows (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The definition is the tenant's: it outlives the user who wrote it.
    owner_id    uuid        REFERENCES users (id) ON DELETE SET NULL,
    name        text        NOT NULL
        CONSTRAINT workflows_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    description text
        CONSTRAINT workflows_description_length CHECK (char_length(description) <= 2000),
    -- The graph: arrays of nodes {id, type, data} and edges {source, target}.
    -- Validated by the application (edges only between known nodes).
    nodes       jsonb       NOT NULL DEFAULT '[]'
        CONSTRAINT workflows_nodes_array CHECK (jsonb_typeof(nodes) = 'array'),
    edges       jsonb       NOT NULL DEFAULT '[]'
        CONSTRAINT workflows_edges_array CHECK (jsonb_typeof(edges) = 'array'),
    -- Optimistic concurrency: an update names the version it read.
    version     bigint      NOT NULL DEFAULT 1
        CONSTRAINT workflows_version_positive CHECK (version >= 1),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- A tenant's workflows, most recently changed first; serves the tenant FK too.
CREATE INDEX workflows_tenant_updated_idx ON workflows (tenant_id, updated_at DESC, id DESC);
CREATE INDEX workflows_owner_id_idx ON workflows (owner_id);
SELECT diesel_manage_updated_at('workflows');

CREATE TABLE executions (
    id               uuid             PRIMARY KEY,
    -- Copied from the workflow so that tenant filters and the claim query
    -- need no join.
    tenant_id        uuid             NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The history goes with its workflow.
    workflow_id      uuid             NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    -- Who started it; the history stays when the user is deleted.
    user_id          uuid             REFERENCES users (id) ON DELETE SET NULL,
    -- The workflow version the steps were created from.
    workflow_version bigint           NOT NULL,
    status           execution_status NOT NULL DEFAULT 'pending',
    input            jsonb            NOT NULL DEFAULT '{}',
    output           jsonb,
    error            text
        CONSTRAINT executions_error_length CHECK (char_length(error) <= 10000),
    -- The worker that claimed it (claim_next).
    worker_id        text
        CONSTRAINT executions_worker_id_length CHECK (char_length(worker_id) BETWEEN 1 AND 200),
    -- Set by the transitions that imply them: pending -> running sets
    -- started_at, entering a terminal status sets finished_at.
    started_at       timestamptz,
    finished_at      timestamptz,
    created_at       timestamptz      NOT NULL DEFAULT now(),
    updated_at       timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT executions_finished_after_started CHECK (finished_at >= started_at)
);
-- Seed 002's indexes: workflow_id, status, user_id, started_at.
-- The workflow_id one is composite: it also serves the "executions of a
-- workflow, newest first" list and its keyset cursor (created_at, id).
CREATE INDEX executions_workflow_created_idx ON executions (workflow_id, created_at DESC, id DESC);
CREATE INDEX executions_status_idx ON executions (status);
CREATE INDEX executions_user_id_idx ON executions (user_id);
CREATE INDEX executions_started_at_idx ON executions (started_at);
-- claim_next: the oldest pending execution of a tenant. Serves the tenant FK.
CREATE INDEX executions_tenant_status_created_idx ON executions (tenant_id, status, created_at, id);
SELECT diesel_manage_updated_at('executions');

CREATE TABLE execution_steps (
    id            uuid        PRIMARY KEY,
    execution_id  uuid        NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    -- The graph node this step runs, and its place in the graph's node order.
    node_id       text        NOT NULL
        CONSTRAINT execution_steps_node_id_length CHECK (char_length(node_id) BETWEEN 1 AND 100),
    position      integer     NOT NULL
        CONSTRAINT execution_steps_position_non_negative CHECK (position >= 0),
    status        step_status NOT NULL DEFAULT 'pending',
    input         jsonb,
    output        jsonb,
    -- What the node's output validation said.
    validation    jsonb,
    -- Retries are bounded: starting a step counts an attempt, and a failed
    -- step may go back to pending only while attempts < max_attempts.
    attempts      integer     NOT NULL DEFAULT 0,
    max_attempts  integer     NOT NULL DEFAULT 3
        CONSTRAINT execution_steps_max_attempts_range CHECK (max_attempts BETWEEN 1 AND 100),
    error         text
        CONSTRAINT execution_steps_error_length CHECK (char_length(error) <= 10000),
    started_at    timestamptz,
    finished_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT execution_steps_attempts_bounded CHECK (attempts BETWEEN 0 AND max_attempts),
    -- One step per node of an execution. Seed 002's execution_id index:
    -- execution_id leads this one (and the nested load reads steps by it).
    CONSTRAINT execution_steps_execution_node_key UNIQUE (execution_id, node_id)
);
CREATE INDEX execution_steps_node_id_idx ON execution_steps (node_id);
CREATE INDEX execution_steps_status_idx ON execution_steps (status);
SELECT diesel_manage_updated_at('execution_steps');
