// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "execution_status"))]
    pub struct ExecutionStatus;

    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "step_status"))]
    pub struct StepStatus;

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
    tenants (id) {
        id -> Uuid,
        name -> Text,
        slug -> Text,
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
diesel::joinable!(canvas_nodes -> projects (project_id));
diesel::joinable!(execution_steps -> executions (execution_id));
diesel::joinable!(executions -> tenants (tenant_id));
diesel::joinable!(executions -> users (user_id));
diesel::joinable!(executions -> workflows (workflow_id));
diesel::joinable!(projects -> tenants (tenant_id));
diesel::joinable!(projects -> users (owner_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(workflows -> tenants (tenant_id));
diesel::joinable!(workflows -> users (owner_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    canvas_nodes,
    execution_steps,
    executions,
    projects,
    sessions,
    tenants,
    users,
    verifications,
    workflows,
);
