"""Hot-path write costs.

- Finished tasks are announced once per statement, not once per row: the payload of
  `horsies_task_done` is a comma-separated list of task ids (at most 200 per notification).
- Attempts lose their separate index on `task_id`: the unique (task, attempt) index serves
  every lookup by task, and one index less is written per attempt.
"""

import django.db.models.deletion
from django.db import migrations, models

TERMINAL = "('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED')"

FORWARD = f"""
DROP TRIGGER IF EXISTS horsies_task_done_update ON horsies_task;
DROP FUNCTION IF EXISTS horsies_notify_task_done();

CREATE FUNCTION horsies_notify_tasks_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('horsies_task_done', chunk.ids)
    FROM (
        SELECT string_agg(done.id::text, ',') AS ids
        FROM (
            SELECT n.id, (row_number() OVER () - 1) / 200 AS part
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.status IN {TERMINAL} AND o.status NOT IN {TERMINAL}
        ) done
        GROUP BY done.part
    ) chunk;
    RETURN NULL;
END $$;

CREATE TRIGGER horsies_task_done_update
    AFTER UPDATE ON horsies_task
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION horsies_notify_tasks_done();
"""

REVERSE = f"""
DROP TRIGGER IF EXISTS horsies_task_done_update ON horsies_task;
DROP FUNCTION IF EXISTS horsies_notify_tasks_done();

CREATE FUNCTION horsies_notify_task_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('horsies_task_done', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER horsies_task_done_update
    AFTER UPDATE OF status ON horsies_task
    FOR EACH ROW WHEN (NEW.status IN {TERMINAL} AND OLD.status NOT IN {TERMINAL})
    EXECUTE FUNCTION horsies_notify_task_done();
"""


class Migration(migrations.Migration):
    dependencies = [("horsies_django", "0004_notify_due_time")]

    operations = [
        migrations.AlterField(
            model_name="taskattempt",
            name="task",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attempts",
                to="horsies_django.task",
            ),
        ),
        migrations.RunSQL(FORWARD, REVERSE),
    ]
