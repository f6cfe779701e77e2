"""The outcome triggers stay linear in the rows of an UPDATE, whatever plan the session cached.

PL/pgSQL plans a trigger's statement once per session, with the transition tables' sizes of its
first run. A worker's outcome connection first finishes an empty or tiny batch; when the
statement joined the UPDATE's two transition tables, that plan was a nested loop rescanning one
tuplestore per row of the other, and every later batch cost the square of its rows (migration
0012). These tests run the same sequence in one session and read the plans PostgreSQL used,
through auto_explain, rather than timing them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.conftest import database_url

BATCH = 600


def _insert_pending(conn: psycopg.Connection[Any], count: int) -> list[str]:
    rows = conn.execute(
        "INSERT INTO horsies_task (id, task_name, queue_name, priority, status, kwargs,"
        " sent_at, enqueued_at, retry_count, max_retries, options, enqueue_sha, claim_gen)"
        " SELECT gen_random_uuid(), 't', 'default', 50, 'PENDING', '{}', now(), now(),"
        " 0, 0, '{}', 'sha', 0 FROM generate_series(1, %s) RETURNING id::text",
        (count,),
    ).fetchall()
    return [row[0] for row in rows]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _rescans_a_tuplestore(plan: dict[str, Any]) -> bool:
    """A nested loop whose inner side reads a transition table: one full read per outer row."""
    for node in _nodes(plan):
        if node["Node Type"] != "Nested Loop":
            continue
        inner = node["Plans"][1]
        if any(n["Node Type"] == "Named Tuplestore Scan" for n in _nodes(inner)):
            return True
    return False


@pytest.mark.usefixtures("clean_tables")
def test_a_batch_after_an_empty_one_finds_its_finished_rows_without_a_nested_loop() -> None:
    plans: list[dict[str, Any]] = []

    def keep_plan(diagnostic: psycopg.errors.Diagnostic) -> None:
        text = diagnostic.message_primary or ""
        if text.startswith("duration:") and "{" in text:
            plans.append(json.loads(text[text.index("{") :]))

    with psycopg.connect(database_url(), autocommit=True) as conn:
        ids = _insert_pending(conn, BATCH)
        conn.execute("LISTEN horsies_task_done")
        conn.add_notice_handler(keep_plan)
        conn.execute("LOAD 'auto_explain'")
        conn.execute("SET auto_explain.log_min_duration = 0")
        conn.execute("SET auto_explain.log_nested_statements = on")
        conn.execute("SET auto_explain.log_format = 'json'")
        conn.execute("SET client_min_messages = log")
        finish = (
            "UPDATE horsies_task SET status = 'COMPLETED', finished_at = now()"
            " WHERE id = ANY(%s::uuid[])"
        )
        # The session's first outcome statement finishes nothing: its plans are the cached ones.
        conn.execute(finish, ([],))
        conn.execute(finish, (ids,))
        conn.execute("SET client_min_messages = notice")
        announced = [
            task_id
            for notification in conn.notifies(timeout=10, stop_after=BATCH // 200)
            for task_id in notification.payload.split(",")
        ]

    trigger_plans = [p for p in plans if "old_rows" in p.get("Query Text", "") and "Plan" in p]
    # Two triggers (notifications and workflow nodes), each run by both statements.
    assert len(trigger_plans) == 4, [p.get("Query Text") for p in plans]
    assert [p["Query Text"] for p in trigger_plans if _rescans_a_tuplestore(p["Plan"])] == []
    assert sorted(announced) == sorted(ids)  # every finished task announced, once
