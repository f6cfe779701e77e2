"""Workflows: one lock order for a whole tree, a child stopped on its own fails its parent's node,
and paused workflows expire.

- Every entry point of the engine (the trigger, the repair, cancel, pause, resume, expiry) first
  locks the tree's root workflow row, then the workflow's own (`horsies_wf_lock_tree`). Before,
  a child's last node finishing locked child then parent while cancelling the parent locked
  parent then child: the two could deadlock. Several trees are locked in root id order.
- `horsies_wf_stop` ends an open workflow as CANCELLED or EXPIRED (cancel is one use). When it
  stops a child workflow whose parent is still open, the parent's node fails with
  SUBWORKFLOW_FAILED and the parent advances, as when the child fails.
- The context of a node lists the summaries of its `workflow_ctx_from` subworkflows, and an
  output node skipped under a met success policy gives an UPSTREAM_SKIPPED result.
- `horsies_wf_expire_paused` ends workflows paused for longer than a given interval as EXPIRED
  with WORKFLOW_EXPIRED (the maintenance leader calls it; `WORKFLOW_PAUSE_EXPIRES_AFTER_MS`).
"""

import importlib

from django.db import migrations, models

FORWARD = r"""
-- A node's kwargs: as in 0008, and the context now carries `summaries` of the subworkflow
-- nodes listed in workflow_ctx_from that have ended (WorkflowContext.summary_for).
CREATE OR REPLACE FUNCTION horsies_wf_task_kwargs(n horsies_workflow_node, wf horsies_workflow)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    kwargs jsonb := n.kwargs;
    up record;
    results jsonb := '{}';
    summaries jsonb := '{}';
BEGIN
    FOR up IN
        SELECT a.key AS param, u.node_id, u.status, u.result
        FROM jsonb_each_text(n.args_from) AS a
        JOIN horsies_workflow_node u ON u.workflow_id = n.workflow_id AND u.index = a.value::int
    LOOP
        IF up.status IN ('COMPLETED', 'FAILED') THEN
            kwargs := kwargs || jsonb_build_object(up.param, up.result);
        ELSIF up.status = 'SKIPPED' THEN
            kwargs := kwargs || jsonb_build_object(up.param, jsonb_build_object('err',
                jsonb_build_object('error_code', 'UPSTREAM_SKIPPED',
                                   'message', format('node %s was skipped', up.node_id),
                                   'data', NULL, 'exception', NULL)));
        END IF;
    END LOOP;
    IF n.wants_meta THEN
        kwargs := kwargs || jsonb_build_object('workflow_meta', jsonb_build_object(
            '__horsies_type__', 'horsies_django.workflows.context:WorkflowMeta',
            'data', jsonb_build_object('workflow_id', wf.id, 'task_index', n.index,
                                       'task_name', n.task_name)));
    END IF;
    IF n.wants_ctx THEN
        SELECT coalesce(jsonb_object_agg(u.node_id, u.result), '{}') INTO results
        FROM horsies_workflow_node u
        WHERE u.workflow_id = n.workflow_id AND u.index = ANY(n.workflow_ctx_from)
          AND u.status IN ('COMPLETED', 'FAILED');
        SELECT coalesce(jsonb_object_agg(u.node_id, jsonb_build_object(
                   'workflow_id', c.id, 'status', c.status, 'output', c.result,
                   'total_nodes', c.node_count,
                   'completed_nodes', (SELECT count(*) FROM horsies_workflow_node x
                                       WHERE x.workflow_id = c.id AND x.status = 'COMPLETED'),
                   'failed_nodes', (SELECT count(*) FROM horsies_workflow_node x
                                    WHERE x.workflow_id = c.id AND x.status = 'FAILED'),
                   'skipped_nodes', (SELECT count(*) FROM horsies_workflow_node x
                                     WHERE x.workflow_id = c.id AND x.status = 'SKIPPED'))),
               '{}') INTO summaries
        FROM horsies_workflow_node u JOIN horsies_workflow c ON c.id = u.sub_workflow_id
        WHERE u.workflow_id = n.workflow_id AND u.index = ANY(n.workflow_ctx_from)
          AND u.kind = 'subworkflow' AND u.status IN ('COMPLETED', 'FAILED');
        kwargs := kwargs || jsonb_build_object('workflow_ctx', jsonb_build_object(
            '__horsies_type__', 'horsies_django.workflows.context:WorkflowContext',
            'data', jsonb_build_object('workflow_id', wf.id, 'task_index', n.index,
                                       'task_name', n.task_name, 'results', results,
                                       'summaries', summaries)));
    END IF;
    RETURN kwargs;
END $$;

-- Ending a workflow: as in 0008, but an output node skipped while a success policy was met
-- gives an UPSTREAM_SKIPPED error as the workflow's result instead of none.
CREATE OR REPLACE FUNCTION horsies_wf_finish(wf_id uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    wf horsies_workflow;
    failed horsies_workflow_node;
    succeeded boolean;
    outcome jsonb;
    node_outcome jsonb;
BEGIN
    SELECT * INTO wf FROM horsies_workflow WHERE id = wf_id;
    IF wf.success_policy IS NULL THEN
        SELECT * INTO failed FROM horsies_workflow_node
        WHERE workflow_id = wf_id AND status = 'FAILED' ORDER BY index LIMIT 1;
        succeeded := failed.id IS NULL;
    ELSE
        succeeded := EXISTS (
            SELECT 1 FROM jsonb_array_elements(wf.success_policy -> 'cases') AS c(required)
            WHERE NOT EXISTS (
                SELECT 1 FROM jsonb_array_elements_text(c.required) AS r(idx)
                JOIN horsies_workflow_node u ON u.workflow_id = wf_id AND u.index = r.idx::int
                WHERE u.status <> 'COMPLETED'));
        IF NOT succeeded THEN
            SELECT * INTO failed FROM horsies_workflow_node u
            WHERE u.workflow_id = wf_id AND u.status = 'FAILED'
              AND u.index IN (SELECT r.idx::int
                              FROM jsonb_array_elements(wf.success_policy -> 'cases') AS c(req),
                                   jsonb_array_elements_text(c.req) AS r(idx))
            ORDER BY u.index LIMIT 1;
        END IF;
    END IF;
    IF succeeded THEN
        IF wf.output_index IS NOT NULL THEN
            SELECT coalesce(u.result, jsonb_build_object('err', jsonb_build_object(
                       'error_code', 'UPSTREAM_SKIPPED',
                       'message', format('output node %s was skipped (the success policy was '
                                         'met without it)', u.node_id),
                       'data', NULL, 'exception', NULL)))
            INTO outcome FROM horsies_workflow_node u
            WHERE u.workflow_id = wf_id AND u.index = wf.output_index;
        ELSE
            SELECT jsonb_build_object('ok', coalesce(jsonb_object_agg(u.node_id, u.result), '{}'))
            INTO outcome FROM horsies_workflow_node u
            WHERE u.workflow_id = wf_id AND cardinality(u.dependants) = 0;
        END IF;
    ELSIF failed.id IS NOT NULL THEN
        outcome := failed.result;
    ELSE
        outcome := jsonb_build_object('err', jsonb_build_object(
            'error_code', 'WORKFLOW_SUCCESS_CASE_NOT_MET',
            'message', 'no success case has all its required nodes COMPLETED',
            'data', NULL, 'exception', NULL));
    END IF;
    UPDATE horsies_workflow
    SET status = CASE WHEN succeeded THEN 'COMPLETED' ELSE 'FAILED' END,
        result = outcome, finished_at = now(),
        error_code = CASE WHEN succeeded THEN NULL ELSE outcome -> 'err' ->> 'error_code' END,
        failed_reason = CASE WHEN succeeded THEN NULL ELSE outcome -> 'err' ->> 'message' END
    WHERE id = wf_id;
    PERFORM pg_notify('horsies_workflow_done', wf_id::text);
    IF wf.parent_workflow_id IS NOT NULL THEN
        PERFORM 1 FROM horsies_workflow WHERE id = wf.parent_workflow_id FOR UPDATE;
        node_outcome := CASE WHEN succeeded THEN outcome ELSE jsonb_build_object('err',
            jsonb_build_object('error_code', 'SUBWORKFLOW_FAILED',
                               'message', format('subworkflow %s failed: %s', wf.name,
                                                 outcome -> 'err' ->> 'message'),
                               'data', outcome -> 'err', 'exception', NULL)) END;
        UPDATE horsies_workflow_node
        SET status = CASE WHEN succeeded THEN 'COMPLETED' ELSE 'FAILED' END,
            result = node_outcome, completed_at = now(),
            error_code = CASE WHEN succeeded THEN NULL ELSE 'SUBWORKFLOW_FAILED' END
        WHERE workflow_id = wf.parent_workflow_id AND index = wf.parent_node_index
          AND status = 'ENQUEUED';
        IF FOUND THEN
            PERFORM horsies_wf_node_failed_pause(wf.parent_workflow_id, NOT succeeded);
            PERFORM horsies_wf_settle(wf.parent_workflow_id, ARRAY[wf.parent_node_index]);
        END IF;
    END IF;
END $$;

CREATE FUNCTION horsies_wf_lock_tree(wf_id uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    root uuid;
BEGIN
    SELECT root_workflow_id INTO root FROM horsies_workflow WHERE id = wf_id;
    PERFORM 1 FROM horsies_workflow WHERE id = root FOR UPDATE;
    IF root IS DISTINCT FROM wf_id THEN
        PERFORM 1 FROM horsies_workflow WHERE id = wf_id FOR UPDATE;
    END IF;
END $$;

CREATE FUNCTION horsies_wf_stop(wf_id uuid, final_status text, code text, message text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    wf horsies_workflow;
    stopped_tasks uuid[];
BEGIN
    PERFORM horsies_wf_lock_tree(wf_id);
    UPDATE horsies_workflow SET status = final_status, finished_at = now(),
        error_code = code, failed_reason = message,
        result = jsonb_build_object('err', jsonb_build_object(
            'error_code', code, 'message', message, 'data', NULL, 'exception', NULL))
    WHERE id = wf_id AND status IN ('PENDING', 'RUNNING', 'PAUSED')
    RETURNING * INTO wf;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE horsies_workflow_node SET status = 'SKIPPED', completed_at = now()
    WHERE workflow_id = wf_id AND status IN ('PENDING', 'READY');
    WITH stopped AS (
        UPDATE horsies_workflow_node n SET status = 'SKIPPED', completed_at = now()
        FROM horsies_task t
        WHERE n.workflow_id = wf_id AND n.status = 'ENQUEUED' AND n.kind = 'task'
          AND t.id = n.task_id AND t.status IN ('PENDING', 'CLAIMED')
        RETURNING t.id
    )
    SELECT array_agg(id) INTO stopped_tasks FROM stopped;
    UPDATE horsies_task SET status = 'CANCELLED', error_code = 'TASK_CANCELLED',
        failed_reason = format('its workflow ended %s: %s', final_status, message),
        finished_at = now(), claimed_by = NULL, claim_expires_at = NULL
    WHERE id = ANY(stopped_tasks) AND status IN ('PENDING', 'CLAIMED');
    PERFORM horsies_wf_stop(w.id, final_status, code, message)
    FROM horsies_workflow w WHERE w.parent_workflow_id = wf_id ORDER BY w.id;
    IF wf.parent_workflow_id IS NOT NULL THEN
        UPDATE horsies_workflow_node
        SET status = 'FAILED', error_code = 'SUBWORKFLOW_FAILED', completed_at = now(),
            result = jsonb_build_object('err', jsonb_build_object(
                'error_code', 'SUBWORKFLOW_FAILED',
                'message', format('subworkflow %s ended %s: %s', wf.name, final_status, message),
                'data', wf.result -> 'err', 'exception', NULL))
        WHERE workflow_id = wf.parent_workflow_id AND index = wf.parent_node_index
          AND status = 'ENQUEUED';
        IF FOUND AND EXISTS (SELECT 1 FROM horsies_workflow
                             WHERE id = wf.parent_workflow_id AND status IN ('RUNNING', 'PAUSED'))
        THEN
            PERFORM horsies_wf_node_failed_pause(wf.parent_workflow_id, true);
            PERFORM horsies_wf_settle(wf.parent_workflow_id, ARRAY[wf.parent_node_index]);
        END IF;
    END IF;
    PERFORM pg_notify('horsies_workflow_done', wf_id::text);
    RETURN true;
END $$;

CREATE OR REPLACE FUNCTION horsies_wf_cancel(wf_id uuid) RETURNS boolean
LANGUAGE sql AS $$
    SELECT horsies_wf_stop(wf_id, 'CANCELLED', 'WORKFLOW_CANCELLED', 'workflow cancelled')
$$;

CREATE FUNCTION horsies_wf_expire_paused(after interval, max_workflows integer DEFAULT 100)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    wf_id uuid;
    expired integer := 0;
BEGIN
    FOR wf_id IN
        SELECT w.id FROM horsies_workflow w
        WHERE w.status = 'PAUSED' AND w.paused_at <= now() - after
        ORDER BY w.root_workflow_id, w.depth, w.id
        LIMIT max_workflows
    LOOP
        IF horsies_wf_stop(wf_id, 'EXPIRED', 'WORKFLOW_EXPIRED',
                           format('paused for longer than %s', after)) THEN
            expired := expired + 1;
        END IF;
    END LOOP;
    RETURN expired;
END $$;

CREATE OR REPLACE FUNCTION horsies_wf_pause(wf_id uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    abandoned uuid[];
BEGIN
    PERFORM horsies_wf_lock_tree(wf_id);
    UPDATE horsies_workflow SET status = 'PAUSED', paused_at = now()
    WHERE id = wf_id AND status = 'RUNNING';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    WITH back AS (
        UPDATE horsies_workflow_node n SET status = 'READY', task_id = NULL, started_at = NULL
        FROM horsies_task t
        WHERE n.workflow_id = wf_id AND n.status = 'ENQUEUED' AND n.kind = 'task'
          AND t.id = n.task_id AND t.status = 'PENDING'
        RETURNING t.id
    )
    SELECT array_agg(id) INTO abandoned FROM back;
    UPDATE horsies_task SET status = 'CANCELLED', error_code = 'TASK_CANCELLED',
        failed_reason = 'abandoned: its workflow was paused', finished_at = now()
    WHERE id = ANY(abandoned) AND status = 'PENDING';
    PERFORM horsies_wf_pause(w.id) FROM horsies_workflow w
    WHERE w.parent_workflow_id = wf_id AND w.status = 'RUNNING';
    RETURN true;
END $$;

CREATE OR REPLACE FUNCTION horsies_wf_resume(wf_id uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    wf horsies_workflow;
BEGIN
    PERFORM horsies_wf_lock_tree(wf_id);
    UPDATE horsies_workflow SET status = 'RUNNING', paused_at = NULL
    WHERE id = wf_id AND status = 'PAUSED'
    RETURNING * INTO wf;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM horsies_wf_resume(w.id) FROM horsies_workflow w
    WHERE w.parent_workflow_id = wf_id AND w.status = 'PAUSED';
    PERFORM horsies_wf_enqueue(wf_id);
    IF wf.nodes_done >= wf.node_count THEN
        PERFORM horsies_wf_finish(wf_id);
    END IF;
    RETURN true;
END $$;

CREATE OR REPLACE FUNCTION horsies_wf_repair(max_workflows integer DEFAULT 100) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    wf_id uuid;
    terminal_nodes integer[];
    repaired integer := 0;
BEGIN
    FOR wf_id IN
        SELECT w.id FROM horsies_workflow w
        WHERE w.status IN ('RUNNING', 'PAUSED')
          AND (EXISTS (SELECT 1 FROM horsies_workflow_node n JOIN horsies_task t ON t.id = n.task_id
                       WHERE n.workflow_id = w.id AND n.status = 'ENQUEUED' AND n.kind = 'task'
                         AND t.status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED'))
               OR (w.status = 'RUNNING' AND EXISTS (
                       SELECT 1 FROM horsies_workflow_node n
                       WHERE n.workflow_id = w.id AND n.status = 'READY'))
               OR EXISTS (SELECT 1 FROM horsies_workflow_node n
                          WHERE n.workflow_id = w.id AND n.status = 'PENDING'
                            AND n.deps_done <> (
                                SELECT count(*) FROM horsies_workflow_node d
                                WHERE d.workflow_id = w.id AND d.index = ANY(n.waits_for)
                                  AND d.status IN ('COMPLETED', 'FAILED', 'SKIPPED')))
               OR w.nodes_done <> (SELECT count(*) FROM horsies_workflow_node n
                                   WHERE n.workflow_id = w.id
                                     AND n.status IN ('COMPLETED', 'FAILED', 'SKIPPED')))
        ORDER BY w.root_workflow_id, w.id
        LIMIT max_workflows
    LOOP
        PERFORM horsies_wf_lock_tree(wf_id);
        PERFORM horsies_wf_mark_ended(wf_id);  -- nodes whose task ended, as the trigger would
        -- Every PENDING node is counted again from its dependencies' statuses.
        UPDATE horsies_workflow_node SET deps_done = 0, deps_ok = 0
        WHERE workflow_id = wf_id AND status = 'PENDING';
        SELECT array_agg(index ORDER BY index) INTO terminal_nodes FROM horsies_workflow_node
        WHERE workflow_id = wf_id AND status IN ('COMPLETED', 'FAILED', 'SKIPPED');
        -- Settling counts the terminal nodes again, into their dependants and the workflow;
        -- it enqueues what is READY and ends the workflow when every node has ended.
        UPDATE horsies_workflow SET nodes_done = 0 WHERE id = wf_id;
        PERFORM horsies_wf_settle(wf_id, coalesce(terminal_nodes, '{}'));
        repaired := repaired + 1;
    END LOOP;
    RETURN repaired;
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
"""


def _previous_engine() -> str:
    """Migration 0008's functions, replacing this migration's versions (its trigger stays)."""
    previous = importlib.import_module("horsies_django.migrations.0008_workflows")
    functions, _, _ = previous.FORWARD.partition("CREATE TRIGGER horsies_task_wf_advance")
    return functions.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")


REVERSE = (
    _previous_engine()
    + """
DROP FUNCTION IF EXISTS horsies_wf_expire_paused(interval, integer);
DROP FUNCTION IF EXISTS horsies_wf_stop(uuid, text, text, text);
DROP FUNCTION IF EXISTS horsies_wf_lock_tree(uuid);
"""
)


class Migration(migrations.Migration):
    dependencies = [
        ("horsies_django", "0008_workflows"),
    ]

    operations = [
        migrations.AddField(
            model_name="workflow",
            name="paused_at",
            field=models.DateTimeField(
                blank=True, help_text="When it was last paused (cleared on resume).", null=True
            ),
        ),
        migrations.RunSQL(FORWARD, REVERSE),
    ]
