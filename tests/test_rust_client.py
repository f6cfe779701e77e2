"""End to end with the Rust client (clients/rust): Rust sends, a Python worker runs, Rust reads.

The driver is clients/rust/examples/e2e.rs: one scenario per run, one JSON object per line on
stdout. `./dev test` builds it offline before pytest; run alone, this module builds it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from horsies_django import TaskHandle
from tests.conftest import ROOT, database_url, sql_rows, sql_value

pytestmark = pytest.mark.usefixtures("clean_tables")

CRATE = ROOT / "clients/rust"
DRIVER = CRATE / "target/debug/examples/e2e"
RUN_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def driver() -> Path:
    """The e2e driver, built offline from Debian's crate sources if it is not built yet."""
    build = subprocess.run(
        [str(CRATE / "offline-cargo.sh"), "build", "--quiet", "--example", "e2e"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, f"the Rust client does not build:\n{build.stderr[-4000:]}"
    return DRIVER


def run(driver: Path, *scenario: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(driver), *scenario],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env={**os.environ, "DATABASE_URL": database_url()},
        check=False,
    )
    assert done.returncode == 0, f"{scenario}: exit {done.returncode}\n{done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def event(lines: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [line for line in lines if line["event"] == name]
    return found


def test_a_serde_struct_arrives_as_the_pydantic_model_and_the_typed_result_comes_back(
    driver: Path, start_worker: Any
) -> None:
    start_worker()
    lines = run(driver, "send_get")
    task_id = event(lines, "sent")["task_id"]
    assert event(lines, "result") == {
        "event": "result",
        "task_id": task_id,
        "ok": "order 123: 2 items",
    }
    # Python reads a Rust-sent task by id, and sees where it came from.
    assert TaskHandle.from_id(task_id).get(timeout_ms=5_000).ok_value == "order 123: 2 items"
    assert sql_value("SELECT sent_by FROM horsies_task WHERE id = %s", task_id) == "rust"


def test_task_errors_come_back_with_their_codes(driver: Path, start_worker: Any) -> None:
    start_worker()
    failed = event(run(driver, "task_error"), "result")["err"]
    assert failed["error_code"] == "OUT_OF_STOCK"
    assert failed["message"] == "failed with OUT_OF_STOCK"
    raised = event(run(driver, "unhandled"), "result")["err"]
    assert raised["error_code"] == "UNHANDLED_EXCEPTION"
    assert "rust.boom raised" in raised["message"]


def test_a_deadline_in_the_past_expires_and_a_schedule_waits(
    driver: Path, start_worker: Any
) -> None:
    start_worker()
    expired = event(run(driver, "expired"), "result")
    assert expired["err"]["error_code"] == "TASK_EXPIRED"
    assert sql_rows("SELECT status FROM horsies_task WHERE id = %s", expired["task_id"]) == [
        ("EXPIRED",)
    ]
    scheduled = run(driver, "schedule")
    task_id = event(scheduled, "scheduled")["task_id"]
    assert event(scheduled, "result")["ok"] == "order 7: 2 items"
    [(delay_s,)] = sql_rows(
        "SELECT extract(epoch FROM enqueued_at - sent_at)::float8 FROM horsies_task WHERE id = %s",
        task_id,
    )
    assert delay_s == pytest.approx(1.0)
    [(started_after_s,)] = sql_rows(
        "SELECT extract(epoch FROM a.started_at - t.sent_at)::float8 FROM horsies_task t "
        "JOIN horsies_task_attempt a ON a.task_id = t.id WHERE t.id = %s",
        task_id,
    )
    assert started_after_s >= 1.0


def test_bad_sends_are_refused_as_validation_failed_and_not_retryable(driver: Path) -> None:
    unknown = event(run(driver, "unknown_task"), "send_error")
    bad_args = event(run(driver, "bad_args"), "send_error")
    for refused in (unknown, bad_args):
        assert refused["code"] == "VALIDATION_FAILED"
        assert refused["retryable"] is False
    assert "rust.no_such_task" in unknown["message"]
    assert sql_rows("SELECT count(*) FROM horsies_task") == [(0,)]


def test_info_shows_the_task_and_its_attempts(driver: Path, start_worker: Any) -> None:
    start_worker()
    info = event(run(driver, "info"), "info")["info"]
    assert info["task_name"] == "rust.echo_order"
    assert info["status"] == "COMPLETED"
    assert info["queue_name"] == "default"
    assert [a["outcome"] for a in info["attempts"]] == ["COMPLETED"]


def test_retry_send_after_a_real_outage_replays_once(driver: Path) -> None:
    """The driver's connection is terminated between two sends: the second fails with
    ENQUEUE_FAILED (retryable, with its payload), and retry_send, twice, stores it once."""
    proc = subprocess.Popen(
        [str(driver), "outage"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DATABASE_URL": database_url()},
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    try:
        first = json.loads(proc.stdout.readline())
        connected = json.loads(proc.stdout.readline())
        assert first["event"] == "sent"
        assert connected["event"] == "connected"
        assert sql_value("SELECT pg_terminate_backend(%s)", connected["backend_pid"]) is True
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        proc.kill()
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    failed = event(lines, "send_error")
    assert failed["code"] == "ENQUEUE_FAILED", err
    assert failed["retryable"] is True
    assert failed["has_payload"] is True
    retries = [line for line in lines if line["event"] == "retry"]
    assert [r["task_id"] for r in retries] == [failed["task_id"]] * 2
    assert sql_rows("SELECT count(*) FROM horsies_task WHERE id = %s", failed["task_id"]) == [(1,)]
    assert sql_rows("SELECT count(*) FROM horsies_task") == [(2,)]
    [(stored_sha,)] = sql_rows(
        "SELECT enqueue_sha FROM horsies_task WHERE id = %s", failed["task_id"]
    )
    assert stored_sha == failed["enqueue_sha"]
