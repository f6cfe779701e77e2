"""Fault: PostgreSQL itself restarts while a worker drains the queue (a dedicated server)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from horsies_django.embedded_pg import ThrowawayServer, running_postgres
from tests.conftest import ROOT, wait_until
from tests.faults.helpers import SETTINGS, StartFaultWorker, rows
from tests.faults.invariants import assert_invariants, status_counts, wait_settled

TASKS = 400


def _manage(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip


def _restart(server: ThrowawayServer, mode: str = "fast") -> None:
    """`pg_ctl restart -m MODE` as the OS user the server runs as (`immediate`: a crash)."""
    kwargs: dict[str, Any] = {}
    if server.runas:
        entry = pwd.getpwnam(server.runas)
        kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    cmd = [str(server.pg_ctl), "restart", "-D", str(server.datadir), "-m", mode, "-w",
           "-l", str(server.logfile), "-t", "60"]  # fmt: skip
    subprocess.run(
        cmd, cwd=server.tmpdir, env={**env, "LC_ALL": "C"},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90, check=True,
        **kwargs,
    )  # fmt: skip


def _counts(url: str) -> dict[str, int]:
    try:
        return status_counts(url)
    except psycopg.OperationalError:
        return {}  # the server is restarting


def test_restart_of_postgres_under_load_loses_and_repeats_nothing(
    fault_worker: StartFaultWorker, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    with running_postgres("faults") as server:
        url = server.url
        _manage(url, "-m", "django", "migrate", "--settings", SETTINGS, "-v", "0")
        worker = fault_worker(url=url)
        sent = _manage(url, "-m", "tests.faults.send_tasks", str(TASKS), str(ledger))
        assert sent.stdout.strip() == f"sent {TASKS}"
        wait_until(lambda: _counts(url).get("COMPLETED", 0) >= TASKS // 4, what="a quarter done")
        old_postmaster = server.postmaster_pid

        _restart(server)

        assert server.postmaster_pid not in (None, old_postmaster)
        wait_until(lambda: _counts(url), what="the server to accept connections again")
        wait_settled(url, timeout_s=60)
        assert status_counts(url) == {"COMPLETED": TASKS}
        assert "database connection lost" in worker.log()
        assert "reconnected to the database" in worker.log()
        runs = Counter(ledger.read_text().split())
        assert sorted(int(i) for i in runs) == list(range(TASKS))
        assert set(runs.values()) == {1}, "a task ran twice"
        assert_invariants(url)
        worker.stop(timeout_s=20)
        assert worker.proc.returncode == 0


CRASH_TASKS = 3_000


def test_crash_of_postgres_never_runs_a_task_twice(
    fault_worker: StartFaultWorker, tmp_path: Path
) -> None:
    """An immediate stop (what a crash of the server does: no checkpoint, crash recovery at the
    next start) while four children drain tasks that write outside the database and have no
    retry policy. Claims are durable, so no claim whose task started can be undone: every task
    runs at most once, and ends with one recorded outcome (COMPLETED, or WORKER_CRASHED for a
    run its worker could not record)."""
    ledger = tmp_path / "ledger"
    with running_postgres("faults") as server:
        url = server.url
        _manage(url, "-m", "django", "migrate", "--settings", SETTINGS, "-v", "0")
        worker = fault_worker("--processes", "4", url=url)
        sent = _manage(url, "-m", "tests.faults.send_tasks", str(CRASH_TASKS), str(ledger), "once")
        assert sent.stdout.strip() == f"sent {CRASH_TASKS}"
        wait_until(
            lambda: _counts(url).get("COMPLETED", 0) >= CRASH_TASKS // 4, what="a quarter done"
        )

        _restart(server, mode="immediate")

        wait_until(lambda: _counts(url), what="the server to accept connections again")
        wait_settled(url, timeout_s=120)
        assert "database connection lost" in worker.log()
        runs = Counter(ledger.read_text().split())
        twice = sorted(int(i) for i, n in runs.items() if n > 1)
        assert not twice, f"{len(twice)} task(s) ran twice, e.g. {twice[:10]}"
        outcomes = rows(
            url,
            "SELECT t.kwargs->>'i', t.status, t.error_code, count(a.id) FROM horsies_task t "
            "LEFT JOIN horsies_task_attempt a ON a.task_id = t.id GROUP BY t.id",
        )
        assert len(outcomes) == CRASH_TASKS
        for i, status, code, attempt_count in outcomes:
            assert attempt_count == 1, (i, status, code, attempt_count)
            assert (status, code) in {("COMPLETED", None), ("FAILED", "WORKER_CRASHED")}
            if status == "COMPLETED":
                assert runs[i] == 1, f"task {i} COMPLETED without running"
        assert_invariants(url)
