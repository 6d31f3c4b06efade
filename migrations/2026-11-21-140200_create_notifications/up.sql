-- Notifications: what a user is told, on which channels it is delivered,
-- what the user wants to receive, and where (push tokens, addresses).

CREATE TYPE notification_channel AS ENUM ('in_app', 'email', 'push');
CREATE TYPE delivery_status AS ENUM ('pending', 'sending', 'sent', 'failed');

CREATE TABLE notifications (
    id         uuid        PRIMARY KEY,
    tenant_id  uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- What happened, e.g. "comment.created"; preferences are per kind.
    kind       text        NOT NULL
        CONSTRAINT notifications_kind_length CHECK (char_length(kind) BETWEEN 1 AND 64),
    title      text        NOT NULL
        CONSTRAINT notifications_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    body       text
        CONSTRAINT notifications_body_length CHECK (char_length(body) <= 5000),
    data       jsonb       NOT NULL DEFAULT '{}'
        CONSTRAINT notifications_data_object CHECK (jsonb_typeof(data) = 'object'),
    read_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- A user's list within a tenant, newest first (keyset on created_at, id);
-- tenant_id leading also serves its foreign key.
CREATE INDEX notifications_tenant_user_created_idx
    ON notifications (tenant_id, user_id, created_at DESC, id DESC);
-- The unread badge counts only unread rows.
CREATE INDEX notifications_unread_idx ON notifications (tenant_id, user_id) WHERE read_at IS NULL;
-- The foreign key to users (cascade on user deletion).
CREATE INDEX notifications_user_id_idx ON notifications (user_id);

CREATE TABLE notification_deliveries (
    id                  uuid                 PRIMARY KEY,
    notification_id     uuid                 NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel             notification_channel NOT NULL,
    status              delivery_status      NOT NULL DEFAULT 'pending',
    attempts            integer              NOT NULL DEFAULT 0
        CONSTRAINT notification_deliveries_attempts_range CHECK (attempts >= 0),
    -- When a sender may pick the delivery up. While it is 'sending' this is
    -- the end of the claim's lease: a worker that died releases it by time.
    next_attempt_at     timestamptz          NOT NULL DEFAULT now(),
    provider_message_id text
        CONSTRAINT notification_deliveries_provider_message_id_length CHECK (char_length(provider_message_id) <= 255),
    last_error          text
        CONSTRAINT notification_deliveries_last_error_length CHECK (char_length(last_error) <= 2000),
    sent_at             timestamptz,
    created_at          timestamptz          NOT NULL DEFAULT now(),
    updated_at          timestamptz          NOT NULL DEFAULT now(),
    -- One delivery per channel; notification_id leading serves the foreign key.
    CONSTRAINT notification_deliveries_notification_channel_key UNIQUE (notification_id, channel)
);
-- claim_due scans only what a sender can still take, oldest due first.
CREATE INDEX notification_deliveries_due_idx
    ON notification_deliveries (channel, next_attempt_at)
    WHERE status IN ('pending', 'sending');
SELECT diesel_manage_updated_at('notification_deliveries');

-- A user's choice for one kind on one channel. No row means the default
-- (enabled).
CREATE TABLE notification_preferences (
    user_id    uuid                 NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text                 NOT NULL
        CONSTRAINT notification_preferences_kind_length CHECK (char_length(kind) BETWEEN 1 AND 64),
    channel    notification_channel NOT NULL,
    enabled    boolean              NOT NULL,
    updated_at timestamptz          NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, kind, channel)
);
SELECT diesel_manage_updated_at('notification_preferences');

-- Where a user receives a channel: a push token or an email address.
CREATE TABLE notification_targets (
    id         uuid                 PRIMARY KEY,
    user_id    uuid                 NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel    notification_channel NOT NULL
        CONSTRAINT notification_targets_channel_external CHECK (channel <> 'in_app'),
    address    text                 NOT NULL
        CONSTRAINT notification_targets_address_length CHECK (char_length(address) BETWEEN 1 AND 1024),
    created_at timestamptz          NOT NULL DEFAULT now(),
    updated_at timestamptz          NOT NULL DEFAULT now(),
    -- A push token belongs to one device, so to one user at a time:
    -- registering it again moves it to the new user.
    CONSTRAINT notification_targets_channel_address_key UNIQUE (channel, address)
);
CREATE INDEX notification_targets_user_id_idx ON notification_targets (user_id);
SELECT diesel_manage_updated_at('notification_targets');
