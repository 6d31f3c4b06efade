DROP INDEX CONCURRENTLY IF EXISTS tenant_invites_pending_email_idx;
