DROP INDEX CONCURRENTLY IF EXISTS executions_pending_idx;
