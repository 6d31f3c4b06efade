-- Product features from the old package: todos, the waitlist and daily
-- activity counters.

CREATE TABLE todos (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Optional: a todo can be personal or belong to a tenant.
    tenant_id   uuid        REFERENCES tenants (id) ON DELETE CASCADE,
    title       text        NOT NULL
        CONSTRAINT todos_title_length CHECK (char_length(title) BETWEEN 1 AND 255),
    description text
        CONSTRAINT todos_description_length CHECK (char_length(description) <= 1000),
    completed   boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- A user's list, newest first; user_id leading serves the foreign key.
CREATE INDEX todos_user_id_created_at_idx ON todos (user_id, created_at DESC, id DESC);
CREATE INDEX todos_tenant_id_idx ON todos (tenant_id);
SELECT diesel_manage_updated_at('todos');

CREATE TABLE waitlist (
    id         uuid        PRIMARY KEY,
    email      text        NOT NULL
        CONSTRAINT waitlist_email_length CHECK (char_length(email) BETWEEN 3 AND 254),
    -- Join order. Taken from a sequence, so it may have gaps (a repeated
    -- join consumes a number); it only ever orders.
    position   bigint      GENERATED ALWAYS AS IDENTITY,
    invited_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT waitlist_position_key UNIQUE (position)
);
-- One entry per address whatever its case; also the lookup index.
CREATE UNIQUE INDEX waitlist_email_lower_key ON waitlist (lower(email));
-- invite_next takes the earliest uninvited entries.
CREATE INDEX waitlist_uninvited_idx ON waitlist (position) WHERE invited_at IS NULL;

-- Per user and day, how many actions the user took. Recording is one
-- upsert that adds, so concurrent increments never lose each other.
CREATE TABLE user_activity_daily (
    user_id uuid   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day     date   NOT NULL,
    count   bigint NOT NULL DEFAULT 0
        CONSTRAINT user_activity_daily_count_range CHECK (count >= 0),
    -- user_id leading serves the foreign key and per-user range reads.
    PRIMARY KEY (user_id, day)
);
