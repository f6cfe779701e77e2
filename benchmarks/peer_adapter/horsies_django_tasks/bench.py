"""horsies_django driven through Django's own task API (`django.tasks`), for the shared harness.

Producer: `noop.enqueue(i)` of a `@django.tasks.task` function, stored by
`horsies_django.backends.HorsiesBackend`; results read with `result.refresh()` every 1 ms (the
`django.tasks` result API polls, as the django_tasks_db adapter does). Workers: the same
`manage.py horsies_worker --processes=CONCURRENCY` as the horsies_django adapter, whose project
and settings this adapter shares (../horsies_django).
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SIBLING = os.path.join(os.path.dirname(HERE), "horsies_django")
_spec = importlib.util.spec_from_file_location("horsies_django_adapter", f"{SIBLING}/bench.py")
assert _spec is not None
assert _spec.loader is not None
_sibling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sibling)  # puts BENCH_LIB and ../horsies_django on sys.path

import benchlib  # type: ignore[import-not-found]  # noqa: E402


class HorsiesDjangoTasks(_sibling.HorsiesDjango):  # type: ignore[misc,name-defined]
    name = "horsies_django_tasks"
    system = "horsies-django via django.tasks"
    settings = {
        **_sibling.HorsiesDjango.settings,
        "django": "CONN_MAX_AGE=600, DEBUG=False, HORSIES defaults, "
        "TASKS={'default': {'BACKEND': 'horsies_django.backends.HorsiesBackend'}}",
        "send": "noop.enqueue(i) (django.tasks public API)",
        "bulk": "none (django.tasks has no bulk enqueue)",
        "result_wait": "result.refresh() every 1 ms until SUCCESSFUL (django.tasks polls)",
    }
    has_bulk = False

    def prepare(self) -> None:
        super().prepare()
        from benchtasks.dj_tasks import noop  # type: ignore[import-not-found]

        self.dj_noop: Any = noop

    def enqueue_one(self, i: int) -> None:
        self.dj_noop.enqueue(i)

    def send_and_wait(self, i: int, timeout_s: float) -> None:
        from django.tasks import TaskResultStatus

        result = self.dj_noop.enqueue(i)
        deadline = time.perf_counter() + timeout_s
        while True:
            result.refresh()
            if result.status == TaskResultStatus.SUCCESSFUL:
                return
            if result.status == TaskResultStatus.FAILED:
                raise RuntimeError(f"task {result.id} failed: {result.errors}")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"task {result.id} not done after {timeout_s}s")
            time.sleep(0.001)


if __name__ == "__main__":
    benchlib.main(HorsiesDjangoTasks())
