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
from tests.faults.helpers import SETTINGS, StartFaultWorker
from tests.faults.invariants import assert_invariants, status_counts, wait_settled

TASKS = 400


def _manage(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip


def _restart(server: ThrowawayServer) -> None:
    """`pg_ctl restart -m fast` as the OS user the server runs as."""
    kwargs: dict[str, Any] = {}
    if server.runas:
        entry = pwd.getpwnam(server.runas)
        kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    cmd = [str(server.pg_ctl), "restart", "-D", str(server.datadir), "-m", "fast", "-w",
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
