"""One horsies_prune batch on the deep table, EXPLAINed (ANALYZE, BUFFERS) and rolled back.

`DELETE_OLD_TASKS` is today's statement (horsies_django/db/maintenance_queries.py);
`BEFORE_SENT_AT_BOUND` is the one it replaced (commit 197ce18 changed it), kept here to measure
both on the same table in the same run: it selected a batch by `finished_at` alone (a pass over
every row of the status when fewer than a batch are due) and joined the batch to both tables.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from horsies_django.db.maintenance_queries import DELETE_OLD_TASKS

BEFORE_SENT_AT_BOUND = """
WITH doomed AS (
    SELECT t.id FROM horsies_task t
    WHERE t.status = %(status)s
    AND (t.finished_at < now() - make_interval(secs => %(age_s)s)
         OR (t.finished_at IS NULL AND t.sent_at < now() - make_interval(secs => %(age_s)s)))
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
),
attempts AS (
    DELETE FROM horsies_task_attempt a USING doomed WHERE a.task_id = doomed.id RETURNING 1
),
tasks AS (
    DELETE FROM horsies_task t USING doomed WHERE t.id = doomed.id RETURNING 1
)
SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM attempts)
"""

STATEMENTS = {"today": DELETE_OLD_TASKS, "before": BEFORE_SENT_AT_BOUND}


def explain_prune_batch(url: str, statement: str, age_s: float, batch: int) -> dict[str, Any]:
    """Time, buffers and scans of one COMPLETED batch of `statement`, rolled back."""
    params = {"status": "COMPLETED", "age_s": age_s, "batch": batch}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("BEGIN")
        row = conn.execute(
            b"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + STATEMENTS[statement].encode(), params
        ).fetchone()
        conn.execute("ROLLBACK")
    assert row is not None
    doc = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    top = doc[0]["Plan"]
    scans = sorted(
        {
            f"{n['Node Type']} {n.get('Index Name', n.get('Relation Name', ''))}".strip()
            for n in _nodes(top)
            if "Scan" in n["Node Type"] and "CTE" not in n["Node Type"]
        }
    )
    return {
        "statement": statement,
        "age_s": age_s,
        "batch": batch,
        "execution_ms": float(doc[0]["Execution Time"]),
        "buffers": int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0)),
        "scans": scans,
    }


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = [node]
    for child in node.get("Plans", []):
        out.extend(_nodes(child))
    return out
