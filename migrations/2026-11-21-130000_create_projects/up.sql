-- The projects domain: a tenant's projects and the nodes of each project's
-- visual editor canvas (see src/projects/).

CREATE TABLE projects (
    id             uuid        PRIMARY KEY,
    -- A project belongs to its tenant and goes when the tenant goes.
    tenant_id      uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Who created it. The project is the tenant's, so it outlives its owner.
    owner_id       uuid        REFERENCES users (id) ON DELETE SET NULL,
    name           text        NOT NULL
        CONSTRAINT projects_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    description    text
        CONSTRAINT projects_description_length CHECK (char_length(description) <= 2000),
    -- Optimistic concurrency of the canvas: every save checks it and adds one,
    -- so of two editors saving against the same version only one wins.
    canvas_version bigint      NOT NULL DEFAULT 0
        CONSTRAINT projects_canvas_version_non_negative CHECK (canvas_version >= 0),
    -- Archived projects are hidden from lists but keep their data.
    archived_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- The tenant's project list, newest first, keyset-paginated on (created_at, id).
-- Its leading column also serves the tenant foreign key.
CREATE INDEX projects_tenant_created_idx ON projects (tenant_id, created_at DESC, id DESC);
CREATE INDEX projects_owner_id_idx ON projects (owner_id);
SELECT diesel_manage_updated_at('projects');

-- A node of a project's canvas. `node_id` is the editor's own id (stable
-- across saves), unique within the project; a save upserts on it.
CREATE TABLE canvas_nodes (
    id          uuid             PRIMARY KEY,
    project_id  uuid             NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    node_id     text             NOT NULL
        CONSTRAINT canvas_nodes_node_id_length CHECK (char_length(node_id) BETWEEN 1 AND 100),
    node_type   text             NOT NULL
        CONSTRAINT canvas_nodes_node_type_length CHECK (char_length(node_type) BETWEEN 1 AND 64),
    position_x  double precision NOT NULL,
    position_y  double precision NOT NULL,
    width       double precision
        CONSTRAINT canvas_nodes_width_positive CHECK (width > 0),
    height      double precision
        CONSTRAINT canvas_nodes_height_positive CHECK (height > 0),
    data        jsonb            NOT NULL DEFAULT '{}',
    created_at  timestamptz      NOT NULL DEFAULT now(),
    updated_at  timestamptz      NOT NULL DEFAULT now(),
    -- Also the index of the project foreign key (project_id leads it).
    CONSTRAINT canvas_nodes_project_node_key UNIQUE (project_id, node_id)
);
SELECT diesel_manage_updated_at('canvas_nodes');
