"""Helpers for the worker/results tests: workers with per-test settings, processes, sockets.

A worker with other settings (a long poll interval, custom queues, extra task modules) runs
with a settings module generated in the test's tmp_path, which is put on its PYTHONPATH.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg

from horsies_django.db.outbox import numbered
from horsies_django.db.producer_queries import SELECT_OUTCOMES
from tests.conftest import (
    ROOT,
    WorkerProcess,
    database_url,
    launch_worker,
    pool_children,
    sql_rows,
    stop_all,
    worker_argv,
)

TASK_MODULES = ("tests.testapp.tasks", "tests.testapp.worker_tasks")

type StartWorker = Callable[..., WorkerProcess]


def write_settings(directory: Path, name: str, horsies: dict[str, Any]) -> str:
    """A settings module `name` in `directory`: tests.settings with HORSIES keys overridden."""
    body = (
        "from tests.settings import *  # noqa: F403\n"
        "from tests.settings import HORSIES as _BASE\n\n"
        f"HORSIES = {{**_BASE, **{horsies!r}}}\n"
    )
    (directory / f"{name}.py").write_text(body)
    return name


def configured_workers(tmp_path: Path) -> Iterator[StartWorker]:
    """Body of a fixture: `start(horsies_overrides, *cli_args)` -> a worker with those settings.

    TASK_MODULES defaults to the test apps' tasks plus `tests.testapp.worker_tasks`. Test
    modules wrap it: `yield from configured_workers(tmp_path)`; workers stop at teardown.
    """
    started: list[WorkerProcess] = []

    def start(horsies: dict[str, Any], *args: str, wait: bool = True) -> WorkerProcess:
        index = len(started)
        module = write_settings(
            tmp_path, f"worker_settings_{index}", {"TASK_MODULES": TASK_MODULES, **horsies}
        )
        worker = launch_worker(
            module,
            args,
            tmp_path / f"configured-worker-{index}.log",
            {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])},
        )
        started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    stop_all(started)


def run_worker_command(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `horsies_worker` with `args` to completion (for arguments that must be refused)."""
    cmd = worker_argv("tests.settings", *args)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def tcp_ports(pid: int) -> set[int]:
    """Local TCP ports of the sockets process `pid` has open (its database connections)."""
    return {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.laddr}


def listen_backends(pid: int) -> list[int]:
    """Backends LISTENing for horsies whose client socket belongs to process `pid`: their last
    statement is a LISTEN, or the result listener's read of the tasks it was notified of."""
    ports = tcp_ports(pid)
    rows = sql_rows(
        "SELECT client_port FROM pg_stat_activity "
        "WHERE application_name = 'horsies_worker' AND (query ILIKE 'LISTEN%%' OR query = %s)",
        numbered(SELECT_OUTCOMES),
    )
    return [port for (port,) in rows if port in ports]


def child_processes(worker: WorkerProcess) -> list[psutil.Process]:
    """The worker's pool children (not its fork server or resource tracker)."""
    children: list[psutil.Process] = pool_children(worker.pid)
    return children


def sql_script(script: str) -> None:
    """Run several statements (no parameters) on a fresh autocommit connection."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(script.encode())
