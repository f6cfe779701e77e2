"""The worker's start-up: its one-line summary, the trace file, and both ways to start the fork
server. Each test runs the real command in a subprocess against the real database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from horsies_django.db import connections, notify, worker_queries
from horsies_django.worker.startup import STEPS, TRACE_ENV
from tests.conftest import WorkerProcess, sql_rows, wait_until
from tests.testapp.tasks import add

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("clean_tables")

READY_LINE = re.compile(
    r"worker ready in (\d+) ms \(python and django\.setup (\d+) ms, system checks (\d+) ms, "
    r".*fork server (\d+) ms.*children started (\d+) ms.*connections (\d+) ms.*"
    r"; fork server by (fork|spawn)\)"
)
FIRST_LINE = re.compile(
    r"first task claimed (\d+) ms and completed (\d+) ms after the worker process started"
)


@pytest.mark.parametrize("how", ["fork", "spawn"])
def test_the_worker_logs_and_writes_its_start_up_steps(
    start_worker: Callable[..., WorkerProcess], tmp_path: Path, how: str
) -> None:
    trace = tmp_path / "startup.json"
    worker = start_worker("--fork-server", how, env={TRACE_ENV: str(trace)})
    assert add.send(a=2, b=3).ok_value.get(timeout_ms=30_000).ok_value == 5
    wait_until(lambda: FIRST_LINE.search(worker.log()), what="the first-task line")

    ready = READY_LINE.search(worker.log())
    assert ready is not None, worker.log()
    total, *parts, started_by = ready.groups()
    assert started_by == how
    assert sum(int(p) for p in parts) <= int(total)
    first = FIRST_LINE.search(worker.log())
    assert first is not None
    assert int(first[1]) <= int(first[2])

    written = json.loads(trace.read_text())
    assert written["pid"] == worker.pid
    assert written["fork_server"] == how
    since_start = written["since_start_ms"]
    assert set(since_start) == set(STEPS)
    # The first claim waits for one child, not for all of them.
    in_order = [
        "django_ready",
        "checks_done",
        "fork_server",
        "children_started",
        "connected",
        "first_child_ready",
        "first_claim",
        "first_completion",
    ]
    times = [since_start[step] for step in in_order]
    assert times == sorted(times), since_start
    assert since_start["first_child_ready"] <= since_start["children_ready"]
    assert since_start["children_ready"] == pytest.approx(int(total), abs=1)
    assert since_start["first_completion"] == pytest.approx(int(first[2]), abs=1)


def test_warming_up_the_outcome_connection_records_and_announces_nothing() -> None:
    task_id = add.send(a=1, b=1).ok_value.task_id
    channels = [notify.TASK_DONE_CHANNEL, notify.WORKFLOW_DONE_CHANNEL]
    listener = notify.open_listener("default", channels)
    conn = connections.connect("default")
    try:
        worker_queries.warm_up_finish(conn)
        # Notifications of one session arrive in commit order: once this marker is in, anything
        # the warm-up had committed would be in too.
        conn.execute("NOTIFY horsies_task_done, 'marker'")
        received = [(n.channel, n.payload) for n in listener.notifies(timeout=30, stop_after=1)]
    finally:
        conn.close()
        listener.close()
    assert received == [(notify.TASK_DONE_CHANNEL, "marker")]
    assert sql_rows("SELECT status FROM horsies_task WHERE id = %s", task_id) == [("PENDING",)]
    assert sql_rows("SELECT count(*) FROM horsies_task_attempt") == [(0,)]


def test_a_worker_whose_database_is_down_at_start_exits_with_the_error(tmp_path: Path) -> None:
    """The children start before the connections open: when the main connection fails, the
    worker kills its children and exits non-zero with the database's error."""
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing",  # nothing listens on port 1
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        TRACE_ENV: str(tmp_path / "startup.json"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "django", "horsies_worker", "--processes", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0, proc.stderr
    assert "OperationalError" in proc.stderr, proc.stderr
    assert "127.0.0.1" in proc.stderr, proc.stderr
