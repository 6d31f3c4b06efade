-- A validated constraint cannot become NOT VALID again: put it back as the
-- migration before left it (unchecked for the rows of then).
SET lock_timeout = '5s';
ALTER TABLE executions DROP CONSTRAINT executions_workflow_tenant_fkey;
ALTER TABLE executions
    ADD CONSTRAINT executions_workflow_tenant_fkey FOREIGN KEY (tenant_id, workflow_id)
    REFERENCES workflows (tenant_id, id) ON DELETE CASCADE NOT VALID;
