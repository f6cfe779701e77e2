"""Results within limits: over `HORSIES["MAX_RESULT_BYTES"]` a task ends FAILED with
RESULT_TOO_LARGE, decided in the child so the worker parent never receives the big value; error
texts (exception messages, tracebacks) are cut and made storable, so every outcome is recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.conf import settings
from django.test import override_settings

from horsies_django import OperationalErrorCode, TaskError, TaskResult
from horsies_django.execution import MAX_ERROR_TEXT_CHARS
from tests.conftest import sql_rows, sql_value
from tests.testapp.hostile_tasks import big_error, big_result, raise_chars
from tests.testapp.tasks import add
from tests.worker_helpers import TASK_MODULES, StartWorker, configured_workers

pytestmark = pytest.mark.usefixtures("clean_tables")

HOSTILE_TASK_MODULES = (*TASK_MODULES, "tests.testapp.hostile_tasks")
LONG_MS = 120_000
MIB = 1024 * 1024


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartWorker]:
    yield from configured_workers(tmp_path)


def eager(**horsies: Any) -> Any:
    return override_settings(HORSIES={**settings.HORSIES, "EAGER": True, **horsies})


def too_large(result: TaskResult[Any, TaskError], task_name: str, size: str) -> str:
    """The RESULT_TOO_LARGE message of `result`, checked for what it must name."""
    error = result.err_value
    assert error.error_code is OperationalErrorCode.RESULT_TOO_LARGE, error
    message = str(error.message)
    assert message.startswith(f"{task_name} returned a result of at least {size} bytes of JSON")
    assert "HORSIES['MAX_RESULT_BYTES'] = 10,485,760 bytes" in message
    assert "return a reference to it" in message
    return message


def peak_rss(pid: int) -> int:
    """The peak resident set size of a process so far (VmHWM, in bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def test_a_200_mib_result_fails_in_the_child_and_the_parent_stays_small(
    start: StartWorker,
) -> None:
    worker = start({"TASK_MODULES": HOSTILE_TASK_MODULES}, "--processes", "1")
    assert add.send(a=1, b=1).ok_value.get(timeout_ms=LONG_MS).ok_value == 2  # warmed up
    parent = psutil.Process(worker.pid)
    rss_before = parent.memory_info().rss

    handle = big_result.send(megabytes=200).ok_value
    result = handle.get(timeout_ms=LONG_MS)

    too_large(result, "tests.hostile.big_result", "209,715,200")
    assert sql_rows(
        "SELECT t.status, a.outcome, a.error_code, length(t.result::text) < 1000 "
        "FROM horsies_task t JOIN horsies_task_attempt a ON a.task_id = t.id WHERE t.id = %s",
        handle.task_id,
    ) == [("FAILED", "FAILED", "RESULT_TOO_LARGE", True)]
    peak = peak_rss(worker.pid)
    assert parent.is_running()
    assert peak - rss_before < 64 * MIB, (
        f"worker parent peaked at {peak / MIB:.0f} MiB from {rss_before / MIB:.0f} MiB"
    )


def test_results_over_the_limit_fail_in_eager_mode_too() -> None:
    with eager():
        ok_side = big_result.send(megabytes=11).ok_value.get(timeout_ms=LONG_MS)
        err_side = big_error.send(megabytes=11).ok_value.get(timeout_ms=LONG_MS)
        within = big_result.send(megabytes=9).ok_value.get(timeout_ms=LONG_MS)
    too_large(ok_side, "tests.hostile.big_result", "11,534,336")
    too_large(err_side, "tests.hostile.big_error", "11,534,363")
    assert within.ok_value == "x" * 9 * MIB
    assert sql_value("SELECT count(*) FROM horsies_task WHERE status = 'FAILED'") == 2


def test_a_raised_limit_lets_a_larger_result_through() -> None:
    with eager(MAX_RESULT_BYTES=12 * MIB):
        result = big_result.send(megabytes=11).ok_value.get(timeout_ms=LONG_MS)
    assert len(result.ok_value) == 11 * MIB


def _recorded_error(result: TaskResult[Any, TaskError]) -> str:
    error = result.err_value
    assert error.error_code is OperationalErrorCode.UNHANDLED_EXCEPTION, error
    return str(error.message)


@pytest.mark.parametrize(
    ("codepoint", "escaped"), [(0, "\\u0000\\u0000"), (0xD800, "\\ud800\\ud800")]
)
def test_exception_texts_postgresql_cannot_store_are_escaped(codepoint: int, escaped: str) -> None:
    with eager():
        result = raise_chars.send(codepoint=codepoint, repeat=2).ok_value.get(timeout_ms=LONG_MS)
    assert _recorded_error(result).endswith(f"ValueError: {escaped}")
    assert result.err_value.exception == {"type": "builtins.ValueError", "message": escaped}
    (traceback,) = sql_value("SELECT array_agg(traceback) FROM horsies_task_attempt")
    assert escaped in traceback


def test_every_outcome_is_recorded_by_a_worker_whatever_the_exception_says(
    start: StartWorker,
) -> None:
    """One unstorable error text used to poison the worker's batch of outcomes for ever."""
    start({"TASK_MODULES": HOSTILE_TASK_MODULES}, "--processes", "2")
    nul = raise_chars.send(codepoint=0).ok_value
    huge = raise_chars.send(codepoint=ord("A"), repeat=50 * MIB).ok_value
    after = add.send(a=2, b=3).ok_value

    assert _recorded_error(nul.get(timeout_ms=LONG_MS)).endswith("ValueError: \\u0000")
    message = _recorded_error(huge.get(timeout_ms=LONG_MS))
    assert "characters cut ...]" in message
    assert len(message) < MAX_ERROR_TEXT_CHARS + 200
    assert after.get(timeout_ms=LONG_MS).ok_value == 5
    lengths = sql_rows("SELECT length(failed_reason) FROM horsies_task WHERE failed_reason > ''")
    assert all(length < MAX_ERROR_TEXT_CHARS + 200 for (length,) in lengths), lengths
