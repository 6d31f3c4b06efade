DROP INDEX CONCURRENTLY IF EXISTS workflows_tenant_id_id_key;
