"""Lifecycle signals: sent, started, finished, retried, crashed — in a worker and in eager mode.

In a worker, receivers live in `tests.testapp.signal_receivers` (loaded through TASK_MODULES)
and write one JSON line per call to a file, so the test sees what ran in which process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from horsies_django import signals
from tests.conftest import wait_until
from tests.testapp import tasks
from tests.worker_helpers import TASK_MODULES, StartWorker, configured_workers

pytestmark = pytest.mark.usefixtures("clean_tables")


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[StartWorker]:
    yield from configured_workers(tmp_path)


@pytest.fixture
def signal_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file the worker's receivers write to (workers inherit the environment)."""
    path = tmp_path / "signals.jsonl"
    monkeypatch.setenv("HORSIES_TEST_SIGNAL_LOG", str(path))
    return path


def entries(path: Path, task_id: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in lines if e.get("task_id") == task_id]


def signals_of(path: Path, task_id: str) -> list[str]:
    return [e["signal"] for e in entries(path, task_id)]


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every signal sent in this process while the test runs, as (signal name, arguments)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    receivers = []
    for name in ("task_sent", "task_started", "task_finished", "task_retried", "task_crashed"):

        def receiver(sender: str, _name: str = name, **arguments: Any) -> None:
            calls.append((_name, {"sender": sender, **arguments}))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((name, receiver))
    yield calls
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


def test_worker_sends_started_finished_retried_and_crashed_in_the_right_processes(
    configured: StartWorker, signal_log: Path, tmp_path: Path
) -> None:
    worker = configured({"TASK_MODULES": [*TASK_MODULES, "tests.testapp.signal_receivers"]})
    ok = tasks.add.send(a=2, b=3).ok_value
    boom = tasks.boom.send().ok_value
    flaky = tasks.flaky.send(counter=str(tmp_path / "flaky"), failures=1).ok_value
    crash = tasks.exit_child.send(marker=str(tmp_path / "crash")).ok_value
    for handle in (ok, boom, flaky, crash):
        handle.get(timeout_ms=60_000)
    wait_until(lambda: "task_crashed" in signals_of(signal_log, crash.task_id), what="crashed")

    started, finished = entries(signal_log, ok.task_id)
    assert (started["signal"], started["attempt"], started["sender"]) == (
        "task_started", 1, "tests.add",
    )  # fmt: skip
    assert (finished["signal"], finished["ok"]) == ("task_finished", True)
    assert "exception" not in finished
    assert finished["duration_s"] >= 0
    assert started["in_pid"] == finished["in_pid"] != worker.pid  # in the child that ran it

    (_, boom_finished) = entries(signal_log, boom.task_id)
    assert (boom_finished["exception"], boom_finished["result_code"]) == (
        "ValueError",
        "UNHANDLED_EXCEPTION",
    )

    flaky_signals = [(e["signal"], e["attempt"]) for e in entries(signal_log, flaky.task_id)]
    assert ("task_retried", 1) in flaky_signals
    assert (
        flaky_signals.count(("task_finished", 1)) == flaky_signals.count(("task_finished", 2)) == 1
    )
    (retried,) = [e for e in entries(signal_log, flaky.task_id) if e["signal"] == "task_retried"]
    assert (retried["error_code"], retried["delay_s"]) == ("TIMEOUT", 1.0)
    assert retried["in_pid"] == worker.pid  # decided where the outcome is recorded

    crashed = [e for e in entries(signal_log, crash.task_id) if e["signal"] == "task_crashed"]
    assert [(e["error_code"], e["in_pid"] == worker.pid) for e in crashed] == [
        ("WORKER_CRASHED", True)
    ]
    (began,) = [e for e in entries(signal_log, crash.task_id) if e["signal"] == "task_started"]
    assert crashed[0]["pid"] == began["in_pid"]  # the pid of the child that died


def test_eager_mode_sends_every_signal_in_the_sending_process(
    received: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    with override_settings(HORSIES={**settings.HORSIES, "EAGER": True}):
        handle = tasks.flaky.send(counter=str(tmp_path / "flaky"), failures=1).ok_value
    assert handle.get(timeout_ms=1_000).ok_value == 2
    mine = [(name, args) for name, args in received if args["task_id"] == handle.task_id]
    assert [(name, args.get("attempt")) for name, args in mine] == [
        ("task_sent", None),
        ("task_started", 1),
        ("task_finished", 1),
        ("task_retried", 1),
        ("task_started", 2),
        ("task_finished", 2),
    ]
    sent = mine[0][1]
    assert (sent["sender"], sent["task_name"], sent["queue_name"]) == (
        "tests.flaky", "tests.flaky", "default",
    )  # fmt: skip
    first, last = mine[2][1], mine[5][1]
    assert first["result"].err_value.error_code == "TIMEOUT"
    assert last["result"].ok_value == 2
    assert mine[3][1]["error_code"] == "TIMEOUT"


def test_a_receiver_that_raises_never_changes_the_outcome(tmp_path: Path) -> None:
    def broken(sender: str, **_: Any) -> None:
        raise RuntimeError("receiver bug")

    for signal in (signals.task_sent, signals.task_started, signals.task_finished):
        signal.connect(broken, weak=False)
    try:
        with override_settings(HORSIES={**settings.HORSIES, "EAGER": True}):
            result = tasks.add.send(a=1, b=1)
    finally:
        for signal in (signals.task_sent, signals.task_started, signals.task_finished):
            signal.disconnect(broken)
    assert result.is_ok()
    assert result.ok_value.get(timeout_ms=1_000).ok_value == 2
