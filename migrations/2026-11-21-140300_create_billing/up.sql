-- Billing: subscriptions mirrored from the payment provider (Stripe) and
-- the provider's webhook events that change them.

CREATE TYPE subscription_status AS ENUM (
    'incomplete', 'incomplete_expired', 'trialing', 'active',
    'past_due', 'canceled', 'unpaid', 'paused'
);

CREATE TABLE subscriptions (
    id                       uuid                PRIMARY KEY,
    -- Owned by a user or by a tenant, never both.
    user_id                  uuid                REFERENCES users (id) ON DELETE CASCADE,
    tenant_id                uuid                REFERENCES tenants (id) ON DELETE CASCADE,
    provider_customer_id     text                NOT NULL
        CONSTRAINT subscriptions_provider_customer_id_length CHECK (char_length(provider_customer_id) BETWEEN 1 AND 255),
    provider_subscription_id text                NOT NULL
        CONSTRAINT subscriptions_provider_subscription_id_length CHECK (char_length(provider_subscription_id) BETWEEN 1 AND 255),
    plan                     text                NOT NULL
        CONSTRAINT subscriptions_plan_length CHECK (char_length(plan) BETWEEN 1 AND 64),
    status                   subscription_status NOT NULL,
    current_period_end       timestamptz,
    cancel_at_period_end     boolean             NOT NULL DEFAULT false,
    -- The provider's timestamp of the last event applied: an event older
    -- than this is recorded but never rolls the subscription back.
    last_event_at            timestamptz         NOT NULL,
    created_at               timestamptz         NOT NULL DEFAULT now(),
    updated_at               timestamptz         NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_owner_exactly_one CHECK (num_nonnulls(user_id, tenant_id) = 1),
    CONSTRAINT subscriptions_provider_subscription_id_key UNIQUE (provider_subscription_id)
);
CREATE INDEX subscriptions_user_id_idx ON subscriptions (user_id);
CREATE INDEX subscriptions_tenant_id_idx ON subscriptions (tenant_id);
CREATE INDEX subscriptions_provider_customer_id_idx ON subscriptions (provider_customer_id);
SELECT diesel_manage_updated_at('subscriptions');

-- What applying an event did.
CREATE TYPE subscription_event_outcome AS ENUM ('applied', 'stale');

CREATE TABLE subscription_events (
    id                uuid                       PRIMARY KEY,
    -- The provider's event id: the idempotency key of webhook delivery.
    provider_event_id text                       NOT NULL
        CONSTRAINT subscription_events_provider_event_id_length CHECK (char_length(provider_event_id) BETWEEN 1 AND 255),
    event_type        text                       NOT NULL
        CONSTRAINT subscription_events_event_type_length CHECK (char_length(event_type) BETWEEN 1 AND 255),
    -- Kept when the subscription row goes: the event log is an audit trail.
    subscription_id   uuid                       REFERENCES subscriptions (id) ON DELETE SET NULL,
    payload           jsonb                      NOT NULL,
    -- When the provider says the event happened (its ordering key).
    occurred_at       timestamptz                NOT NULL,
    received_at       timestamptz                NOT NULL DEFAULT now(),
    processed_at      timestamptz,
    outcome           subscription_event_outcome,
    CONSTRAINT subscription_events_provider_event_id_key UNIQUE (provider_event_id)
);
CREATE INDEX subscription_events_subscription_id_idx ON subscription_events (subscription_id);
