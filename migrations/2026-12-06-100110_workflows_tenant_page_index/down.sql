DROP INDEX CONCURRENTLY IF EXISTS workflows_tenant_created_idx;
