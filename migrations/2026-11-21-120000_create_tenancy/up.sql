-- Who belongs to a tenant, how people are invited into it, and what
-- happened in it. Every table here is tenant-owned: repository functions
-- always filter by tenant_id (see src/tenancy/).

CREATE TYPE tenant_role AS ENUM ('owner', 'admin', 'member');

-- A user's membership of a tenant. The "at least one owner" rule spans rows,
-- so it can't be a CHECK: the repository enforces it after locking the
-- tenant row (FOR UPDATE), which serialises concurrent demotions/removals.
CREATE TABLE tenant_members (
    id         uuid        PRIMARY KEY,
    tenant_id  uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- A deleted user leaves every tenant with them.
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       tenant_role NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- One membership per user and tenant. Leads with tenant_id, so it also
    -- serves the tenant_id foreign key and list_members' filter.
    CONSTRAINT tenant_members_tenant_user_key UNIQUE (tenant_id, user_id)
);
-- "My tenants" and the user_id foreign key.
CREATE INDEX tenant_members_user_id_idx ON tenant_members (user_id);
SELECT diesel_manage_updated_at('tenant_members');

-- An invitation: the token (stored as its SHA-256 only) is single-use,
-- expires, and can be revoked. accepted_at/revoked_at are set once, by an
-- UPDATE that only matches a pending row, so two accepts can't both win.
CREATE TABLE tenant_invites (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       text        NOT NULL
        CONSTRAINT tenant_invites_email_length CHECK (char_length(email) BETWEEN 3 AND 254),
    role        tenant_role NOT NULL,
    token_hash  bytea       NOT NULL
        CONSTRAINT tenant_invites_token_hash_length CHECK (octet_length(token_hash) = 32),
    -- The invite outlives its inviter: keep it, forget who sent it.
    invited_by  uuid        REFERENCES users (id) ON DELETE SET NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by uuid        REFERENCES users (id) ON DELETE SET NULL,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenant_invites_token_hash_key UNIQUE (token_hash),
    CONSTRAINT tenant_invites_single_outcome CHECK (accepted_at IS NULL OR revoked_at IS NULL)
);
-- list_pending: a tenant's invites newest first (keyset on created_at, id);
-- also serves the tenant_id foreign key.
CREATE INDEX tenant_invites_tenant_created_idx ON tenant_invites (tenant_id, created_at DESC, id DESC);
CREATE INDEX tenant_invites_invited_by_idx ON tenant_invites (invited_by);
CREATE INDEX tenant_invites_accepted_by_idx ON tenant_invites (accepted_by);

-- What happened in a tenant. Append-only through the crate (no update or
-- delete function); rows go away only with their tenant.
CREATE TABLE tenant_activity (
    id         uuid        PRIMARY KEY,
    tenant_id  uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The log outlives the actor: keep the entry, forget who it was.
    actor_id   uuid        REFERENCES users (id) ON DELETE SET NULL,
    action     text        NOT NULL
        CONSTRAINT tenant_activity_action_length CHECK (char_length(action) BETWEEN 1 AND 100),
    subject    text
        CONSTRAINT tenant_activity_subject_length CHECK (char_length(subject) <= 200),
    details    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- list: newest first with keyset pagination; also serves the foreign key.
CREATE INDEX tenant_activity_tenant_created_idx ON tenant_activity (tenant_id, created_at DESC, id DESC);
CREATE INDEX tenant_activity_actor_id_idx ON tenant_activity (actor_id);
