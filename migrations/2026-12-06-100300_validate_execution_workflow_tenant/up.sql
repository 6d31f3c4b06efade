-- Checks the executions that existed before the composite foreign key came
-- (NOT VALID in the migration before), under SHARE UPDATE EXCLUSIVE:
-- reads and writes go on meanwhile.
ALTER TABLE executions VALIDATE CONSTRAINT executions_workflow_tenant_fkey;
