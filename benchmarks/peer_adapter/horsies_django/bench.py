"""horsies_django adapter for the shared harness (/work/shared/bench, see its README.md).

Producer: `noop.send(i=i)`, `noop.send_many([...])` and `handle.get()`; workers: one
`manage.py horsies_worker --processes=CONCURRENCY` (a parent, its fork server and CONCURRENCY
children).
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.environ.get("BENCH_LIB", "/work/shared/bench/lib"), HERE]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproj.settings")

import benchlib  # type: ignore[import-not-found]  # noqa: E402

TABLE = "horsies_task"


class HorsiesDjango(benchlib.Adapter):  # type: ignore[misc]
    name = "horsies_django"
    system = "horsies-django"
    version = f"{version('horsies-django')} (Django {version('django')})"
    settings = {
        "worker_model": "one `manage.py horsies_worker --processes=CONCURRENCY --verbosity=0` "
        "(parent claims/records; CONCURRENCY children forked by a fork server run tasks; "
        "no recycling)",
        "django": "CONN_MAX_AGE=600, DEBUG=False, HORSIES defaults",
        "send": "noop.send(i=i)",
        "bulk": "noop.send_many([{'i': i}, ...]) (one INSERT per chunk)",
        "result_wait": "handle.get(timeout_ms=...) (LISTEN/NOTIFY, polling fallback)",
    }
    count_total_sql = f"SELECT count(*) FROM {TABLE}"
    count_done_sql = f"SELECT count(*) FROM {TABLE} WHERE status = 'COMPLETED'"
    count_failed_sql = f"SELECT count(*) FROM {TABLE} WHERE status = 'FAILED'"
    drain_variants: dict[str, str] = {}
    has_bulk = True

    def prepare(self) -> None:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
        from benchtasks.tasks import noop  # type: ignore[import-not-found]
        from django.db import connection

        self.noop: Any = noop
        self.connection = connection

    def close(self) -> None:
        self.connection.close()

    def clear(self) -> None:
        with self.connection.cursor() as cur:
            cur.execute("SET lock_timeout = '20s'")
            cur.execute("TRUNCATE horsies_task_attempt, horsies_task, horsies_worker CASCADE")

    def enqueue_one(self, i: int) -> None:
        result = self.noop.send(i=i)
        if result.is_err():
            raise RuntimeError(f"send failed: {result.err_value}")

    def enqueue_bulk(self, items: list[int]) -> None:
        for result in self.noop.send_many([{"i": i} for i in items]):
            if result.is_err():
                raise RuntimeError(f"send_many failed: {result.err_value}")

    def send_and_wait(self, i: int, timeout_s: float) -> None:
        sent = self.noop.send(i=i)
        if sent.is_err():
            raise RuntimeError(f"send failed: {sent.err_value}")
        outcome = sent.value.get(timeout_ms=int(timeout_s * 1000))
        if outcome.is_err():
            raise RuntimeError(f"task {sent.value.task_id} did not succeed: {outcome.err_value}")

    def worker_specs(self, concurrency: int, variant: str | None) -> list[Any]:
        env = {
            "PYTHONPATH": HERE,
            "DATABASE_URL": self.p.database_url,
            "DJANGO_SETTINGS_MODULE": "benchproj.settings",
        }
        argv = [
            sys.executable, os.path.join(HERE, "manage.py"), "horsies_worker",
            f"--processes={concurrency}", "--verbosity=0",
        ]  # fmt: skip
        return [benchlib.WorkerSpec(argv, env=env, cwd=HERE, name="horsies_worker")]


if __name__ == "__main__":
    benchlib.main(HorsiesDjango())
