-- A candidate for the two statement-level triggers that compare a task UPDATE's old and new
-- rows (migrations 0005 and 0009), for `./dev bench-deep --candidate-sql` to measure before a
-- migration exists.
--
-- Today's functions join the transition tables (`new_rows n JOIN old_rows o ON o.id = n.id`).
-- A PL/pgSQL statement without parameters keeps, for the rest of its session, the generic plan
-- made at its first execution, with the transition tables' row counts of that execution: the
-- worker's outcome connection first runs FINISH on an empty batch (its warm-up), then on small
-- ones, so the plan is a nested loop, and every later statement costs the square of its rows.
-- A batch of 650 outcomes then takes 0.3-0.4 ms per row instead of 0.05-0.07, the next batch is
-- larger still, and a drain runs at half speed until it ends.
--
-- Here the rows made terminal are a set difference (a hashed or sorted SetOp, linear in the
-- rows whatever the cached plan assumed): the ids terminal now, except those terminal before.
-- An UPDATE changes each row at most once, so both transition tables hold the same ids, and
-- this is the join's result.
CREATE OR REPLACE FUNCTION horsies_notify_tasks_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('horsies_task_done', chunk.ids)
    FROM (
        SELECT string_agg(done.id::text, ',') AS ids
        FROM (
            SELECT ended.id, (row_number() OVER () - 1) / 200 AS part
            FROM (
                SELECT n.id FROM new_rows n
                WHERE n.status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED')
                EXCEPT
                SELECT o.id FROM old_rows o
                WHERE o.status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED')
            ) ended
        ) done
        GROUP BY done.part
    ) chunk;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION horsies_wf_tasks_finished() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT nd.workflow_id, array_agg(nd.index ORDER BY nd.index) AS nodes
        FROM (
            SELECT n.id FROM new_rows n
            WHERE n.status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED')
            EXCEPT
            SELECT o.id FROM old_rows o
            WHERE o.status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED')
        ) t
        JOIN horsies_workflow_node nd ON nd.task_id = t.id AND nd.status = 'ENQUEUED'
        JOIN horsies_workflow w ON w.id = nd.workflow_id
        GROUP BY w.root_workflow_id, nd.workflow_id
        ORDER BY w.root_workflow_id, nd.workflow_id
    LOOP
        PERFORM horsies_wf_lock_tree(r.workflow_id);
        PERFORM horsies_wf_settle(r.workflow_id, horsies_wf_mark_ended(r.workflow_id, r.nodes));
    END LOOP;
    RETURN NULL;
END $$;
