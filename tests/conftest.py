"""Shared fixtures: the real PostgreSQL from DATABASE_URL, and real worker processes.

The suite runs against the database named by DATABASE_URL (a throwaway server started by
`./dev test`): it is migrated once, and tests that need workers use transactional tests so
that what they send is committed and visible to the worker processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 60.0


FAULTS = ROOT / "tests" / "faults"

# Property tests assume nothing about the machine's speed: no per-example deadline, and no
# "input generation is slow" failure (a fresh clone's first text strategy builds Hypothesis's
# Unicode tables, which took 1.2 s on a loaded machine and failed a codec test).
hypothesis_settings.register_profile(
    "horsies", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("horsies")


def pytest_configure(config: pytest.Config) -> None:
    """Processes the tests start get SIGINT's default action, however pytest was started.

    A suite run in the background by a non-interactive shell (`./dev test > log &`, a CI
    script) inherits SIGINT ignored, and an ignored signal stays ignored across fork and exec:
    the demo, `horsies_status --watch` and workers would shrug off the Ctrl-C the tests send
    them. A handler (unlike SIG_IGN) is reset to the default in every process started.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault-injection suite is `slow`: `-m "not slow and not browser"` is the fast part."""
    for item in items:
        if item.path.is_relative_to(FAULTS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker: Any) -> None:
    """Use the throwaway database itself (workers connect to it too), migrated once."""
    with django_db_blocker.unblock():
        call_command("migrate", verbosity=0)


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.fail("DATABASE_URL is not set: run the suite with ./dev test")
    return url


def sql_value(query: str, *params: Any) -> Any:
    """One value from a fresh autocommit connection (sees what other processes committed)."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
        return None if row is None else row[0]


def sql_rows(query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        return list(conn.execute(query, params).fetchall())


def wait_until(
    condition: Callable[[], Any], *, timeout_s: float = DEADLINE_S, what: str = "condition"
) -> Any:
    """Poll `condition` until it returns something truthy, or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)  # polling interval of a bounded wait, not a synchronisation sleep


def pool_children(worker_pid: int) -> list[Any]:
    """The pool children of a worker parent: the processes its fork server forked (the worker's
    only grandchildren; the fork server may be a fork of the worker, with its command line)."""
    import psutil

    def alive(process: psutil.Process) -> bool:
        try:  # a process that exits while we look (a zombie included) is skipped, not fatal
            return bool(process.status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False

    children: list[Any] = []
    for server in filter(alive, psutil.Process(worker_pid).children()):
        with contextlib.suppress(psutil.NoSuchProcess):
            children += filter(alive, server.children())
    return children


@dataclass
class WorkerProcess:
    """A `manage.py horsies_worker` subprocess."""

    proc: subprocess.Popen[str]
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def worker_id(self) -> str | None:
        value = sql_value(
            "SELECT id::text FROM horsies_worker WHERE pid = %s ORDER BY started_at DESC LIMIT 1",
            self.pid,
        )
        return str(value) if value else None

    def wait_ready(self, timeout_s: float = DEADLINE_S) -> None:
        """Until the worker is registered and every child has reported ready."""
        wait_until(
            lambda: self.proc.poll() is not None or "started:" in self.log(),
            timeout_s=timeout_s,
            what="worker start",
        )
        if self.proc.poll() is not None:
            pytest.fail(f"worker exited with {self.proc.returncode}:\n{self.log()}")

    def child_pids(self) -> list[int]:
        return [c.pid for c in pool_children(self.pid)]

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout_s: float = DEADLINE_S) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def worker_argv(settings_module: str, *args: str) -> list[str]:
    """The command line of a `horsies_worker` run with these settings and arguments."""
    return [sys.executable, "-m", "django", "horsies_worker", "--settings", settings_module, *args]


def launch_worker(
    settings_module: str, args: tuple[str, ...], log_path: Path, env: dict[str, str]
) -> WorkerProcess:
    """A `horsies_worker` subprocess in its own process group, logging to `log_path`."""
    cmd = worker_argv(settings_module, *args)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    return WorkerProcess(proc, log_path, list(args))


def stop_all(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        worker.stop()
        worker.kill()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: start a worker subprocess with extra CLI args; all are stopped afterwards."""
    started: list[WorkerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True) -> WorkerProcess:
        worker = launch_worker(
            os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
            ("--processes", "2", *args),
            tmp_path / f"worker-{len(started)}.log",
            {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )
        worker.args = list(args)
        started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    stop_all(started)


@pytest.fixture
def update_log() -> Iterator[None]:
    """Every UPDATE of horsies_task logged by a test-only trigger (see tests/update_log.py)."""
    from tests.update_log import recording_updates  # it imports this module

    with recording_updates():
        yield


@pytest.fixture
def clean_tables(transactional_db: None) -> Iterator[None]:
    """A transactional test with empty horsies tables (committed data is visible to workers)."""
    _truncate()
    yield
    _truncate()


def _truncate() -> None:
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE horsies_task_attempt, horsies_task, horsies_worker, horsies_workflow_node, "
            "horsies_workflow, horsies_schedule"
        )
