DROP INDEX CONCURRENTLY IF EXISTS executions_tenant_created_idx;
