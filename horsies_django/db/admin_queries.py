"""SQL behind the admin: row estimates, distinct values, the summary numbers (read-only), and
the operator actions re-enqueue and run-now (called through `operations.py`).

Every read-only statement here is bounded so the admin stays fast on a table of millions of
rows: counts stop at a cap (`LIMIT` inside the count), distinct values come from a loose index
scan, and large totals are the planner's estimate instead of a full count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from django.db import connections
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from horsies_django.db.producer_queries import SELECT_STATUS

# Planner estimate for any queryset: the row count of the top plan node.
_EXPLAIN: Final = "EXPLAIN (FORMAT JSON) "

# Distinct values of an indexed column without reading every row: jump from one value to the
# next through the index (a "loose index scan"), at most %s values.
_LOOSE_SCAN: Final = """
WITH RECURSIVE v(value) AS (
    (SELECT {col} FROM horsies_task WHERE {col} IS NOT NULL ORDER BY {col} LIMIT 1)
    UNION ALL
    SELECT (SELECT t.{col} FROM horsies_task t WHERE t.{col} > v.value ORDER BY t.{col} LIMIT 1)
    FROM v WHERE v.value IS NOT NULL
)
SELECT value FROM v WHERE value IS NOT NULL LIMIT %s
"""
_DISTINCT_COLUMNS: Final = frozenset({"task_name", "error_code", "queue_name"})

# The summary above the task list, in one round trip. Every count is capped; each status and
# queue gets its own subquery so the planner sees a constant and walks the matching index
# (with a parameter it may pick a filtered scan that reads the whole table for a rare status).
_STATUS_COUNT: Final = """(SELECT count(*) FROM (
    SELECT 1 FROM horsies_task WHERE status = %s ORDER BY sent_at LIMIT %s) c)"""
_QUEUE_DEPTH: Final = """(SELECT count(*) FROM (
    SELECT 1 FROM horsies_task WHERE status = 'PENDING' AND queue_name = %s LIMIT %s) c)"""
_SUMMARY: Final = """
SELECT ARRAY[{statuses}]::bigint[], ARRAY[{queues}]::bigint[],
  (SELECT min(sent_at) FROM horsies_task WHERE status = 'PENDING'),
  (SELECT count(*) FROM (
      SELECT 1 FROM horsies_task WHERE status = 'FAILED' AND finished_at >= %s LIMIT %s) c),
  (SELECT count(*) FROM horsies_worker WHERE state IN ('RUNNING', 'STOPPING')
      AND heartbeat_at >= now() - make_interval(secs => %s)),
  (SELECT count(*) FROM horsies_worker WHERE state IN ('RUNNING', 'STOPPING')
      AND heartbeat_at < now() - make_interval(secs => %s))
"""

# Rows per status as the statistics see them (most common values x live rows).
_STATUS_ESTIMATES: Final = """
SELECT v.status, (v.freq * GREATEST(c.reltuples, 0))::bigint
FROM pg_stats s
CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[], s.most_common_freqs)
    AS v(status, freq)
JOIN pg_class c ON c.oid = 'horsies_task'::regclass
WHERE s.schemaname = current_schema() AND s.tablename = 'horsies_task' AND s.attname = 'status'
"""

# A value anywhere inside the kwargs equals the search term (served by a GIN jsonb_ops index).
_KWARGS_HAS_VALUE: Final = "horsies_task.kwargs @? %s::jsonpath"


@dataclass(frozen=True, slots=True)
class Summary:
    """The numbers shown above the task list; counts are capped at `cap`."""

    status_counts: dict[str, int]
    queue_depths: dict[str, int]
    oldest_pending_sent_at: datetime | None
    failed_recently: int
    live_workers: int
    stale_workers: int
    cap: int


def plan_rows(queryset: QuerySet[Any]) -> int:
    """The planner's estimate of how many rows `queryset` returns (no rows are read)."""
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connections[queryset.db].cursor() as cur:
        cur.execute(_EXPLAIN + sql, params)
        row = cur.fetchone()
    plan = row[0] if row else None
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"]) if plan else 0


def distinct_values(alias: str, column: str, limit: int = 200) -> list[str]:
    """Up to `limit` distinct non-null values of an indexed horsies_task column, sorted."""
    if column not in _DISTINCT_COLUMNS:
        raise ValueError(
            f"no loose index scan for column {column!r}: use one of {sorted(_DISTINCT_COLUMNS)}"
        )
    with connections[alias].cursor() as cur:
        cur.execute(_LOOSE_SCAN.format(col=column), (limit,))
        return [str(r[0]) for r in cur.fetchall()]


def summary(
    alias: str,
    *,
    statuses: list[str],
    queues: list[str],
    since: datetime,
    stale_s: float,
    cap: int,
) -> Summary:
    """Capped counts per status and per queue, oldest PENDING, recent failures, workers."""
    sql = _SUMMARY.format(
        statuses=", ".join([_STATUS_COUNT] * len(statuses)) or "NULL",
        queues=", ".join([_QUEUE_DEPTH] * len(queues)) or "NULL",
    )
    params: list[Any] = [p for s in statuses for p in (s, cap)]
    params += [p for q in queues for p in (q, cap)]
    params += [since, cap, stale_s, stale_s]
    with connections[alias].cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    assert row is not None  # a SELECT without FROM always returns one row
    return Summary(
        status_counts=dict(zip(statuses, map(int, row[0] or []), strict=False)),
        queue_depths=dict(zip(queues, map(int, row[1] or []), strict=False)),
        oldest_pending_sent_at=row[2],
        failed_recently=int(row[3]),
        live_workers=int(row[4]),
        stale_workers=int(row[5]),
        cap=cap,
    )


def status_estimates(alias: str) -> dict[str, int]:
    """Estimated rows per status from the table statistics (empty before the first ANALYZE)."""
    with connections[alias].cursor() as cur:
        cur.execute(_STATUS_ESTIMATES)
        return {str(status): int(rows) for status, rows in cur.fetchall()}


def kwargs_has_value(value: Any) -> RawSQL:
    """A filter expression: some value anywhere inside the task's kwargs equals `value`."""
    literal = json.dumps(value)  # JSON string/number literals are valid jsonpath literals
    return RawSQL(_KWARGS_HAS_VALUE, (f"$.** ? (@ == {literal})",), output_field=BooleanField())


# --------------------------------------------- operator actions (through services in operations.py)

# Copy a finished (FAILED/CANCELLED/EXPIRED) task as a new PENDING task linked to the original
# (and sent by whoever sent the original).
REENQUEUE_COPY: Final = """
INSERT INTO horsies_task (
    id, task_name, queue_name, priority, status, kwargs, sent_at, enqueued_at, good_until,
    timeout_ms, retry_count, max_retries, options, enqueue_sha, claim_gen, origin, sent_by)
SELECT %s, task_name, queue_name, priority, 'PENDING', kwargs, statement_timestamp(),
    statement_timestamp(), NULL, timeout_ms, 0, max_retries, options,
    encode(sha256(convert_to(%s || kwargs::text, 'UTF8')), 'hex'), 0, id, sent_by
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


def reenqueue_copy(alias: str, task_id: str, new_id: str) -> tuple[str, str] | None:
    """Insert a PENDING copy of a finished task; (new id, task name), or None if not eligible."""
    with connections[alias].cursor() as cur:
        cur.execute(REENQUEUE_COPY, (new_id, new_id, task_id))
        row = cur.fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def run_now(alias: str, task_id: str) -> bool:
    with connections[alias].cursor() as cur:
        cur.execute(RUN_NOW, (task_id,))
        return cur.fetchone() is not None


def task_status(alias: str, task_id: str) -> str | None:
    with connections[alias].cursor() as cur:
        cur.execute(SELECT_STATUS, (task_id,))
        row = cur.fetchone()
    return None if row is None else str(row[0])
