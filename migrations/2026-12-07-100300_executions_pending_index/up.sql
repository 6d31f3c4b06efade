-- executions::claim_next: a tenant's oldest pending execution. The claim's
-- predicate (tenant, status = 'pending', oldest first) could be served by
-- executions_tenant_status_created_idx or by walking
-- executions_tenant_created_idx backward and filtering on status, and the
-- planner costs the two within a few hundredths of each other: the second,
-- once chosen, reads every execution claimed before the next pending one,
-- so each claim costs more than the last (BENCHMARKS.md, "The claim's
-- plan"). This index holds pending executions only: smaller than both, it
-- is the cheaper plan, and claiming takes an execution out of it.
CREATE INDEX CONCURRENTLY executions_pending_idx ON executions (tenant_id, created_at, id)
    WHERE status = 'pending';
