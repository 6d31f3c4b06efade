DROP INDEX CONCURRENTLY IF EXISTS todos_tenant_created_idx;
