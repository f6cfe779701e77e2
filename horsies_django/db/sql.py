"""Every SQL statement of horsies_django, named, with a one-line purpose.

Status changes name the status they expect, and everything after the claim names the claim
generation it was given: a statement that finds neither changes nothing.
"""

from typing import Final

TASK_NEW_CHANNEL: Final = "horsies_task_new"
TASK_DONE_CHANNEL: Final = "horsies_task_done"

# --------------------------------------------------------------------------- sending

# Insert one PENDING task; eligibility time is computed by the server clock. A replayed send
# (same id) fails on the primary key and is told apart by its enqueue_sha; a plain INSERT costs
# the server less than a speculative `ON CONFLICT` one on this hot path.
INSERT_TASK: Final = """
INSERT INTO horsies_task (
    id, task_name, queue_name, priority, status, kwargs, sent_at, enqueued_at, good_until,
    timeout_ms, retry_count, max_retries, options, enqueue_sha, claim_gen)
VALUES (%s, %s, %s, %s, 'PENDING', %s::jsonb, statement_timestamp(),
    statement_timestamp() + make_interval(secs => %s), %s, %s, 0, %s, %s::jsonb, %s, 0)
"""

TASK_PRIMARY_KEY: Final = "horsies_task_pkey"

# Insert many PENDING tasks of one definition in one statement (send_many).
INSERT_TASKS_BULK: Final = """
INSERT INTO horsies_task (
    id, task_name, queue_name, priority, status, kwargs, sent_at, enqueued_at, good_until,
    timeout_ms, retry_count, max_retries, options, enqueue_sha, claim_gen)
SELECT t.id, %s, %s, %s, 'PENDING', t.kwargs::jsonb, statement_timestamp(),
    statement_timestamp() + make_interval(secs => %s), %s, %s, 0, %s, %s::jsonb, t.sha, 0
FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS t(id, kwargs, sha)
"""

# The sha of an existing task, to tell an idempotent replay from a conflicting one.
SELECT_ENQUEUE_SHA: Final = "SELECT enqueue_sha FROM horsies_task WHERE id = %s"

# --------------------------------------------------------------------------- reading

TASK_INFO_COLUMNS: Final = (
    "id, task_name, status, queue_name, priority, retry_count, max_retries, sent_at, "
    "enqueued_at, next_retry_at, good_until, claimed_at, started_at, finished_at, claimed_by, "
    "error_code"
)

# Everything `TaskHandle.info()` shows, optionally with result and failure reason.
SELECT_TASK_INFO: Final = f"""
SELECT {TASK_INFO_COLUMNS}, CASE WHEN %s THEN result END, CASE WHEN %s THEN failed_reason END
FROM horsies_task WHERE id = %s
"""

# Attempts of one task, newest first.
SELECT_ATTEMPTS: Final = """
SELECT attempt, outcome, will_retry, error_code, error_message, started_at, finished_at,
    worker_id, pid
FROM horsies_task_attempt WHERE task_id = %s ORDER BY attempt DESC
"""

# The fields `get()` needs to turn a finished row into a TaskResult.
SELECT_OUTCOME: Final = """
SELECT status, task_name, result::text, error_code, failed_reason
FROM horsies_task WHERE id = %s
"""

# --------------------------------------------------------------------------- claiming

# A claim generation is a random token, not a counter: a claim undone by a server crash (claims
# are committed asynchronously) can then never be confused with the next claim of the task.
NEW_GENERATION: Final = "1 + (random() * 9.0e18)::bigint"

# Claim and start up to `limit` eligible tasks across queues, in (queue priority, task
# priority, eligible time, id) order; each queue contributes at most its own limit. A worker
# claims only what its children will run at once or right after their current task, so the
# claim is the start (PENDING -> RUNNING in one write); `started_at` is corrected to the
# moment user code began when the outcome is recorded.
# Parameters: queue names, their ranks and per-queue limits (three arrays), the total limit, the
# worker id, the lease in seconds.
CLAIM: Final = f"""
WITH q AS (
    SELECT * FROM unnest(%s::text[], %s::int[], %s::int[]) AS q(name, rank, lim)
),
picked AS (
    SELECT c.id
    FROM q CROSS JOIN LATERAL (
        SELECT t.id, t.priority, t.enqueued_at
        FROM horsies_task t
        WHERE t.status = 'PENDING' AND t.queue_name = q.name
          AND t.enqueued_at <= now()
          AND (t.good_until IS NULL OR t.good_until > now())
        ORDER BY t.priority, t.enqueued_at, t.id
        LIMIT q.lim
        FOR UPDATE SKIP LOCKED
    ) c
    ORDER BY q.rank, c.priority, c.enqueued_at, c.id
    LIMIT %s
),
claimed AS (
    UPDATE horsies_task t
    SET status = 'RUNNING', claimed_by = %s, claim_gen = {NEW_GENERATION},
        claimed_at = now(), started_at = now(),
        claim_expires_at = now() + make_interval(secs => %s)
    FROM picked
    WHERE t.id = picked.id
    RETURNING t.*
)
SELECT c.id, c.task_name, c.kwargs::text, c.claim_gen, c.retry_count, c.options::text,
    extract(epoch FROM c.good_until)::float8, c.timeout_ms, c.queue_name
FROM claimed c JOIN q ON q.name = c.queue_name
ORDER BY q.rank, c.priority, c.enqueued_at, c.id
"""

# The same claim from a single queue (DEFAULT mode, or a worker given one queue): no per-queue
# lateral join, so it costs the server less than half as much. Parameters: the worker id, the
# lease in seconds, the queue, the limit. Both claims return their rows in claim order (an
# UPDATE's RETURNING has no order of its own), and the worker dispatches them in that order.
CLAIM_ONE_QUEUE: Final = f"""
WITH claimed AS (
    UPDATE horsies_task t
    SET status = 'RUNNING', claimed_by = %s, claim_gen = {NEW_GENERATION},
        claimed_at = now(), started_at = now(),
        claim_expires_at = now() + make_interval(secs => %s)
    WHERE t.id IN (
        SELECT c.id FROM horsies_task c
        WHERE c.status = 'PENDING' AND c.queue_name = %s AND c.enqueued_at <= now()
          AND (c.good_until IS NULL OR c.good_until > now())
        ORDER BY c.priority, c.enqueued_at, c.id
        LIMIT %s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING t.*
)
SELECT id, task_name, kwargs::text, claim_gen, retry_count, options::text,
    extract(epoch FROM good_until)::float8, timeout_ms, queue_name
FROM claimed
ORDER BY priority, enqueued_at, id
"""

# Seconds until the earliest PENDING task of these queues becomes eligible (None if none).
NEXT_DUE: Final = """
SELECT EXTRACT(EPOCH FROM (min(enqueued_at) - now()))::float8
FROM horsies_task
WHERE status = 'PENDING' AND queue_name = ANY(%s::text[]) AND enqueued_at > now()
"""

# CLAIMED/RUNNING tasks per queue, across the cluster (for concurrency caps).
ACTIVE_PER_QUEUE: Final = """
SELECT queue_name, count(*) FROM horsies_task
WHERE status IN ('CLAIMED', 'RUNNING') AND queue_name = ANY(%s::text[])
GROUP BY queue_name
"""

ACTIVE_TOTAL: Final = "SELECT count(*) FROM horsies_task WHERE status IN ('CLAIMED', 'RUNNING')"

# Serialises claimers of capped queues for the length of the claim transaction.
LOCK_CAPS: Final = "SELECT pg_advisory_xact_lock(%s)"

# --------------------------------------------------------------------------- running

# The worker's claim connection commits claims, heartbeats and maintenance without waiting for
# the WAL flush: each is visible at once to other sessions (so a cancel cannot race a claim),
# and a server crash that undoes one leaves nothing that the rescuer cannot recover.
# Outcomes are written on the completer's connection, durably.
ASYNC_SESSION: Final = "SELECT set_config('synchronous_commit', 'off', false)"

# Worker statements are short and run thousands of times a second: compiling them with JIT
# (which a large backlog's row estimates can trigger) costs far more than it saves.
NO_JIT_SESSION: Final = "SELECT set_config('jit', 'off', false)"

# Record a batch of outcomes, given as one JSON array of objects (cheap to build and to send):
# transition each still-fenced row and append its attempt (none for EXPIRED: the task never
# started). A row whose status or generation moved on is skipped, so applying a batch twice is a
# no-op. Returns the ids recorded. Times are epoch seconds.
FINISH: Final = """
WITH d AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS d(
        id uuid, gen bigint, new_status text, outcome text, result text, error_code text,
        failed_reason text, error_message text, will_retry boolean, traceback text,
        started_at double precision, finished_at double precision,
        retry_delay_s double precision, pid int, worker_id uuid)
),
done AS (
    UPDATE horsies_task t
    SET status = d.new_status,
        result = CASE WHEN d.new_status IN ('COMPLETED', 'FAILED') THEN d.result::jsonb END,
        error_code = CASE WHEN d.new_status IN ('FAILED', 'EXPIRED') THEN d.error_code END,
        failed_reason = CASE WHEN d.new_status IN ('FAILED', 'EXPIRED') THEN d.failed_reason END,
        started_at = CASE WHEN d.new_status <> 'EXPIRED'
            THEN coalesce(to_timestamp(d.started_at), t.started_at) END,
        finished_at = CASE WHEN d.will_retry THEN NULL ELSE to_timestamp(d.finished_at) END,
        retry_count = t.retry_count + d.will_retry::int,
        next_retry_at = CASE WHEN d.will_retry
            THEN now() + make_interval(secs => d.retry_delay_s) END,
        enqueued_at = CASE WHEN d.will_retry
            THEN now() + make_interval(secs => d.retry_delay_s) ELSE t.enqueued_at END,
        claimed_by = CASE WHEN d.will_retry THEN NULL ELSE t.claimed_by END,
        claim_expires_at = NULL
    FROM d
    WHERE t.id = d.id AND t.claim_gen = d.gen AND t.status IN ('CLAIMED', 'RUNNING')
    RETURNING t.id, t.retry_count - d.will_retry::int AS prior_retries
),
attempts AS (
    INSERT INTO horsies_task_attempt (
        task_id, attempt, outcome, will_retry, error_code, error_message, traceback, worker_id,
        pid, started_at, finished_at)
    SELECT d.id, done.prior_retries + 1, d.outcome, d.will_retry, d.error_code,
        d.error_message, d.traceback, d.worker_id, d.pid, to_timestamp(d.started_at),
        to_timestamp(d.finished_at)
    FROM done JOIN d ON d.id = done.id
    WHERE d.new_status <> 'EXPIRED'
)
SELECT id FROM done
"""

# Put tasks whose user code never started back to PENDING, fenced by generation; the claims
# are a JSON array of {id, gen} objects.
RELEASE_CLAIMS: Final = """
UPDATE horsies_task t
SET status = 'PENDING', claimed_by = NULL, claim_expires_at = NULL, started_at = NULL
FROM jsonb_to_recordset(%s::jsonb) AS d(id uuid, gen bigint)
WHERE t.id = d.id AND t.claim_gen = d.gen AND t.status IN ('CLAIMED', 'RUNNING')
RETURNING t.id
"""

# --------------------------------------------------------------------------- workers

REGISTER_WORKER: Final = """
INSERT INTO horsies_worker (id, name, hostname, pid, processes, queues, state, started_at,
    heartbeat_at)
VALUES (%s, %s, %s, %s, %s, %s::jsonb, 'RUNNING', now(), now())
"""

# Renew this worker's heartbeat and the leases of the tasks it holds in memory, in one
# statement. A claim it does not know of (a lost reply) is not renewed, so it expires and the
# rescuer hands it back.
HEARTBEAT: Final = """
WITH renewed AS (
    UPDATE horsies_task SET claim_expires_at = now() + make_interval(secs => %(lease_s)s)
    WHERE claimed_by = %(worker_id)s AND status IN ('CLAIMED', 'RUNNING')
      AND id = ANY(%(held)s::uuid[])
    RETURNING 1
)
UPDATE horsies_worker SET heartbeat_at = now(), state = %(state)s
WHERE id = %(worker_id)s
RETURNING (SELECT count(*) FROM renewed)
"""

# What the database says this worker holds (to reconcile after a lost connection).
HELD_TASKS: Final = """
SELECT id, claim_gen, status FROM horsies_task
WHERE claimed_by = %s AND status IN ('CLAIMED', 'RUNNING')
"""

# A worker connection idle this long is dead or frozen: end it, releasing its advisory locks.
# Both idle states count: a worker frozen between two statements of a transaction (the
# rescuer's) leaves its session "idle in transaction", which idle_session_timeout ignores.
IDLE_SESSION_TIMEOUT: Final = """
SELECT set_config('idle_session_timeout', %s, false),
    set_config('idle_in_transaction_session_timeout', %s, false)
"""

STOP_WORKER: Final = """
UPDATE horsies_worker SET state = 'STOPPED', stopped_at = now(), heartbeat_at = now(),
    stop_reason = %s
WHERE id = %s
"""

# --------------------------------------------------------------------------- cancelling

# Cancel a task that has not started; returns the row only if it was PENDING or CLAIMED.
CANCEL_TASK: Final = """
UPDATE horsies_task
SET status = 'CANCELLED', error_code = 'TASK_CANCELLED', finished_at = now(),
    failed_reason = %s, claimed_by = NULL, claim_expires_at = NULL
WHERE id = %s AND status IN ('PENDING', 'CLAIMED')
RETURNING id
"""

SELECT_STATUS: Final = "SELECT status FROM horsies_task WHERE id = %s"

# --------------------------------------------------------------------------- operator actions

# Copy a finished (FAILED/CANCELLED/EXPIRED) task as a new PENDING task linked to the original.
REENQUEUE_COPY: Final = """
INSERT INTO horsies_task (
    id, task_name, queue_name, priority, status, kwargs, sent_at, enqueued_at, good_until,
    timeout_ms, retry_count, max_retries, options, enqueue_sha, claim_gen, origin)
SELECT %s, task_name, queue_name, priority, 'PENDING', kwargs, statement_timestamp(),
    statement_timestamp(), NULL, timeout_ms, 0, max_retries, options,
    encode(sha256(convert_to(%s || kwargs::text, 'UTF8')), 'hex'), 0, id
FROM horsies_task
WHERE id = %s AND status IN ('FAILED', 'CANCELLED', 'EXPIRED')
RETURNING id, task_name
"""

# Make a PENDING task whose eligible time is in the future (a retry or a delay) eligible now.
RUN_NOW: Final = """
UPDATE horsies_task SET enqueued_at = now(),
    next_retry_at = CASE WHEN next_retry_at IS NOT NULL THEN now() END
WHERE id = %s AND status = 'PENDING' AND enqueued_at > now()
RETURNING id
"""

# --------------------------------------------------------------------------- maintenance

# Leadership of the maintenance services: a session lock, released if the leader dies.
TRY_LEADERSHIP: Final = "SELECT pg_try_advisory_lock(%s)"

# Workers whose heartbeat is older than the threshold are dead.
MARK_STALE_WORKERS_DEAD: Final = """
UPDATE horsies_worker SET state = 'DEAD'
WHERE state IN ('RUNNING', 'STOPPING') AND heartbeat_at < now() - make_interval(secs => %s)
RETURNING id
"""

_HOLDER_GONE: Final = """
(t.claim_expires_at < now()
 OR t.claimed_by IS NULL
 OR EXISTS (SELECT 1 FROM horsies_worker w
            WHERE w.id = t.claimed_by AND w.state IN ('DEAD', 'STOPPED')))
"""

# CLAIMED tasks whose holder is gone go back to PENDING (user code never started).
REQUEUE_ORPHAN_CLAIMS: Final = f"""
UPDATE horsies_task t
SET status = 'PENDING', claimed_by = NULL, claim_expires_at = NULL
WHERE t.status = 'CLAIMED' AND {_HOLDER_GONE}
RETURNING t.id
"""

# RUNNING tasks whose holder is gone, locked for the rescuer to record as crashed.
LOCK_ORPHAN_RUNS: Final = f"""
SELECT t.id, t.task_name, t.kwargs::text, t.claim_gen, t.retry_count, t.options::text,
    t.good_until, t.timeout_ms, t.queue_name, t.claimed_by, t.started_at
FROM horsies_task t
WHERE t.status = 'RUNNING' AND {_HOLDER_GONE}
LIMIT %s
FOR UPDATE SKIP LOCKED
"""

# PENDING tasks past good_until: EXPIRED without an attempt.
EXPIRE_PENDING: Final = """
UPDATE horsies_task
SET status = 'EXPIRED', error_code = 'TASK_EXPIRED', finished_at = now(),
    failed_reason = 'good_until passed before the task started'
WHERE status = 'PENDING' AND good_until IS NOT NULL AND good_until <= now()
RETURNING id
"""
