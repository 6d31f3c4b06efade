-- Row-level security on every tenant table (docs/design.md, "Roles"): a
-- query that forgets its tenant filter still sees only the tenant of the
-- transaction's context. The crate sets `app.tenant_id` and `app.user_id`
-- per transaction (set_config(..., true)); an unset or ended setting reads
-- NULL or '', which means "no tenant" and matches no row. FORCE makes the
-- policies apply to the tables' owner too; migrations run as a role that
-- bypasses them (a superuser or BYPASSRLS), so backfills see every row.
-- The policies name no role: they apply to every role that does not bypass.
SET lock_timeout = '5s';

-- The context, evaluated once per statement where a policy wraps the call
-- in a sub-select.
CREATE FUNCTION app_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;
CREATE FUNCTION app_current_user() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.user_id', true), '')::uuid $$;

-- An execution references a workflow of its own tenant only.
ALTER TABLE workflows ADD CONSTRAINT workflows_tenant_id_id_key UNIQUE USING INDEX workflows_tenant_id_id_key;
ALTER TABLE executions
    ADD CONSTRAINT executions_workflow_tenant_fkey FOREIGN KEY (tenant_id, workflow_id)
    REFERENCES workflows (tenant_id, id) ON DELETE CASCADE NOT VALID;


-- Tables whose every row belongs to one tenant.

ALTER TABLE tenant_members ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_members
    USING (tenant_id = (SELECT app_current_tenant()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant()));

ALTER TABLE tenant_invites ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_invites
    USING (tenant_id = (SELECT app_current_tenant()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant()));

ALTER TABLE tenant_activity ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_activity
    USING (tenant_id = (SELECT app_current_tenant()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant()));

ALTER TABLE projects ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON projects
    USING (tenant_id = (SELECT app_current_tenant()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant()));

ALTER TABLE workflows ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON workflows
    USING (tenant_id = (SELECT app_current_tenant()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant()));

ALTER TABLE executions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON executions
    USING (tenant_id = (SELECT app_current_tenant()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant()));

ALTER TABLE notifications ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notifications
    USING (tenant_id = (SELECT app_current_tenant()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant()));

-- Before a tenant is chosen a user lists the tenants they belong to and
-- their membership is checked: their own memberships are readable.
CREATE POLICY own_memberships ON tenant_members FOR SELECT
    USING (user_id = (SELECT app_current_user()));

-- Tenant rows, and personal rows (no tenant) of the acting user.

ALTER TABLE todos ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON todos
    USING (tenant_id = (SELECT app_current_tenant()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant()));
CREATE POLICY personal ON todos
    USING (tenant_id IS NULL AND user_id = (SELECT app_current_user()))
    WITH CHECK (tenant_id IS NULL AND user_id = (SELECT app_current_user()));

ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subscriptions
    USING (tenant_id = (SELECT app_current_tenant()))
    WITH CHECK (tenant_id = (SELECT app_current_tenant()));
CREATE POLICY personal ON subscriptions
    USING (tenant_id IS NULL AND user_id = (SELECT app_current_user()))
    WITH CHECK (tenant_id IS NULL AND user_id = (SELECT app_current_user()));

-- Child tables: visible, and writable, through a parent the context can
-- see (the parent's own policies apply inside the sub-select). Their rows
-- are always read and written by parent, so the check is one index probe of
-- the parent per row.

ALTER TABLE canvas_nodes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY through_projects ON canvas_nodes
    USING (EXISTS (SELECT 1 FROM projects WHERE projects.id = canvas_nodes.project_id))
    WITH CHECK (EXISTS (SELECT 1 FROM projects WHERE projects.id = canvas_nodes.project_id));

ALTER TABLE execution_steps ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY through_executions ON execution_steps
    USING (EXISTS (SELECT 1 FROM executions WHERE executions.id = execution_steps.execution_id))
    WITH CHECK (EXISTS (SELECT 1 FROM executions WHERE executions.id = execution_steps.execution_id));

ALTER TABLE notification_deliveries ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY through_notifications ON notification_deliveries
    USING (EXISTS (SELECT 1 FROM notifications WHERE notifications.id = notification_deliveries.notification_id))
    WITH CHECK (EXISTS (SELECT 1 FROM notifications WHERE notifications.id = notification_deliveries.notification_id));

ALTER TABLE subscription_events ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY through_subscriptions ON subscription_events
    USING (EXISTS (SELECT 1 FROM subscriptions WHERE subscriptions.id = subscription_events.subscription_id))
    WITH CHECK (EXISTS (SELECT 1 FROM subscriptions WHERE subscriptions.id = subscription_events.subscription_id));
