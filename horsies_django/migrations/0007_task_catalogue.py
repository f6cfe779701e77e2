"""The SQL contract v1 for senders in other languages (docs/foreign-producers.md).

- `horsies_task_catalogue`: the registered tasks (queue, retry policy, timeout, parameters),
  kept current by `migrate` and by workers.
- `horsies_send(task_name, kwargs, options)`: a send, filled from the catalogue exactly as a
  Python send fills it; errors carry their own SQLSTATE (HZ001-HZ004) and the send error code.
- `horsies_result(task_id)`: a task's status and its result or error, as plain JSON.
- `horsies_enqueue_sha(...)`, `horsies_canonical_json(jsonb)`: the replay identity of a send.
- `horsies_uuid7()`: a time-ordered task id, as Python's sends make.
"""

from django.db import migrations, models

FORWARD = r"""
CREATE FUNCTION horsies_contract_version() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1 $$;

CREATE FUNCTION horsies_uuid7() RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$
BEGIN
    RETURN encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid;
END $$;

-- The scalar cases are written out in each query: a SQL function called per element is not
-- inlined there, and would cost more than the rest of the query.
CREATE FUNCTION horsies_canonical_json(value jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    text_out text;
BEGIN
    CASE jsonb_typeof(value)
    WHEN 'object' THEN
        SELECT '{' || coalesce(string_agg(to_json(e.key)::text || ':' ||
            CASE jsonb_typeof(e.value)
                WHEN 'number' THEN trim_scale((e.value #>> '{}')::numeric)::text
                WHEN 'string' THEN to_json(e.value #>> '{}')::text
                WHEN 'object' THEN horsies_canonical_json(e.value)
                WHEN 'array' THEN horsies_canonical_json(e.value)
                ELSE e.value::text  -- true, false, null
            END, ',' ORDER BY e.key COLLATE "C"), '') || '}'
        INTO text_out FROM jsonb_each(value) AS e;
    WHEN 'array' THEN
        SELECT '[' || coalesce(string_agg(
            CASE jsonb_typeof(a.value)
                WHEN 'number' THEN trim_scale((a.value #>> '{}')::numeric)::text
                WHEN 'string' THEN to_json(a.value #>> '{}')::text
                WHEN 'object' THEN horsies_canonical_json(a.value)
                WHEN 'array' THEN horsies_canonical_json(a.value)
                ELSE a.value::text
            END, ',' ORDER BY a.n), '') || ']'
        INTO text_out FROM jsonb_array_elements(value) WITH ORDINALITY AS a(value, n);
    WHEN 'number' THEN
        text_out := trim_scale((value #>> '{}')::numeric)::text;
    WHEN 'string' THEN
        text_out := to_json(value #>> '{}')::text;
    ELSE
        text_out := value::text;
    END CASE;
    RETURN text_out;
END $$;

CREATE FUNCTION horsies_enqueue_sha(
    task_id uuid, task_name text, queue_name text, priority integer, kwargs jsonb,
    delay_ms bigint, good_until timestamptz
) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN encode(sha256(convert_to(
        '{"delay_ms":' || coalesce(delay_ms::text, 'null')
        || ',"good_until":' || coalesce(
            to_json(to_char(good_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text,
            'null')
        || ',"kwargs":' || horsies_canonical_json(kwargs)
        || ',"priority":' || priority::text
        || ',"queue_name":' || to_json(queue_name)::text
        || ',"task_id":' || to_json(task_id::text)::text
        || ',"task_name":' || to_json(task_name)::text
        || '}', 'UTF8')), 'hex');
END $$;

CREATE FUNCTION horsies_send(task_name text, kwargs jsonb, options jsonb DEFAULT '{}')
RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    entry horsies_task_catalogue%ROWTYPE;
    known text[];
    required text[];
    opts jsonb := coalesce(horsies_send.options, '{}');
    problem text;
    new_id uuid;
    delay_ms bigint;
    good_until timestamptz;
    priority integer := 50;
    sha text;
    stored_sha text;
BEGIN
    SELECT c.task_name, c.queue_name, c.max_retries, c.timeout_ms, c.options, c.parameters,
        c.required_parameters, ARRAY(SELECT jsonb_array_elements_text(c.parameters)),
        ARRAY(SELECT jsonb_array_elements_text(c.required_parameters))
    INTO entry.task_name, entry.queue_name, entry.max_retries, entry.timeout_ms, entry.options,
        entry.parameters, entry.required_parameters, known, required
    FROM horsies_task_catalogue c WHERE c.task_name = horsies_send.task_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'HZ001',
            MESSAGE = format('VALIDATION_FAILED: no task %s is registered '
                             '(horsies_task_catalogue has no row for it)', horsies_send.task_name),
            HINT = 'Define it with @app.task in a module of HORSIES["TASK_MODULES"], deploy it, '
                   'then run "manage.py migrate" or start a worker: both refresh the catalogue.';
    END IF;

    IF kwargs IS NULL OR jsonb_typeof(kwargs) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'HZ002',
            MESSAGE = format('VALIDATION_FAILED: the kwargs of %s must be a JSON object of '
                             'keyword arguments, not %s', entry.task_name,
                             coalesce(jsonb_typeof(kwargs), 'NULL')),
            HINT = format('Pass e.g. jsonb_build_object(...) with the parameters %s.',
                          entry.parameters);
    END IF;
    IF (kwargs - known) <> '{}' THEN
        SELECT string_agg(k, ', ' ORDER BY k) INTO problem
        FROM jsonb_object_keys(kwargs - known) AS k;
        RAISE EXCEPTION USING ERRCODE = 'HZ002',
            MESSAGE = format('VALIDATION_FAILED: %s has no parameter(s) %s', entry.task_name,
                             problem),
            HINT = format('Its parameters are %s.', entry.parameters);
    END IF;
    IF NOT kwargs ?& required THEN
        SELECT string_agg(p, ', ' ORDER BY p) INTO problem
        FROM unnest(required) AS p WHERE NOT kwargs ? p;
        RAISE EXCEPTION USING ERRCODE = 'HZ002',
            MESSAGE = format('VALIDATION_FAILED: %s is missing the required parameter(s) %s',
                             entry.task_name, problem),
            HINT = format('Its required parameters are %s.', entry.required_parameters);
    END IF;

    IF jsonb_typeof(opts) <> 'object' THEN
        problem := format('options must be a JSON object, not %s', jsonb_typeof(opts));
    END IF;
    IF problem IS NULL
       AND (opts - ARRAY['delay_ms', 'good_until', 'priority', 'task_id', 'enqueue_sha',
                         'sender']) <> '{}' THEN
        SELECT 'unknown option(s) ' || string_agg(k, ', ' ORDER BY k) INTO problem
        FROM jsonb_object_keys(opts - ARRAY['delay_ms', 'good_until', 'priority', 'task_id',
                                            'enqueue_sha', 'sender']) AS k;
    END IF;
    IF problem IS NULL AND opts ? 'delay_ms' AND jsonb_typeof(opts -> 'delay_ms') <> 'null' THEN
        IF jsonb_typeof(opts -> 'delay_ms') <> 'number'
           OR (opts ->> 'delay_ms')::numeric <> trunc((opts ->> 'delay_ms')::numeric)
           OR (opts ->> 'delay_ms')::numeric NOT BETWEEN 0 AND 315360000000 THEN
            problem := format('delay_ms=%s must be a whole number of milliseconds from 0 '
                              'to 315360000000 (10 years)', opts -> 'delay_ms');
        ELSE
            delay_ms := (opts ->> 'delay_ms')::bigint;
        END IF;
    END IF;
    IF problem IS NULL AND opts ? 'priority' AND jsonb_typeof(opts -> 'priority') <> 'null' THEN
        IF jsonb_typeof(opts -> 'priority') <> 'number'
           OR (opts ->> 'priority')::numeric <> trunc((opts ->> 'priority')::numeric)
           OR (opts ->> 'priority')::numeric NOT BETWEEN 1 AND 100 THEN
            problem := format('priority=%s must be a whole number from 1 (first) to 100',
                              opts -> 'priority');
        ELSE
            priority := (opts ->> 'priority')::integer;
        END IF;
    END IF;
    IF problem IS NULL AND opts ? 'good_until' AND jsonb_typeof(opts -> 'good_until') <> 'null' THEN
        IF jsonb_typeof(opts -> 'good_until') <> 'string'
           OR (opts ->> 'good_until') !~ '^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|z|[+-]\d\d(:?\d\d)?)$' THEN
            problem := format('good_until=%s must be an RFC 3339 timestamp with its offset, '
                              'e.g. "2030-01-01T12:00:00Z"', opts -> 'good_until');
        ELSE
            good_until := (opts ->> 'good_until')::timestamptz;
        END IF;
    END IF;
    IF problem IS NULL AND opts ? 'task_id' AND jsonb_typeof(opts -> 'task_id') <> 'null' THEN
        IF (opts ->> 'task_id') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
            problem := format('task_id=%s must be a UUID (hyphenated hex)', opts -> 'task_id');
        ELSE
            new_id := (opts ->> 'task_id')::uuid;
        END IF;
    END IF;
    IF problem IS NULL AND opts ? 'enqueue_sha' AND jsonb_typeof(opts -> 'enqueue_sha') <> 'null'
       AND (opts ->> 'enqueue_sha') !~ '^[0-9a-f]{64}$' THEN
        problem := format('enqueue_sha=%s must be 64 lowercase hex digits', opts -> 'enqueue_sha');
    END IF;
    IF problem IS NULL AND opts ? 'sender' AND (jsonb_typeof(opts -> 'sender') <> 'string'
       OR length(opts ->> 'sender') NOT BETWEEN 1 AND 64) THEN
        problem := format('sender=%s must be a name of 1 to 64 characters, e.g. "rust"',
                          opts -> 'sender');
    END IF;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'HZ003',
            MESSAGE = format('VALIDATION_FAILED: %s: %s', entry.task_name, problem),
            HINT = 'Options are delay_ms, good_until, priority, task_id, enqueue_sha and '
                   'sender (docs/foreign-producers.md).';
    END IF;

    new_id := coalesce(new_id, horsies_uuid7());
    sha := horsies_enqueue_sha(new_id, entry.task_name, entry.queue_name, priority, kwargs,
                               delay_ms, good_until);
    IF opts ->> 'enqueue_sha' IS NOT NULL AND opts ->> 'enqueue_sha' <> sha THEN
        RAISE EXCEPTION USING ERRCODE = 'HZ004',
            MESSAGE = format('PAYLOAD_MISMATCH: the enqueue_sha given for task %s does not match '
                             'its payload (the database computes %s)', new_id, sha),
            HINT = 'Compute enqueue_sha as docs/foreign-producers.md specifies, or leave it out.';
    END IF;

    INSERT INTO horsies_task AS t (
        id, task_name, queue_name, priority, status, kwargs, sent_at, enqueued_at, good_until,
        timeout_ms, retry_count, max_retries, options, enqueue_sha, claim_gen, sent_by)
    VALUES (new_id, entry.task_name, entry.queue_name, priority, 'PENDING', kwargs,
        statement_timestamp(),
        statement_timestamp() + make_interval(secs => coalesce(delay_ms, 0) / 1000.0),
        good_until, entry.timeout_ms, 0, entry.max_retries, entry.options, sha, 0,
        coalesce(opts ->> 'sender', nullif(current_setting('application_name', true), ''),
                 'sql'))
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN  -- a replay: the same payload is the same send, another is refused
        SELECT t.enqueue_sha INTO stored_sha FROM horsies_task t WHERE t.id = new_id;
        IF stored_sha IS DISTINCT FROM sha THEN
            RAISE EXCEPTION USING ERRCODE = 'HZ004',
                MESSAGE = format('PAYLOAD_MISMATCH: task %s was sent before with a different '
                                 'payload', new_id),
                HINT = 'A replay must carry the identical payload; send anew without task_id.';
        END IF;
    END IF;
    RETURN new_id;
END $$;

CREATE FUNCTION horsies_plain(value jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    plain jsonb;
BEGIN
    CASE jsonb_typeof(value)
    WHEN 'object' THEN
        IF value ? '__horsies_type__' THEN
            RETURN horsies_plain(coalesce(value -> 'data', 'null'));
        END IF;
        SELECT coalesce(jsonb_object_agg(e.key, horsies_plain(e.value)), '{}')
        INTO plain FROM jsonb_each(value) AS e;
        RETURN plain;
    WHEN 'array' THEN
        SELECT coalesce(jsonb_agg(horsies_plain(a.value) ORDER BY a.n), '[]')
        INTO plain FROM jsonb_array_elements(value) WITH ORDINALITY AS a(value, n);
        RETURN plain;
    ELSE
        RETURN value;
    END CASE;
END $$;

CREATE FUNCTION horsies_result(task_id uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (
        SELECT CASE
            WHEN t.status = 'COMPLETED' THEN
                jsonb_build_object('status', t.status,
                                   'ok', horsies_plain(coalesce(t.result -> 'ok', 'null')))
            WHEN t.status = 'FAILED' AND t.result ? 'err' THEN
                jsonb_build_object('status', t.status, 'err', jsonb_build_object(
                    'error_code', t.result -> 'err' -> 'error_code',
                    'message', t.result -> 'err' -> 'message',
                    'data', horsies_plain(coalesce(t.result -> 'err' -> 'data', 'null'))))
            WHEN t.status IN ('FAILED', 'CANCELLED', 'EXPIRED') THEN
                jsonb_build_object('status', t.status, 'err', jsonb_build_object(
                    'error_code', t.error_code, 'message', t.failed_reason, 'data', NULL))
            ELSE jsonb_build_object('status', t.status)
        END
        FROM horsies_task t WHERE t.id = horsies_result.task_id);
END $$;
"""

REVERSE = """
DROP FUNCTION IF EXISTS horsies_result(uuid);
DROP FUNCTION IF EXISTS horsies_plain(jsonb);
DROP FUNCTION IF EXISTS horsies_send(text, jsonb, jsonb);
DROP FUNCTION IF EXISTS horsies_enqueue_sha(uuid, text, text, integer, jsonb, bigint, timestamptz);
DROP FUNCTION IF EXISTS horsies_canonical_json(jsonb);
DROP FUNCTION IF EXISTS horsies_uuid7();
DROP FUNCTION IF EXISTS horsies_contract_version();
"""


class Migration(migrations.Migration):
    dependencies = [("horsies_django", "0006_worker_stop_reason")]

    operations = [
        migrations.CreateModel(
            name="TaskCatalogueEntry",
            fields=[
                ("task_name", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("queue_name", models.CharField(max_length=64)),
                ("max_retries", models.IntegerField(default=0)),
                ("timeout_ms", models.IntegerField(blank=True, null=True)),
                (
                    "options",
                    models.JSONField(
                        default=dict, help_text="What a send stores in horsies_task.options."
                    ),
                ),
                (
                    "parameters",
                    models.JSONField(default=list, help_text="Names of the keyword parameters."),
                ),
                (
                    "required_parameters",
                    models.JSONField(default=list, help_text="Those without a default."),
                ),
                ("updated_at", models.DateTimeField()),
            ],
            options={
                "verbose_name": "registered task",
                "db_table": "horsies_task_catalogue",
                "ordering": ["task_name"],
            },
        ),
        migrations.AddField(
            model_name="task",
            name="sent_by",
            field=models.CharField(
                db_default="python",
                editable=False,
                help_text="Where the send came from: python, or for horsies_send() its `sender` "
                "option or else the session's application_name (rust, psql, ...).",
                max_length=64,
            ),
        ),
        migrations.RunSQL(FORWARD, REVERSE),
    ]
