-- executions::claim_next: a tenant's oldest pending execution. The claim's
-- predicate (tenant, status = 'pending', oldest first) can also be served
-- by walking executions_tenant_created_idx backward and filtering on
-- status, which reads every execution claimed before the next pending one
-- (BENCHMARKS.md, "The claim's plan"). This index holds pending executions
-- only, so a claim that reads it skips nothing; with statistics that have
-- seen claimed rows the planner takes it. (Right after a large queue is
-- loaded and analyzed, every row pending, it may still cost the walk as
-- cheaper: not settled yet.)
CREATE INDEX CONCURRENTLY executions_pending_idx ON executions (tenant_id, created_at, id)
    WHERE status = 'pending';
