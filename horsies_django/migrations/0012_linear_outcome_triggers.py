"""The outcome triggers find the rows an UPDATE made terminal in time linear in the rows.

The statement-level triggers of 0005 (`horsies_task_done` notifications) and 0009 (workflow
nodes) joined the UPDATE's two transition tables on the task id. PL/pgSQL keeps the plan of a
statement without parameters for the rest of the session, planned with the transition tables'
sizes at its first run: a worker's outcome connection first finishes an empty or small batch, so
the join became a nested loop over two tuplestores, and every later batch cost the square of its
rows (a batch of 1,000 outcomes: 211 ms instead of 17 ms). A slower batch lets the next one grow,
so a drain fell to half speed and stayed there (docs/performance.md, "A deep table").

The rows made terminal are now a set difference, the ids terminal after the UPDATE except those
terminal before it, which PostgreSQL computes by hashing or sorting whatever plan it cached. An
UPDATE changes each row at most once, so both transition tables hold the same ids and the result
is the join's. The functions are otherwise unchanged: both versions below differ only in how
they find those ids.
"""

from django.db import migrations

TERMINAL = "('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED')"

# The ids of the rows the UPDATE made terminal, as a set difference (linear) ...
MADE_TERMINAL = f"""
            SELECT n.id FROM new_rows n WHERE n.status IN {TERMINAL}
            EXCEPT
            SELECT o.id FROM old_rows o WHERE o.status IN {TERMINAL}"""

# ... and as 0005 and 0009 found them, by a join of the transition tables.
JOINED = f"""
            SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.status IN {TERMINAL} AND o.status NOT IN {TERMINAL}"""


def _functions(made_terminal: str) -> str:
    """Both trigger functions, finding the rows made terminal with `made_terminal`."""
    return f"""
CREATE OR REPLACE FUNCTION horsies_notify_tasks_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('horsies_task_done', chunk.ids)
    FROM (
        SELECT string_agg(done.id::text, ',') AS ids
        FROM (
            SELECT ended.id, (row_number() OVER () - 1) / 200 AS part
            FROM ({made_terminal}
            ) ended
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
        FROM ({made_terminal}
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
"""


FORWARD = _functions(MADE_TERMINAL)
REVERSE = _functions(JOINED)


class Migration(migrations.Migration):
    dependencies = [("horsies_django", "0011_row_level_new_task_notify")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
