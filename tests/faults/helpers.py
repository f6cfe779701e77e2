"""Processes and connections for fault injection: workers, their children, their backends.

Workers run `horsies_worker --settings tests.faults.settings` (short leases) in their own
process group, against DATABASE_URL or the URL of a dedicated server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from tests.conftest import ROOT, WorkerProcess, database_url, wait_until

SETTINGS = "tests.faults.settings"
APPLICATION_NAME = "horsies_worker"


@dataclass
class FaultWorker(WorkerProcess):
    """A worker subprocess that knows which database it talks to."""

    url: str = ""

    def worker_id(self) -> str | None:
        return str_or_none(
            one(
                self.url,
                "SELECT id::text FROM horsies_worker WHERE pid = %s "
                "ORDER BY started_at DESC LIMIT 1",
                self.pid,
            )
        )

    def state(self) -> str | None:
        return str_or_none(
            one(
                self.url,
                "SELECT state FROM horsies_worker WHERE pid = %s ORDER BY started_at DESC LIMIT 1",
                self.pid,
            )
        )

    def live_children(self) -> list[int]:
        """Pids of the pool children (not the multiprocessing resource tracker)."""
        try:
            return self.child_pids()
        except psutil.NoSuchProcess:
            return []

    def kill_group(self) -> None:
        """SIGKILL the parent and every child at once (a machine-level crash)."""
        os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


type StartFaultWorker = Callable[..., FaultWorker]


def start_fault_worker(
    log_path: Path, args: Sequence[str], *, url: str | None = None, wait: bool = True
) -> FaultWorker:
    """Start `horsies_worker` with the fault settings (and `url` as its DATABASE_URL)."""
    url = url or database_url()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": url}
    cmd = [
        sys.executable, "-m", "django", "horsies_worker", "--settings", SETTINGS,
        "--processes", "2", *args,
    ]  # fmt: skip
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
    worker = FaultWorker(proc, log_path, list(args), url=url)
    if wait:
        worker.wait_ready()
    return worker


def one(url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(url or database_url(), autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
        return None if row is None else row[0]


def rows(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url or database_url(), autocommit=True) as conn:
        return list(conn.execute(query, params).fetchall())


def str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def local_ports(pid: int) -> set[int]:
    """Local TCP ports of a process's sockets (to tell its database sessions apart)."""
    try:
        return {c.laddr.port for c in psutil.Process(pid).net_connections("tcp")}
    except psutil.NoSuchProcess:
        return set()


def worker_backends(
    workers: Sequence[FaultWorker], *, listen_only: bool = False, url: str = ""
) -> list[int]:
    """Backend pids of the database sessions of these workers' parents (optionally LISTENers).

    Sessions are matched by client port, so other processes using the same application_name
    (a result waiter in the test process, other workers) are left alone.
    """
    ports = set().union(*(local_ports(w.pid) for w in workers))
    query = (
        "SELECT pid, client_port FROM pg_stat_activity WHERE application_name = %s "
        "AND datname = current_database()"
    )
    if listen_only:
        query += " AND query ILIKE 'LISTEN%%'"
    return [int(pid) for pid, port in rows(url, query, APPLICATION_NAME) if port in ports]


def terminate_backends(pids: Sequence[int], url: str = "") -> int:
    """pg_terminate_backend each pid; returns how many were terminated."""
    if not pids:
        return 0
    return int(
        one(url, "SELECT count(*) FILTER (WHERE pg_terminate_backend(p)) FROM unnest(%s) p", pids)
    )


def marker_pids(marker: Path) -> list[int]:
    """Pids written by tasks that append their pid to `marker` when they start."""
    if not marker.exists():
        return []
    return [int(line) for line in marker.read_text().split()]


def wait_marker(marker: Path, count: int = 1, timeout_s: float = 60.0) -> list[int]:
    """Wait until `count` task runs have written their pid to `marker`."""
    found: list[int] = wait_until(
        lambda: (pids := marker_pids(marker)) and len(pids) >= count and pids,
        timeout_s=timeout_s,
        what=f"{count} run(s) to start ({marker.name})",
    )
    return found


def task_status(task_id: str, url: str = "") -> str | None:
    return str_or_none(one(url, "SELECT status FROM horsies_task WHERE id = %s", task_id))


def attempts(task_id: str, url: str = "") -> list[tuple[Any, ...]]:
    """(attempt, outcome, will_retry, error_code, worker_id, pid) of a task, oldest first."""
    return rows(
        url,
        "SELECT attempt, outcome, will_retry, error_code, worker_id::text, pid "
        "FROM horsies_task_attempt WHERE task_id = %s ORDER BY attempt",
        task_id,
    )


def leads_maintenance(worker: FaultWorker) -> bool:
    """Whether `worker` holds the maintenance leader's advisory lock in its database."""
    from horsies_django.maintenance.leader import LEADER_LOCK_KEY

    ports = rows(
        worker.url,
        "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = %s::bigint::oid "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        LEADER_LOCK_KEY,
    )
    local = local_ports(worker.pid)
    return any(port in local for (port,) in ports)
