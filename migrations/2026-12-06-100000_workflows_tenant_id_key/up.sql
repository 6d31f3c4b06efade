-- The target of executions' composite foreign key (tenant_id, workflow_id):
-- an execution can only reference a workflow of its own tenant (integrity
-- checks bypass row-level security, so a policy alone could not stop it).
CREATE UNIQUE INDEX CONCURRENTLY workflows_tenant_id_id_key ON workflows (tenant_id, id);
