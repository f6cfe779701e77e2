-- The two outcome triggers' functions as they were before migration 0012 (from 0005 and 0009):
-- they join the UPDATE's transition tables, and PL/pgSQL keeps the plan its session made at the
-- first, empty outcome batch, a nested loop quadratic in the rows of every later batch. For
-- `./dev bench-deep --candidate-sql` and `benchmarks/deep_triggers.py --candidate-sql`: what
-- 0012 changed, measured on one fill (the drains as migrated, then with these functions).
-- Run it only on a throwaway database.
CREATE OR REPLACE FUNCTION horsies_notify_tasks_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('horsies_task_done', chunk.ids)
    FROM (
        SELECT string_agg(done.id::text, ',') AS ids
        FROM (
            SELECT n.id, (row_number() OVER () - 1) / 200 AS part
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED') AND o.status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED')
        ) done
        GROUP BY done.part
    ) chunk;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION horsies_wf_tasks_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT nd.workflow_id, array_agg(nd.index ORDER BY nd.index) AS nodes
        FROM new_rows t
        JOIN old_rows o ON o.id = t.id
        JOIN horsies_workflow_node nd ON nd.task_id = t.id AND nd.status = 'ENQUEUED'
        JOIN horsies_workflow w ON w.id = nd.workflow_id
        WHERE t.status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED')
          AND o.status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED')
        GROUP BY w.root_workflow_id, nd.workflow_id
        ORDER BY w.root_workflow_id, nd.workflow_id
    LOOP
        PERFORM horsies_wf_lock_tree(r.workflow_id);
        PERFORM horsies_wf_settle(r.workflow_id, horsies_wf_mark_ended(r.workflow_id, r.nodes));
    END LOOP;
    RETURN NULL;
END $$;
