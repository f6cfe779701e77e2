"""Fill horsies_task with finished rows as a worker leaves them, fast, for the deep-table bench.

Each row is COMPLETED (or, one in 20, FAILED with an error) with one attempt row, like a no-op
task a worker ran once; `sent_at`/`finished_at` are spread over the 30 days before the fill, so
nothing is due for a default prune. Rows go in with `INSERT ... SELECT generate_series` in
chunks, triggers and foreign-key checks off for the session (`session_replication_role =
replica`: the rows are finished, nothing must wake or advance), and the secondary indexes of
both tables dropped first and built again afterwards with the definitions read back from the
catalogue (the same indexes the migrations made, built sorted instead of row by row).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

TABLES = ("horsies_task", "horsies_task_attempt")
SPREAD = "interval '30 days'"
# Ids sort below every real (UUIDv7) id of today, like tasks sent before them.
FAKE_ID = "('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid"
WORKER = "'00000000-0000-7000-8000-00000000beef'::uuid"
OPTIONS = '{"module": "benchmarks.benchtasks.tasks", "timeout_ms": null, "retry_policy": null}'
FAILED_RESULT = '{"err": {"error_code": "BENCH_FAILED", "message": "failed on purpose"}}'

# The secondary indexes (not the primary keys or unique constraints), to drop and rebuild.
SECONDARY_INDEXES = """
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i
WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
"""

# Parameters: first g, last g, total finished rows, the fill's start time (epoch).
TASKS = f"""
INSERT INTO horsies_task (
    id, task_name, queue_name, priority, status, kwargs, result, error_code, failed_reason,
    sent_at, enqueued_at, next_retry_at, good_until, timeout_ms, retry_count, max_retries,
    options, enqueue_sha, claimed_by, claim_gen, claimed_at, claim_expires_at, started_at,
    finished_at, origin, sent_by
)
SELECT {FAKE_ID}, 'bench.noop', 'default', 50,
    CASE WHEN mod(g, 20) = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
    jsonb_build_object('i', g),
    CASE WHEN mod(g, 20) = 0 THEN '{FAILED_RESULT}'::jsonb ELSE '{{"ok": null}}'::jsonb END,
    CASE WHEN mod(g, 20) = 0 THEN 'BENCH_FAILED' END,
    CASE WHEN mod(g, 20) = 0 THEN 'failed on purpose' END,
    ts, ts, NULL, NULL, NULL, 0, 0,
    '{OPTIONS}'::jsonb, md5(g::text) || md5(g::text), {WORKER}, g,
    ts + interval '1 ms', NULL, ts + interval '2 ms', ts + interval '3 ms', NULL, 'python'
FROM generate_series(%s::bigint, %s::bigint) AS g,
    LATERAL (SELECT to_timestamp(%s::float8) - {SPREAD}
             + {SPREAD} * (g::float8 / %s::float8) AS ts) AS t
"""

ATTEMPTS = f"""
INSERT INTO horsies_task_attempt (
    task_id, attempt, outcome, will_retry, error_code, error_message, traceback, worker_id,
    pid, started_at, finished_at
)
SELECT {FAKE_ID}, 1,
    CASE WHEN mod(g, 20) = 0 THEN 'FAILED' ELSE 'COMPLETED' END, false,
    CASE WHEN mod(g, 20) = 0 THEN 'BENCH_FAILED' END,
    CASE WHEN mod(g, 20) = 0 THEN 'failed on purpose' END,
    NULL, {WORKER}, 4242, ts + interval '2 ms', ts + interval '3 ms'
FROM generate_series(%s::bigint, %s::bigint) AS g,
    LATERAL (SELECT to_timestamp(%s::float8) - {SPREAD}
             + {SPREAD} * (g::float8 / %s::float8) AS ts) AS t
"""

CHUNK = 1_000_000


@dataclass(frozen=True)
class FillTimes:
    rows: int
    drop_indexes_s: float
    insert_s: float
    build_indexes_s: float

    @property
    def total_s(self) -> float:
        return self.drop_indexes_s + self.insert_s + self.build_indexes_s


def fill_finished(url: str, rows: int, log: Callable[..., None]) -> FillTimes:
    """Insert `rows` finished tasks and their attempts; the tables' indexes as before."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        t0 = time.perf_counter()
        indexes = conn.execute(SECONDARY_INDEXES, (list(TABLES),)).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}".encode())
        t1 = time.perf_counter()
        started = time.time()
        conn.execute("SET session_replication_role = replica")
        for first in range(1, rows + 1, CHUNK):
            last = min(first + CHUNK - 1, rows)
            params = (first, last, started, rows)
            with conn.transaction():
                conn.execute(TASKS.encode(), params)
                conn.execute(ATTEMPTS.encode(), params)
            log(f"filled {last:,}/{rows:,} finished rows ({time.perf_counter() - t1:.0f}s)")
        conn.execute("SET session_replication_role = origin")
        t2 = time.perf_counter()
        for name, definition in indexes:
            conn.execute(definition.encode())
            log(f"rebuilt {name} ({time.perf_counter() - t2:.0f}s)")
        t3 = time.perf_counter()
    return FillTimes(rows, t1 - t0, t2 - t1, t3 - t2)
