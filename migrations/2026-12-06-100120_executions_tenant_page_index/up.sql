-- executions::list_for_tenant: a tenant's executions newest first, of every
-- workflow (keyset on created_at, id).
CREATE INDEX CONCURRENTLY executions_tenant_created_idx ON executions (tenant_id, created_at DESC, id DESC);
