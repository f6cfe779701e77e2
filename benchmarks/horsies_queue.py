"""horsies_django under benchmark: its public send/send_many/get API and its worker command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.measure import WorkerGroup
from benchmarks.startup import trace_path

SETTINGS = "benchmarks.benchproject.settings"
REPO_ROOT = Path(__file__).resolve().parent.parent


class HorsiesQueue:
    name = "horsies_django"
    count_total_sql = "SELECT count(*) FROM horsies_task"
    any_done_sql = (
        "SELECT count(*) FROM "
        "(SELECT 1 FROM horsies_task WHERE status = 'COMPLETED' LIMIT 1) AS first"
    )
    count_done_sql = "SELECT count(*) FROM horsies_task WHERE status = 'COMPLETED'"
    count_failed_sql = (
        "SELECT count(*) FROM horsies_task WHERE status IN ('FAILED', 'CANCELLED', 'EXPIRED')"
    )

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.noop: Any = None
        self.task: Any = None  # what send_one/send_bulk send: the task of the work in use

    def prepare(self) -> None:
        """django.setup() with the benchmark settings and migrate (untimed)."""
        os.environ["DATABASE_URL"] = self.database_url
        os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        from benchmarks.benchtasks.tasks import noop

        self.noop = self.task = noop

    def use_work(self, work: str) -> None:
        """Send the task of `work` (benchmarks/work.py) from now on."""
        from benchmarks.benchtasks import tasks

        self.task = getattr(tasks, work)

    def clear(self) -> None:
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SET lock_timeout = '20s'")
            cur.execute("TRUNCATE horsies_task_attempt, horsies_task, horsies_worker CASCADE")

    def send_one(self, i: int) -> None:
        result = self.task.send(i=i)
        if result.is_err():
            raise RuntimeError(f"send failed: {result.err_value}")

    def send_bulk(self, items: list[int]) -> None:
        for result in self.task.send_many([{"i": i} for i in items]):
            if result.is_err():
                raise RuntimeError(f"send_many failed: {result.err_value}")

    def send_and_wait(self, i: int, timeout_s: float) -> None:
        sent = self.noop.send(i=i)
        if sent.is_err():
            raise RuntimeError(f"send failed: {sent.err_value}")
        outcome = sent.value.get(timeout_ms=int(timeout_s * 1000))
        if outcome.is_err():
            raise RuntimeError(f"task {sent.value.task_id} did not succeed: {outcome.err_value}")

    def worker_group(self, processes: int, log_path: Path) -> WorkerGroup:
        argv = [
            sys.executable, "-m", "django", "horsies_worker",
            "--settings", SETTINGS, f"--processes={processes}", "--verbosity=0",
        ]  # fmt: skip
        env = {
            "DATABASE_URL": self.database_url,
            "PYTHONPATH": str(REPO_ROOT),
            "HORSIES_WORKER_STARTUP_TRACE": str(trace_path(log_path)),  # see benchmarks.startup
        }
        return WorkerGroup([argv], env, REPO_ROOT, log_path)

    def close(self) -> None:
        from django.db import connections

        connections.close_all()
