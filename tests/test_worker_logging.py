"""What the worker tells operators: registered tasks at start-up, one line per task, failures
with their code and traceback, a resolution error naming the module, `-v` levels, JSON lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from horsies_django import TaskError, TaskResult, app
from horsies_django.types import OperationalErrorCode
from tests.conftest import WorkerProcess, wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.usefixtures("clean_tables")


@app.task("tests.logging.only_in_the_sender")
def only_in_the_sender() -> TaskResult[str, TaskError]:
    """Registered by this test module, which workers never import."""
    return TaskResult(ok="unreachable")


def _finished_lines(worker: WorkerProcess, *task_ids: str) -> str:
    wait_until(
        lambda: all(f"[{task_id}]" in worker.log() for task_id in task_ids),
        what="a line for every task",
    )
    return worker.log()


def test_worker_logs_tasks_outcomes_tracebacks_and_what_it_cannot_run(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker()
    ok = tasks.add.send(a=2, b=3).ok_value
    domain = tasks.domain_error.send(reason="none left").ok_value
    boom = tasks.boom.send().ok_value
    missing = only_in_the_sender.send().ok_value
    for handle in (ok, domain, boom):
        handle.get(timeout_ms=30_000)
    unresolved = missing.get(timeout_ms=30_000).err_value
    log = _finished_lines(worker, ok.task_id, domain.task_id, boom.task_id, missing.task_id)

    assert "task(s) registered: " in log
    assert "tests.add [default]" in log
    assert f"tests.add[{ok.task_id}] COMPLETED in " in log
    assert (
        f"tests.domain_error[{domain.task_id}] attempt 1 FAILED with OUT_OF_STOCK: none left" in log
    )
    assert f"tests.boom[{boom.task_id}] attempt 1 FAILED with UNHANDLED_EXCEPTION" in log
    boom_line = log[log.index(f"tests.boom[{boom.task_id}]") :]
    assert "Traceback (most recent call last):" in boom_line
    assert 'raise ValueError("kaboom")' in boom_line
    expected = (
        "no task named 'tests.logging.only_in_the_sender' is registered in this worker; the "
        "sender defined it in module 'tests.test_worker_logging'"
    )
    assert expected in log
    assert unresolved.error_code == OperationalErrorCode.WORKER_RESOLUTION_ERROR
    assert expected in (unresolved.message or "")


def test_quiet_worker_logs_failures_but_not_successes(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker("-v", "0", wait=False)  # no INFO "started:" line to wait for
    ok = tasks.add.send(a=1, b=1).ok_value
    boom = tasks.boom.send().ok_value
    ok.get(timeout_ms=30_000)
    boom.get(timeout_ms=30_000)
    log = _finished_lines(worker, boom.task_id)
    assert f"[{ok.task_id}]" not in log
    assert "task(s) registered" not in log  # INFO


def test_json_log_format_writes_one_object_per_line_with_the_task_fields(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker("--log-format", "json")
    ok = tasks.add.send(a=2, b=2).ok_value
    domain = tasks.domain_error.send(reason="none left").ok_value
    boom = tasks.boom.send().ok_value
    for handle in (ok, domain, boom):
        handle.get(timeout_ms=30_000)
    _finished_lines(worker, ok.task_id, domain.task_id, boom.task_id)
    worker.stop()
    objects = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    by_task = {o.get("task_id"): o for o in objects if o.get("task_id")}
    done = by_task[ok.task_id]
    assert (done["logger"], done["level"], done["status"], done["attempt"]) == (
        "horsies_django.worker.tasks", "INFO", "COMPLETED", 1,
    )  # fmt: skip
    assert done["task_name"] == "tests.add"
    assert done["duration_s"] >= 0
    assert by_task[domain.task_id]["level"] == "WARNING"  # a domain error, not a bug
    failed = by_task[boom.task_id]
    assert (failed["level"], failed["status"], failed["error_code"]) == (
        "ERROR", "FAILED", "UNHANDLED_EXCEPTION",
    )  # fmt: skip
    assert "Traceback" in failed["message"]
    assert any("started:" in o["message"] for o in objects)
