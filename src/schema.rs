// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "chat_visibility"))]
    pub struct ChatVisibility;

    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "delivery_status"))]
    pub struct DeliveryStatus;

    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "execution_status"))]
    pub struct ExecutionStatus;

    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "message_role"))]
    pub struct MessageRole;

    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "notification_channel"))]
    pub struct NotificationChannel;

    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "step_status"))]
    pub struct StepStatus;

    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "subscription_event_outcome"))]
    pub struct SubscriptionEventOutcome;

    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "subscription_status"))]
    pub struct SubscriptionStatus;

    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "tenant_role"))]
    pub struct TenantRole;

    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "verification_purpose"))]
    pub struct VerificationPurpose;
}

diesel::table! {
    accounts (id) {
        id -> Uuid,
        user_id -> Uuid,
        provider -> Text,
        provider_account_id -> Text,
        access_token -> Nullable<Text>,
        refresh_token -> Nullable<Text>,
        id_token -> Nullable<Text>,
        access_token_expires_at -> Nullable<Timestamptz>,
        refresh_token_expires_at -> Nullable<Timestamptz>,
        scope -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    admin_audit_log (id) {
        id -> Uuid,
        actor_id -> Uuid,
        action -> Text,
        entity_type -> Text,
        entity_id -> Nullable<Text>,
        before -> Nullable<Jsonb>,
        after -> Nullable<Jsonb>,
        ip_address -> Nullable<Text>,
        created_at -> Timestamptz,
        system_reason -> Nullable<Text>,
    }
}

diesel::table! {
    admin_roles (id) {
        id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        permissions -> Array<Nullable<Text>>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    admin_users (id) {
        id -> Uuid,
        user_id -> Uuid,
        role_id -> Uuid,
        granted_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    canvas_nodes (id) {
        id -> Uuid,
        project_id -> Uuid,
        node_id -> Text,
        node_type -> Text,
        position_x -> Float8,
        position_y -> Float8,
        width -> Nullable<Float8>,
        height -> Nullable<Float8>,
        data -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::ChatVisibility;

    chats (id) {
        id -> Uuid,
        user_id -> Uuid,
        title -> Text,
        visibility -> ChatVisibility,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::StepStatus;

    execution_steps (id) {
        id -> Uuid,
        execution_id -> Uuid,
        node_id -> Text,
        position -> Int4,
        status -> StepStatus,
        input -> Nullable<Jsonb>,
        output -> Nullable<Jsonb>,
        validation -> Nullable<Jsonb>,
        attempts -> Int4,
        max_attempts -> Int4,
        error -> Nullable<Text>,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::ExecutionStatus;

    executions (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        workflow_id -> Uuid,
        user_id -> Nullable<Uuid>,
        workflow_version -> Int8,
        status -> ExecutionStatus,
        input -> Jsonb,
        output -> Nullable<Jsonb>,
        error -> Nullable<Text>,
        worker_id -> Nullable<Text>,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    jwks (id) {
        id -> Uuid,
        algorithm -> Text,
        public_key -> Jsonb,
        private_key -> Bytea,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        expires_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::MessageRole;

    messages (id) {
        id -> Uuid,
        chat_id -> Uuid,
        role -> MessageRole,
        parts -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::NotificationChannel;
    use super::sql_types::DeliveryStatus;

    notification_deliveries (id) {
        id -> Uuid,
        notification_id -> Uuid,
        channel -> NotificationChannel,
        status -> DeliveryStatus,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        provider_message_id -> Nullable<Text>,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::NotificationChannel;

    notification_preferences (user_id, kind, channel) {
        user_id -> Uuid,
        kind -> Text,
        channel -> NotificationChannel,
        enabled -> Bool,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::NotificationChannel;

    notification_targets (id) {
        id -> Uuid,
        user_id -> Uuid,
        channel -> NotificationChannel,
        address -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    notifications (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        user_id -> Uuid,
        kind -> Text,
        title -> Text,
        body -> Nullable<Text>,
        data -> Jsonb,
        read_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Uuid,
        user_id -> Uuid,
        credential_id -> Text,
        public_key -> Bytea,
        counter -> Int8,
        transports -> Array<Nullable<Text>>,
        device_name -> Nullable<Text>,
        last_used_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    projects (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        owner_id -> Nullable<Uuid>,
        name -> Text,
        description -> Nullable<Text>,
        canvas_version -> Int8,
        archived_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        token_hash -> Bytea,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        ip_address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::SubscriptionEventOutcome;

    subscription_events (id) {
        id -> Uuid,
        provider_event_id -> Text,
        event_type -> Text,
        subscription_id -> Nullable<Uuid>,
        payload -> Jsonb,
        occurred_at -> Timestamptz,
        received_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
        outcome -> Nullable<SubscriptionEventOutcome>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::SubscriptionStatus;

    subscriptions (id) {
        id -> Uuid,
        user_id -> Nullable<Uuid>,
        tenant_id -> Nullable<Uuid>,
        provider_customer_id -> Text,
        provider_subscription_id -> Text,
        plan -> Text,
        status -> SubscriptionStatus,
        current_period_end -> Nullable<Timestamptz>,
        cancel_at_period_end -> Bool,
        last_event_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    tenant_activity (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        actor_id -> Nullable<Uuid>,
        action -> Text,
        subject -> Nullable<Text>,
        details -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::TenantRole;

    tenant_invites (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        email -> Text,
        role -> TenantRole,
        token_hash -> Bytea,
        invited_by -> Nullable<Uuid>,
        expires_at -> Timestamptz,
        accepted_at -> Nullable<Timestamptz>,
        accepted_by -> Nullable<Uuid>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::TenantRole;

    tenant_members (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        user_id -> Uuid,
        role -> TenantRole,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    tenants (id) {
        id -> Uuid,
        name -> Text,
        slug -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    todos (id) {
        id -> Uuid,
        user_id -> Uuid,
        tenant_id -> Nullable<Uuid>,
        title -> Text,
        description -> Nullable<Text>,
        completed -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    user_activity_daily (user_id, day) {
        user_id -> Uuid,
        day -> Date,
        count -> Int8,
    }
}

diesel::table! {
    user_profiles (user_id) {
        user_id -> Uuid,
        display_name -> Text,
        avatar_url -> Nullable<Text>,
        bio -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    user_settings (user_id) {
        user_id -> Uuid,
        settings -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        email_verified -> Bool,
        name -> Nullable<Text>,
        image -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::VerificationPurpose;

    verifications (id) {
        id -> Uuid,
        purpose -> VerificationPurpose,
        identifier -> Text,
        token_hash -> Bytea,
        expires_at -> Timestamptz,
        consumed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    waitlist (id) {
        id -> Uuid,
        email -> Text,
        position -> Int8,
        invited_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    workflows (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        owner_id -> Nullable<Uuid>,
        name -> Text,
        description -> Nullable<Text>,
        nodes -> Jsonb,
        edges -> Jsonb,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(accounts -> users (user_id));
diesel::joinable!(admin_users -> admin_roles (role_id));
diesel::joinable!(canvas_nodes -> projects (project_id));
diesel::joinable!(chats -> users (user_id));
diesel::joinable!(execution_steps -> executions (execution_id));
diesel::joinable!(executions -> tenants (tenant_id));
diesel::joinable!(executions -> users (user_id));
diesel::joinable!(messages -> chats (chat_id));
diesel::joinable!(notification_deliveries -> notifications (notification_id));
diesel::joinable!(notification_preferences -> users (user_id));
diesel::joinable!(notification_targets -> users (user_id));
diesel::joinable!(notifications -> tenants (tenant_id));
diesel::joinable!(notifications -> users (user_id));
diesel::joinable!(passkeys -> users (user_id));
diesel::joinable!(projects -> tenants (tenant_id));
diesel::joinable!(projects -> users (owner_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(subscription_events -> subscriptions (subscription_id));
diesel::joinable!(subscriptions -> tenants (tenant_id));
diesel::joinable!(subscriptions -> users (user_id));
diesel::joinable!(tenant_activity -> tenants (tenant_id));
diesel::joinable!(tenant_activity -> users (actor_id));
diesel::joinable!(tenant_invites -> tenants (tenant_id));
diesel::joinable!(tenant_members -> tenants (tenant_id));
diesel::joinable!(tenant_members -> users (user_id));
diesel::joinable!(todos -> tenants (tenant_id));
diesel::joinable!(todos -> users (user_id));
diesel::joinable!(user_activity_daily -> users (user_id));
diesel::joinable!(user_profiles -> users (user_id));
diesel::joinable!(user_settings -> users (user_id));
diesel::joinable!(workflows -> tenants (tenant_id));
diesel::joinable!(workflows -> users (owner_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    admin_audit_log,
    admin_roles,
    admin_users,
    canvas_nodes,
    chats,
    execution_steps,
    executions,
    jwks,
    messages,
    notification_deliveries,
    notification_preferences,
    notification_targets,
    notifications,
    passkeys,
    projects,
    sessions,
    subscription_events,
    subscriptions,
    tenant_activity,
    tenant_invites,
    tenant_members,
    tenants,
    todos,
    user_activity_daily,
    user_profiles,
    user_settings,
    users,
    verifications,
    waitlist,
    workflows,
);
