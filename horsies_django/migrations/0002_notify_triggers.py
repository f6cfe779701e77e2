"""NOTIFY triggers: workers wake on new eligible tasks, waiters wake on finished tasks."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION horsies_notify_task_new_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('horsies_task_new', q.queue_name)
    FROM (SELECT DISTINCT queue_name FROM new_rows WHERE status = 'PENDING') q;
    RETURN NULL;
END $$;

CREATE FUNCTION horsies_notify_task_new_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('horsies_task_new', NEW.queue_name);
    RETURN NULL;
END $$;

CREATE FUNCTION horsies_notify_task_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('horsies_task_done', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER horsies_task_new_insert
    AFTER INSERT ON horsies_task REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION horsies_notify_task_new_rows();

CREATE TRIGGER horsies_task_new_update
    AFTER UPDATE OF status ON horsies_task
    FOR EACH ROW WHEN (NEW.status = 'PENDING' AND OLD.status <> 'PENDING')
    EXECUTE FUNCTION horsies_notify_task_new_row();

CREATE TRIGGER horsies_task_done_update
    AFTER UPDATE OF status ON horsies_task
    FOR EACH ROW WHEN (
        NEW.status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED')
        AND OLD.status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED'))
    EXECUTE FUNCTION horsies_notify_task_done();
"""

REVERSE = """
DROP TRIGGER IF EXISTS horsies_task_done_update ON horsies_task;
DROP TRIGGER IF EXISTS horsies_task_new_update ON horsies_task;
DROP TRIGGER IF EXISTS horsies_task_new_insert ON horsies_task;
DROP FUNCTION IF EXISTS horsies_notify_task_done();
DROP FUNCTION IF EXISTS horsies_notify_task_new_row();
DROP FUNCTION IF EXISTS horsies_notify_task_new_rows();
"""


class Migration(migrations.Migration):
    dependencies = [("horsies_django", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
