"""horsies_django.testing, the pytest plugin and eager mode, used as a project's tests would."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection
from django.test import TestCase, override_settings

from horsies_django import RetryPolicy, TaskError, TaskResult, TaskStatus, app, pytest_plugin
from horsies_django.eager import IN_PROCESS_WORKER_ID, run_sent
from horsies_django.pytest_plugin import RunPending
from horsies_django.testing import assert_sent, run_pending, sent_tasks
from tests.conftest import sql_rows, sql_value
from tests.testapp.tasks import Order, add, boom, domain_error, echo, total_order

# Projects enable these with `pytest_plugins = ["horsies_django.pytest_plugin"]`.
horsies_run_pending = pytest_plugin.horsies_run_pending
horsies_eager = pytest_plugin.horsies_eager

FLAKY_RUNS: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _fresh_flaky_runs() -> None:
    """Each test starts with no flaky runs counted (a repeated test would see the last's)."""
    FLAKY_RUNS.clear()


@app.task("tests.helpers.flaky", retry_policy=RetryPolicy.fixed([30], auto_retry_for=["FLAKY"]))
def flaky(*, key: str) -> TaskResult[int, TaskError]:
    """Fails with FLAKY on its first run per key, then succeeds with the run count."""
    FLAKY_RUNS[key] = FLAKY_RUNS.get(key, 0) + 1
    if FLAKY_RUNS[key] == 1:
        return TaskResult(err=TaskError(error_code="FLAKY", message="first run fails"))
    return TaskResult(ok=FLAKY_RUNS[key])


@app.task("tests.helpers.fan_out")
def fan_out(*, n: int) -> TaskResult[int, TaskError]:
    """Sends `n` add tasks (run_pending runs them too)."""
    for i in range(n):
        add.send(a=i, b=1)
    return TaskResult(ok=n)


@app.task("tests.helpers.bad_sql")
def bad_sql() -> TaskResult[None, TaskError]:
    """Breaks the open transaction with a failing statement, then raises."""
    with connection.cursor() as cur:
        cur.execute("SELECT 1 / 0")
    return TaskResult(ok=None)


# --------------------------------------------------------------------------- TestCase style


class RunPendingInATestCase(TestCase):
    """The documented example: a plain TestCase, everything inside its transaction."""

    def test_sent_task_runs_without_a_worker(self) -> None:
        handle = add.send(a=2, b=3).ok_value
        ran = run_pending()
        assert [(r.task_id, r.status) for r in ran] == [(handle.task_id, "COMPLETED")]
        assert ran[0].result.ok_value == 5
        assert handle.get(timeout_ms=1000).ok_value == 5

    def test_assert_sent_matches_on_decoded_arguments(self) -> None:
        total_order.send(order=Order(order_id=7, items=["a"]))
        sent = assert_sent(total_order, count=1, order=Order(order_id=7, items=["a"]))
        assert sent[0].status == TaskStatus.PENDING
        assert_sent("tests.total_order", count=0, order=Order(order_id=8, items=["a"]))


# --------------------------------------------------------------------------- pytest style


def test_fixture_runs_tasks_in_claim_order(horsies_run_pending: RunPending) -> None:
    first = add.send(a=1, b=1).ok_value
    second = echo.send(value={"k": [1, 2]}).ok_value
    ran = horsies_run_pending()
    assert [r.task_id for r in ran] == [first.task_id, second.task_id]
    assert [r.result.ok_value for r in ran] == [2, {"k": [1, 2]}]
    assert run_pending() == []


def test_run_pending_filters_by_task_and_count(horsies_run_pending: RunPending) -> None:
    adds = [add.send(a=i, b=0).ok_value.task_id for i in range(3)]
    other = echo.send(value="x").ok_value.task_id
    ran = horsies_run_pending(task_names=[add], max_tasks=2)
    assert [r.task_id for r in ran] == adds[:2]
    assert [s.status for s in sent_tasks()] == ["COMPLETED", "COMPLETED", "PENDING", "PENDING"]
    assert [r.task_id for r in horsies_run_pending(task_names=["tests.echo"])] == [other]


def test_tasks_sent_by_tasks_run_too(horsies_run_pending: RunPending) -> None:
    fan_out.send(n=3)
    ran = horsies_run_pending()
    assert [r.task_name for r in ran] == ["tests.helpers.fan_out"] + ["tests.add"] * 3
    assert len(assert_sent(add, count=1, a=2, b=1)) == 1


def test_failures_are_recorded_like_a_worker_does(horsies_run_pending: RunPending) -> None:
    crashed = boom.send().ok_value
    refused = domain_error.send(reason="none left").ok_value
    ran = {r.task_id: r for r in horsies_run_pending()}
    assert ran[crashed.task_id].status == TaskStatus.FAILED
    assert ran[crashed.task_id].result.err_value.error_code == "UNHANDLED_EXCEPTION"
    assert refused.get(timeout_ms=1_000).err_value.error_code == "OUT_OF_STOCK"
    info = crashed.info(include_attempts=True).ok_value
    assert info is not None
    assert info.attempts is not None
    assert [(a.outcome, a.worker_id) for a in info.attempts] == [
        ("FAILED", str(IN_PROCESS_WORKER_ID))
    ]


def test_a_task_that_breaks_the_transaction_does_not_break_the_test(
    horsies_run_pending: RunPending,
) -> None:
    handle = bad_sql.send().ok_value
    [ran] = horsies_run_pending()
    assert ran.status == TaskStatus.FAILED
    assert "division by zero" in str(ran.result.err_value.message)
    assert handle.info().ok_value is not None  # the test's transaction is still usable


def test_scheduled_tasks_and_retries_wait_for_their_time(horsies_run_pending: RunPending) -> None:
    later = add.schedule(3_600, a=1, b=2).ok_value
    retried = flaky.send(key="wait").ok_value
    [ran] = horsies_run_pending()
    assert (ran.task_id, ran.status, ran.will_retry) == (retried.task_id, "PENDING", True)
    assert horsies_run_pending() == []
    assert [s.status for s in sent_tasks()] == ["PENDING", "PENDING"]
    assert later.task_id in {s.task_id for s in sent_tasks(add)}


def test_assert_sent_failure_lists_what_was_sent(db: None) -> None:
    add.send(a=1, b=2)
    with pytest.raises(AssertionError, match=r"found 0; sends of tests\.add:\n  tests\.add"):
        assert_sent(add, a=99)
    with pytest.raises(AssertionError, match="expected 2 send"):
        assert_sent(add, count=2)
    with pytest.raises(TypeError, match="not a task"):
        assert_sent(42)


def test_run_pending_rejects_a_negative_max(db: None) -> None:
    with pytest.raises(ValueError, match="max_tasks"):
        run_pending(max_tasks=-1)


@pytest.mark.usefixtures("clean_tables")
def test_run_pending_commits_outside_a_transaction(tmp_path: Path) -> None:
    handle = add.send(a=20, b=22).ok_value
    [ran] = run_pending()
    assert ran.result.ok_value == 42
    assert sql_value("SELECT status FROM horsies_task WHERE id = %s", handle.task_id) == (
        "COMPLETED"
    )
    assert sql_rows("SELECT attempt, outcome FROM horsies_task_attempt") == [(1, "COMPLETED")]


# --------------------------------------------------------------------------- eager mode


def test_run_sent_runs_retries_at_once(db: None) -> None:
    handle = flaky.send(key="eager").ok_value
    ran = run_sent(handle.task_id)
    assert ran is not None
    assert (ran.status, ran.result.ok_value) == ("COMPLETED", 2)
    info = handle.info(include_attempts=True).ok_value
    assert info is not None
    assert info.attempts is not None
    assert [a.outcome for a in info.attempts] == ["COMPLETED", "FAILED"]
    assert run_sent(handle.task_id) is None  # already finished: nothing to run


def test_horsies_eager_fixture_turns_eager_on(horsies_eager: None) -> None:
    from horsies_django.eager import enabled

    assert enabled()


def test_eager_send_returns_a_finished_handle(db: None) -> None:
    with override_settings(HORSIES={"EAGER": True}):
        handle = add.send(a=4, b=5).ok_value
        assert [s.status for s in sent_tasks(add)] == ["COMPLETED"]
        assert handle.get(timeout_ms=1_000).ok_value == 9
        many = add.send_many([{"a": 1, "b": 1}, {"a": 2, "b": 2}])
        assert [r.ok_value.get(timeout_ms=1_000).ok_value for r in many] == [2, 4]
