"""horsies_status: what an operator sees, in JSON for scripts and as tables, once or watching."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from horsies_django.testing import run_pending
from tests.conftest import ROOT, database_url, wait_until
from tests.testapp.tasks import add, boom

LIVE, STALE, STOPPED, DEAD = (f"00000000-0000-0000-0000-00000000000{i}" for i in range(1, 5))


def execute(query: str, *params: object) -> None:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(query, params)


def worker_row(worker_id: str, state: str, silent: str) -> None:
    execute(
        "INSERT INTO horsies_worker (id, name, hostname, pid, processes, queues, state, "
        "started_at, heartbeat_at, stopped_at) VALUES (%s, %s, 'host', 1, 2, '[\"default\"]', "
        "%s, now() - interval '2 hours', now() - %s::interval, "
        "CASE WHEN %s IN ('STOPPED', 'DEAD') THEN now() - %s::interval END)",
        worker_id,
        f"w-{state.lower()}",
        state,
        silent,
        state,
        silent,
    )


@pytest.fixture
def busy_queue(clean_tables: None) -> dict[str, Any]:
    """2 due tasks (oldest waiting 2 minutes), 1 scheduled, 1 running, 1 failed just now."""
    failed = boom.send().ok_value.task_id
    run_pending()
    due = [add.send(a=i, b=0).ok_value.task_id for i in range(2)]
    execute(
        "UPDATE horsies_task SET enqueued_at = now() - interval '2 minutes' WHERE id = %s", due[0]
    )
    add.schedule(3_600, a=9, b=9)
    running = add.send(a=5, b=5).ok_value.task_id
    execute(
        "UPDATE horsies_task SET status = 'RUNNING', claimed_by = %s, claim_gen = 1 WHERE id = %s",
        LIVE,
        running,
    )
    worker_row(LIVE, "RUNNING", "1 second")
    worker_row(STALE, "RUNNING", "10 minutes")
    worker_row(STOPPED, "STOPPED", "5 minutes")
    worker_row(DEAD, "DEAD", "20 minutes")
    execute(
        "INSERT INTO horsies_worker (id, name, hostname, pid, processes, queues, state, "
        "started_at, heartbeat_at, stopped_at) VALUES (gen_random_uuid(), 'ancient', 'h', 1, 1, "
        "'[]', 'STOPPED', now() - interval '3 days', now() - interval '2 days', "
        "now() - interval '2 days')"
    )
    return {"failed": failed, "running": running}


def status(*args: str) -> str:
    out = StringIO()
    call_command("horsies_status", *args, stdout=out)
    return out.getvalue()


def test_json_reports_queue_depths_and_worker_liveness(busy_queue: dict[str, Any]) -> None:
    data = json.loads(status("--json"))
    [queue] = data["queues"]
    oldest = queue.pop("oldest_pending_s")
    assert queue == {
        "name": "default",
        "pending": 3,
        "scheduled": 1,
        "running": 1,
        "failed_last_hour": 1,
        "configured": True,
    }
    assert 120 <= oldest < 180
    assert data["totals"] == {"pending": 3, "scheduled": 1, "running": 1, "failed_last_hour": 1}
    workers = {w["id"]: w for w in data["workers"]}
    assert {w: workers[w]["state"] for w in (LIVE, STALE, STOPPED, DEAD)} == {
        LIVE: "live",
        STALE: "stale",
        STOPPED: "stopped",
        DEAD: "dead",
    }
    assert "ancient" not in {w["name"] for w in data["workers"]}
    assert workers[LIVE]["running_tasks"] == 1
    assert workers[LIVE]["queues"] == ["default"]
    assert 590 <= workers[STALE]["heartbeat_age_s"] < 700
    assert data["workers_by_state"] == {"live": 1, "stale": 1, "stopped": 1, "dead": 1}


def test_failures_older_than_an_hour_do_not_count(busy_queue: dict[str, Any]) -> None:
    execute(
        "UPDATE horsies_task SET finished_at = now() - interval '61 minutes' WHERE id = %s",
        busy_queue["failed"],
    )
    assert json.loads(status("--json"))["totals"]["failed_last_hour"] == 0


def test_rows_of_an_unconfigured_queue_are_shown(busy_queue: dict[str, Any]) -> None:
    execute("UPDATE horsies_task SET queue_name = 'retired' WHERE id = %s", busy_queue["running"])
    queues = {q["name"]: q for q in json.loads(status("--json"))["queues"]}
    assert (queues["retired"]["configured"], queues["retired"]["running"]) == (False, 1)
    assert queues["default"]["running"] == 0


def test_tables_show_queues_and_workers(busy_queue: dict[str, Any]) -> None:
    out = status()
    assert "horsies queues at" in out
    default_row = next(line for line in out.splitlines() if "default" in line and "│" in line)
    assert [c.strip() for c in default_row.split("│")[2:6]] == ["3", "1", "1", "1"]
    assert "workers: 1 live, 1 stale, 1 stopped, 1 dead" in out
    stale_row = next(line for line in out.splitlines() if "│ stale" in line)
    assert "10.0m ago" in stale_row


@pytest.mark.usefixtures("clean_tables")
def test_empty_database() -> None:
    data = json.loads(status("--json"))
    assert data["queues"] == [
        {
            "name": "default",
            "pending": 0,
            "scheduled": 0,
            "running": 0,
            "failed_last_hour": 0,
            "oldest_pending_s": None,
            "configured": True,
        }
    ]
    assert data["workers"] == []


def test_bad_watch_interval_is_refused() -> None:
    with pytest.raises(CommandError, match=r"between 0\.1 and 3600"):
        status("--watch", "0")


def watch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "django", "horsies_status", "--watch", "0.2", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.usefixtures("clean_tables")
def test_watch_json_prints_a_snapshot_per_refresh_until_ctrl_c() -> None:
    proc = watch("--json")
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        add.send(a=1, b=2)
        later = wait_until(
            lambda: json.loads(proc.stdout.readline())["totals"]["pending"] == 1,  # type: ignore[union-attr]
            timeout_s=30,
            what="a refresh that sees the new task",
        )
        assert later
        assert first["totals"]["pending"] == 0
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.communicate()


def read_until(fd: int, marker: bytes, timeout_s: float = 30) -> bytes:
    """Read a terminal's output until `marker` shows up (bounded by `timeout_s`)."""
    seen = b""

    def found() -> bool:
        nonlocal seen
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            seen += os.read(fd, 65536)
        return marker in seen

    wait_until(found, timeout_s=timeout_s, what=f"{marker!r} on the terminal")
    return seen


@pytest.mark.usefixtures("clean_tables")
def test_watch_redraws_in_a_terminal_and_exits_cleanly_on_ctrl_c() -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "django", "horsies_status", "--watch", "0.2"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": "120"},
        stdout=slave,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(slave)
    try:
        read_until(master, b"horsies queues at")
        add.send(a=1, b=2)
        screen = read_until(master, "│       1 │".encode())  # the pending column redrawn
        assert b"workers:" in screen
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        proc.kill()
        proc.communicate()  # reaped and its pipe closed even when the test failed
        os.close(master)
