-- workflows::list: a tenant's workflows newest first (keyset on created_at, id).
CREATE INDEX CONCURRENTLY workflows_tenant_created_idx ON workflows (tenant_id, created_at DESC, id DESC);
