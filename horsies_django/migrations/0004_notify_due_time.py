"""New-task notifications carry when the task becomes due, so workers set a timer for delayed
tasks instead of querying for the next due time: payload "<queue> <milliseconds until due>"."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION horsies_notify_task_new_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'horsies_task_new',
        q.queue_name || ' ' || round(extract(epoch FROM (q.due - statement_timestamp())) * 1000)::bigint)
    FROM (SELECT queue_name, min(enqueued_at) AS due FROM new_rows
          WHERE status = 'PENDING' GROUP BY queue_name) q;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION horsies_notify_task_new_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'horsies_task_new',
        NEW.queue_name || ' ' || round(extract(epoch FROM (NEW.enqueued_at - statement_timestamp())) * 1000)::bigint);
    RETURN NULL;
END $$;
"""

REVERSE = """
CREATE OR REPLACE FUNCTION horsies_notify_task_new_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('horsies_task_new', q.queue_name)
    FROM (SELECT DISTINCT queue_name FROM new_rows WHERE status = 'PENDING') q;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION horsies_notify_task_new_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('horsies_task_new', NEW.queue_name);
    RETURN NULL;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("horsies_django", "0003_admin_permissions_and_indexes")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
