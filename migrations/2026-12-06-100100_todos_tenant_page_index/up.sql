-- todos::list_for_tenant: a tenant's todos newest first (keyset on
-- created_at, id); tenant_id leading also serves the foreign key.
CREATE INDEX CONCURRENTLY todos_tenant_created_idx ON todos (tenant_id, created_at DESC, id DESC);
