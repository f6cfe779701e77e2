"""New-task notifications from a row-level trigger, so a single send costs the server less.

The statement-level trigger of 0002/0004 read its transition table with a GROUP BY: about half
of a one-row INSERT's server time (23-25 of 47-52 µs in EXPLAIN ANALYZE). This trigger runs
once per row and evaluates only PL/pgSQL "simple expressions", which skip the executor (a
`PERFORM` would run a query per row). PostgreSQL drops a notification whose channel and payload
were already sent in the transaction, so the rows of one statement that are due now still send
one notification per queue; delayed rows send one per distinct due time. The payload is as
before: "<queue> <milliseconds until due>", 0 for a row due now (docs/performance.md, "Issue 19:
the server's cost of a send": 9-10 µs now; a 100-row send_many pays 0.8-1.5 µs a row).
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION horsies_notify_task_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sent boolean;
BEGIN
    IF NEW.status <> 'PENDING' THEN
        RETURN NULL;
    END IF;
    IF NEW.enqueued_at <= statement_timestamp() THEN
        sent := pg_notify('horsies_task_new', NEW.queue_name || ' 0') IS NOT NULL;
    ELSE
        sent := pg_notify(
            'horsies_task_new',
            NEW.queue_name || ' ' || round(extract(epoch FROM (
                NEW.enqueued_at - statement_timestamp())) * 1000)::bigint::text) IS NOT NULL;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER horsies_task_new_insert ON horsies_task;
DROP FUNCTION horsies_notify_task_new_rows();
CREATE TRIGGER horsies_task_new_insert
    AFTER INSERT ON horsies_task
    FOR EACH ROW EXECUTE FUNCTION horsies_notify_task_inserted();
"""

REVERSE = """
DROP TRIGGER horsies_task_new_insert ON horsies_task;
DROP FUNCTION horsies_notify_task_inserted();
CREATE FUNCTION horsies_notify_task_new_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'horsies_task_new',
        q.queue_name || ' ' || round(extract(epoch FROM (q.due - statement_timestamp())) * 1000)::bigint)
    FROM (SELECT queue_name, min(enqueued_at) AS due FROM new_rows
          WHERE status = 'PENDING' GROUP BY queue_name) q;
    RETURN NULL;
END $$;
CREATE TRIGGER horsies_task_new_insert
    AFTER INSERT ON horsies_task REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION horsies_notify_task_new_rows();
"""


class Migration(migrations.Migration):
    dependencies = [("horsies_django", "0010_schedules")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
