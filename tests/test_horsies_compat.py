"""Horsies users feel at home: horsies' spellings work, and the migration guide is findable.

The guide's own examples run in tests/test_docs.py; here, what needs a real worker or the
repository's layout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from horsies_django import OperationalErrorCode, OutcomeCode, TaskStatus
from tests.conftest import ROOT, WorkerProcess, sql_rows
from tests.testapp.tasks import hang, hang_retry

GUIDE = "howto-migrate-from-horsies.md"


@pytest.mark.usefixtures("clean_tables")
def test_a_timeout_reads_as_outcome_code_task_timeout(
    start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    start_worker("--processes", "1")
    timed_out = hang.send().ok_value
    retried = hang_retry.send(
        counter=str(tmp_path / "calls")
    ).ok_value  # auto_retry_for: TASK_TIMEOUT
    code = timed_out.get(timeout_ms=60_000).err_value.error_code
    assert code == OutcomeCode.TASK_TIMEOUT
    assert code == OperationalErrorCode.TASK_TIMEOUT
    match code:
        case OutcomeCode.TASK_TIMEOUT:
            pass
        case _:
            pytest.fail(f"{code!r} does not match OutcomeCode.TASK_TIMEOUT")
    assert retried.get(timeout_ms=60_000).ok_value == "second time lucky"
    info = retried.info(include_attempts=True).ok_value
    assert info is not None
    assert info.status == TaskStatus.COMPLETED
    assert [a.error_code for a in info.attempts or []] == [None, OutcomeCode.TASK_TIMEOUT]
    assert sql_rows("SELECT error_code FROM horsies_task WHERE id = %s", timed_out.task_id) == [
        ("TASK_TIMEOUT",)
    ]


def test_the_migration_guide_is_linked_from_the_index_and_the_readme() -> None:
    assert (ROOT / "docs" / GUIDE).exists()
    assert f"]({GUIDE})" in (ROOT / "docs" / "index.md").read_text()
    assert f"](docs/{GUIDE})" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    "horsies_name",
    [
        "AppConfig", "PostgresConfig", "discover_tasks", "resend_on_transient_err",
        "queue_mode", "custom_queues", "cluster_wide_cap", "exception_mapper",
        "default_unhandled_error_code", "retry_send_async", "retry_schedule", "TaskSendOptions",
        "good_until", "include_attempts", "info_async", "get_async", "send_async", "schedule",
        "WAIT_TIMEOUT", "SEND_SUPPRESSED", "ENQUEUE_FAILED", "PAYLOAD_MISMATCH", "CLAIMED",
        "TASK_TIMEOUT", "timeout_ms", "auto_retry_for", "RetryPolicy.exponential",
    ],
)  # fmt: skip
def test_the_guide_maps_each_horsies_name_of_the_seeds(horsies_name: str) -> None:
    assert horsies_name in (ROOT / "docs" / GUIDE).read_text()
