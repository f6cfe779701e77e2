"""The SQL contract for senders in other languages: horsies_send(), horsies_result(), the
catalogue, and enqueue_sha v1 (docs/foreign-producers.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from horsies_django import TaskHandle, TaskSendOptions, canonical, catalogue
from horsies_django.registered import table
from tests.conftest import database_url, sql_rows, wait_until
from tests.testapp.tasks import domain_error, echo, flaky

pytestmark = pytest.mark.usefixtures("clean_tables")

VECTORS = json.loads(
    (Path(__file__).resolve().parent.parent / "clients/enqueue_sha_vectors.json").read_text()
)["vectors"]


@pytest.fixture
def sql() -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A plain autocommit connection, as a service in another language would have."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        yield conn


def send(conn: psycopg.Connection[Any], name: str, kwargs: Any, options: Any = None) -> str:
    row = conn.execute(
        "SELECT horsies_send(%s, %s, %s)",
        (name, Jsonb(kwargs), Jsonb({} if options is None else options)),
    ).fetchone()
    assert row is not None
    return str(row[0])


def refused(conn: psycopg.Connection[Any], name: str, kwargs: Any, options: Any = None) -> Any:
    with pytest.raises(psycopg.Error) as info:
        send(conn, name, kwargs, options)
    return info.value


# --------------------------------------------------------------------------- enqueue_sha v1


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_python_computes_every_shared_vector(vector: dict[str, Any]) -> None:
    good_until = vector["good_until"]
    sha = canonical.enqueue_sha(
        task_id=vector["task_id"],
        task_name=vector["task_name"],
        queue_name=vector["queue_name"],
        priority=vector["priority"],
        kwargs_json=vector["kwargs"],
        delay_ms=vector["delay_ms"],
        good_until=None if good_until is None else datetime.fromisoformat(good_until),
    )
    assert canonical.canonical_json(vector["kwargs"]) in vector["canonical"]
    assert sha == vector["enqueue_sha"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_the_database_computes_every_shared_vector(
    sql: psycopg.Connection[Any], vector: dict[str, Any]
) -> None:
    row = sql.execute(
        "SELECT horsies_enqueue_sha(%s::uuid, %s, %s, %s, %s::jsonb, %s, %s::timestamptz)",
        (
            vector["task_id"],
            vector["task_name"],
            vector["queue_name"],
            vector["priority"],
            vector["kwargs"],
            vector["delay_ms"],
            vector["good_until"],
        ),
    ).fetchone()
    assert row == (vector["enqueue_sha"],)


# --------------------------------------------------------------------------- horsies_send


ROW_COLUMNS = (
    "task_name, queue_name, priority, status, kwargs, good_until, timeout_ms, retry_count, "
    "max_retries, options, claim_gen, result, error_code, claimed_by, origin"
)


def test_a_sql_send_stores_the_same_row_as_a_python_send(sql: psycopg.Connection[Any]) -> None:
    deadline = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    kwargs: dict[str, Any] = {"counter": "/tmp/nothing", "failures": 0}
    from_python = flaky.with_options(TaskSendOptions(good_until=deadline, priority=7))
    python_id = from_python.schedule(90, counter="/tmp/nothing", failures=0).ok_value.task_id
    sql_id = send(
        sql,
        "tests.flaky",
        kwargs,
        {"delay_ms": 90_000, "good_until": "2031-05-06T07:08:09.123456Z", "priority": 7},
    )
    rows = {
        task_id: sql_rows(f"SELECT {ROW_COLUMNS} FROM horsies_task WHERE id = %s", task_id)
        for task_id in (python_id, sql_id)
    }
    assert rows[python_id] == rows[sql_id]
    [(max_retries, options)] = sql_rows(
        "SELECT max_retries, options FROM horsies_task WHERE id = %s", sql_id
    )
    assert max_retries == 3
    assert options["retry_policy"]["auto_retry_for"] == ["TIMEOUT"]
    # Each sha is its own row's, by the one rule (it covers the id, so the two differ).
    for task_id in (python_id, sql_id):
        [(stored, recomputed)] = sql_rows(
            "SELECT enqueue_sha, horsies_enqueue_sha(id, task_name, queue_name, priority, kwargs, "
            "90000, good_until) FROM horsies_task WHERE id = %s",
            task_id,
        )
        assert stored == recomputed
    [(delay_python,), (delay_sql,)] = sql_rows(
        "SELECT round(extract(epoch FROM enqueued_at - sent_at)) FROM horsies_task "
        "WHERE id = ANY(%s::uuid[]) ORDER BY id = %s::uuid",
        [python_id, sql_id],
        sql_id,
    )
    assert delay_python == delay_sql == 90


def test_a_sql_send_carries_the_tasks_retry_policy_and_runs_on_a_worker(
    sql: psycopg.Connection[Any], start_worker: Any, tmp_path: Path
) -> None:
    counter = tmp_path / "calls"
    task_id = send(sql, "tests.flaky", {"counter": str(counter), "failures": 2})
    start_worker()
    result = TaskHandle.from_id(task_id).get(timeout_ms=30_000)
    assert result.ok_value == 3  # failed twice with TIMEOUT, retried by the task's policy
    assert sql_rows(
        "SELECT attempt, outcome, will_retry FROM horsies_task_attempt WHERE task_id = %s "
        "ORDER BY attempt",
        task_id,
    ) == [(1, "FAILED", True), (2, "FAILED", True), (3, "COMPLETED", False)]


def test_a_plain_json_argument_arrives_as_the_declared_model(
    sql: psycopg.Connection[Any], start_worker: Any
) -> None:
    order = {"id": 123, "items": ["a", "b"], "metadata": {"k": [1, None]}}
    task_id = send(sql, "rust.echo_order", {"order": order})
    start_worker()
    assert TaskHandle.from_id(task_id).get(timeout_ms=30_000).ok_value == "order 123: 2 items"


def test_a_replay_with_the_same_payload_is_the_same_send(sql: psycopg.Connection[Any]) -> None:
    options = {"task_id": "0193a1c2-7d4e-7f00-8a00-00000000abcd", "priority": 3}
    first = send(sql, "tests.echo", {"value": [1, 2]}, options)
    again = send(sql, "tests.echo", {"value": [1, 2]}, options)
    assert first == again == options["task_id"]
    assert sql_rows("SELECT count(*) FROM horsies_task") == [(1,)]
    error = refused(sql, "tests.echo", {"value": [1, 3]}, options)
    assert error.sqlstate == "HZ004"
    assert str(error).startswith("PAYLOAD_MISMATCH: task 0193a1c2-7d4e-7f00-8a00-00000000abcd")


def test_an_enqueue_sha_that_does_not_match_the_payload_is_refused(
    sql: psycopg.Connection[Any],
) -> None:
    (vector,) = [v for v in VECTORS if v["name"] == "plain"]
    error = refused(
        sql,
        "tests.echo",
        {"value": 1},
        {"task_id": vector["task_id"], "enqueue_sha": vector["enqueue_sha"]},
    )
    assert error.sqlstate == "HZ004"
    assert "does not match its payload" in str(error)
    assert sql_rows("SELECT count(*) FROM horsies_task") == [(0,)]


def test_a_sender_computing_the_sha_by_the_spec_is_accepted(sql: psycopg.Connection[Any]) -> None:
    task_id = "0193a1c2-7d4e-7f00-8a00-00000000beef"
    kwargs_json = '{"value":{"b":1.50,"a":"é\\n"}}'
    sha = canonical.enqueue_sha(
        task_id=task_id,
        task_name="tests.echo",
        queue_name="default",
        priority=50,
        kwargs_json=kwargs_json,
        delay_ms=None,
        good_until=None,
    )
    row = sql.execute(
        "SELECT horsies_send('tests.echo', %s::jsonb, %s)",
        (kwargs_json, Jsonb({"task_id": task_id, "enqueue_sha": sha})),
    ).fetchone()
    assert row is not None
    assert str(row[0]) == task_id
    assert sql_rows("SELECT enqueue_sha FROM horsies_task") == [(sha,)]


@pytest.mark.parametrize(
    ("name", "kwargs", "options", "sqlstate", "message"),
    [
        ("tests.nope", {}, {}, "HZ001", "VALIDATION_FAILED: no task tests.nope is registered"),
        ("tests.add", [1, 2], {}, "HZ002", "must be a JSON object of keyword arguments, not array"),
        ("tests.add", {"a": 1, "b": 2, "c": 3}, {}, "HZ002", "tests.add has no parameter(s) c"),
        ("tests.add", {"a": 1}, {}, "HZ002", "missing the required parameter(s) b"),
        ("tests.add", {"a": 1, "b": 2}, {"delay": 5}, "HZ003", "unknown option(s) delay"),
        ("tests.add", {"a": 1, "b": 2}, {"delay_ms": -1}, "HZ003", "delay_ms=-1 must be"),
        ("tests.add", {"a": 1, "b": 2}, {"delay_ms": 1.5}, "HZ003", "delay_ms=1.5 must be"),
        ("tests.add", {"a": 1, "b": 2}, {"priority": 0}, "HZ003", "priority=0 must be"),
        ("tests.add", {"a": 1, "b": 2}, {"priority": "1"}, "HZ003", 'priority="1" must be'),
        (
            "tests.add",
            {"a": 1, "b": 2},
            {"good_until": "2030-01-01T00:00:00"},
            "HZ003",
            "must be an RFC 3339 timestamp with its offset",
        ),
        ("tests.add", {"a": 1, "b": 2}, {"task_id": "x"}, "HZ003", 'task_id="x" must be a UUID'),
        ("tests.add", {"a": 1, "b": 2}, {"enqueue_sha": "AB"}, "HZ003", "64 lowercase hex"),
        ("tests.add", {"a": 1, "b": 2}, [], "HZ003", "options must be a JSON object, not array"),
    ],
)
def test_bad_sends_get_their_own_sqlstate_and_a_message_that_names_the_fix(
    sql: psycopg.Connection[Any],
    name: str,
    kwargs: Any,
    options: Any,
    sqlstate: str,
    message: str,
) -> None:
    error = refused(sql, name, kwargs, options)
    assert error.sqlstate == sqlstate
    assert str(error).startswith("VALIDATION_FAILED: ")
    assert message in str(error)
    assert error.diag.message_hint  # every refusal says what to do
    assert sql_rows("SELECT count(*) FROM horsies_task") == [(0,)]


# --------------------------------------------------------------------------- horsies_result


def result_of(conn: psycopg.Connection[Any], task_id: str) -> Any:
    row = conn.execute("SELECT horsies_result(%s)", (task_id,)).fetchone()
    assert row is not None
    return row[0]


def test_horsies_result_gives_status_and_plain_json(
    sql: psycopg.Connection[Any], start_worker: Any
) -> None:
    done = send(sql, "tests.total_order", {"order": {"order_id": 5, "items": ["x"]}})
    failed = domain_error.send(reason="none left").ok_value.task_id
    waiting = echo.schedule(3600, value=1).ok_value.task_id
    cancelled = echo.schedule(3600, value=2).ok_value
    assert cancelled.cancel().is_ok()
    expired = send(sql, "tests.echo", {"value": 3}, {"good_until": "2020-01-01T00:00:00Z"})
    start_worker()
    wait_until(
        lambda: (
            result_of(sql, expired)["status"] == "EXPIRED"
            and result_of(sql, done)["status"] == "COMPLETED"
            and result_of(sql, failed)["status"] == "FAILED"
        ),
        what="the three tasks to finish",
    )
    assert result_of(sql, done) == {
        "status": "COMPLETED",
        "ok": {"order_id": 5, "items": ["x", "checked"]},  # the model's envelope unwrapped
    }
    assert result_of(sql, failed) == {
        "status": "FAILED",
        "err": {"error_code": "OUT_OF_STOCK", "message": "none left", "data": {"r": "none left"}},
    }
    assert result_of(sql, waiting) == {"status": "PENDING"}
    assert result_of(sql, cancelled.task_id)["err"]["error_code"] == "TASK_CANCELLED"
    assert result_of(sql, expired)["err"]["error_code"] == "TASK_EXPIRED"
    assert result_of(sql, "0193a1c2-7d4e-7f00-8a00-000000000000") is None


def test_horsies_uuid7_ids_are_time_ordered_version_7(sql: psycopg.Connection[Any]) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = [row[0] for row in sql.execute("SELECT horsies_uuid7() FROM generate_series(1, 50)")]
    assert all(i.version == 7 and i.variant == "specified in RFC 4122" for i in ids)
    millis = [int.from_bytes(i.bytes[:6]) for i in ids]
    assert millis == sorted(millis)
    assert millis[0] >= before.timestamp() * 1000


# --------------------------------------------------------------------------- the catalogue


def test_migrate_fills_the_catalogue_with_every_registered_task() -> None:
    rows = {
        name: (queue, retries, timeout, params, required)
        for name, queue, retries, timeout, params, required in sql_rows(
            "SELECT task_name, queue_name, max_retries, timeout_ms, parameters, "
            "required_parameters FROM horsies_task_catalogue"
        )
    }
    assert set(table.definitions) <= set(rows)
    assert rows["tests.flaky"] == (
        "default",
        3,
        None,
        ["counter", "failures"],
        ["counter", "failures"],
    )
    assert rows["tests.hang"][2] == 1_500
    assert rows["tests.sleep"][3:] == (["marker", "seconds"], ["seconds"])


def test_refresh_rewrites_only_what_changed_and_keeps_unregistered_tasks() -> None:
    assert catalogue.refresh() == []  # nothing changed since migrate
    psql = "UPDATE horsies_task_catalogue SET timeout_ms = 99 WHERE task_name = 'tests.add'"
    sql_rows(psql + " RETURNING 1")
    sql_rows(
        "INSERT INTO horsies_task_catalogue VALUES "
        "('gone.task', 'default', 0, NULL, '{}', '[]', '[]', now()) RETURNING 1"
    )
    assert catalogue.refresh() == ["tests.add"]
    assert sql_rows(
        "SELECT task_name, timeout_ms FROM horsies_task_catalogue "
        "WHERE task_name IN ('tests.add', 'gone.task') ORDER BY 1"
    ) == [("gone.task", None), ("tests.add", None)]


def test_a_starting_worker_publishes_its_tasks(start_worker: Any) -> None:
    sql_rows("DELETE FROM horsies_task_catalogue RETURNING 1")
    worker = start_worker()
    assert "horsies_task_catalogue updated" in worker.log()
    registered = re.search(r"(\d+) task\(s\) registered", worker.log())
    assert registered is not None
    # What this worker registered (the test process may hold more, from test modules).
    assert sql_rows("SELECT count(*) FROM horsies_task_catalogue") == [(int(registered[1]),)]


# --------------------------------------------------------------------------- where it came from


def test_every_task_says_where_it_was_sent_from(sql: psycopg.Connection[Any]) -> None:
    from_python = echo.send(value=1).ok_value.task_id
    from_sql = send(sql, "tests.echo", {"value": 2})
    from_rust = send(sql, "tests.echo", {"value": 3}, {"sender": "rust"})
    sql.execute("SET application_name = 'billing-service'")
    from_app = send(sql, "tests.echo", {"value": 4})
    sent_by = dict(sql_rows("SELECT id::text, sent_by FROM horsies_task"))
    assert [sent_by[i] for i in (from_python, from_sql, from_rust, from_app)] == [
        "python",
        "sql",
        "rust",
        "billing-service",
    ]
    error = refused(sql, "tests.echo", {"value": 5}, {"sender": ""})
    assert error.sqlstate == "HZ003"
    assert "sender" in str(error)


def test_the_admin_task_page_shows_the_sender(
    sql: psycopg.Connection[Any], admin_client: Client
) -> None:
    task_id = send(sql, "tests.echo", {"value": 1}, {"sender": "rust"})
    page = admin_client.get(f"/admin/horsies_django/task/{task_id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(
        r'field-sent_by".*?<label>Sent by:</label>.*?<div class="readonly">rust</div>', html, re.S
    )


STORABLE_TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]))
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | STORABLE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(STORABLE_TEXT, inner, max_size=4),
    max_leaves=12,
)
FIXTURE_REUSED = [HealthCheck.function_scoped_fixture]  # one connection for every example


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_REUSED)
@given(value=JSON_VALUES)
def test_the_database_writes_the_canonical_json_python_writes(
    sql: psycopg.Connection[Any], value: Any
) -> None:
    text = json.dumps(value, ensure_ascii=False)
    row = sql.execute("SELECT horsies_canonical_json(%s::jsonb)", (text,)).fetchone()
    assert row == (canonical.canonical_json(text),)
