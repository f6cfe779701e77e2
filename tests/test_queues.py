"""Queue modes, claim order, concurrency caps, pausing and --queues, with real workers."""

from __future__ import annotations

import importlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
from django.test import override_settings

from horsies_django import TaskSendOptions
from horsies_django.conf import horsies_settings, parse
from horsies_django.db import claim
from horsies_django.worker.claims import ClaimPlanner
from tests.conftest import WorkerProcess, database_url, sql_value, wait_until
from tests.update_log import forget_updates, logged_updates, wait_completed

pytestmark = pytest.mark.usefixtures("clean_tables")

StartWorker = Callable[..., WorkerProcess]

QUEUES = [
    {"name": "high", "priority": 1},
    {"name": "normal", "priority": 2},
    {"name": "low", "priority": 3},
    {"name": "capped", "priority": 2, "max_concurrency": 2},
    {"name": "paused", "priority": 1, "max_concurrency": 0},
]
CUSTOM: dict[str, Any] = {
    "QUEUE_MODE": "CUSTOM",
    "CUSTOM_QUEUES": QUEUES,
    "TASK_MODULES": ["tests.testapp.queue_tasks"],
    "HEARTBEAT_INTERVAL_MS": 500,
    "POLL_INTERVAL_MS": 500,
}


@pytest.fixture
def qtasks() -> Iterator[ModuleType]:
    """The CUSTOM-queue tasks, registered and sent under CUSTOM settings."""
    with override_settings(HORSIES=CUSTOM):
        yield importlib.import_module("tests.testapp.queue_tasks")


def custom_worker(start_worker: StartWorker, *args: str, **extra: Any) -> WorkerProcess:
    env = {"HORSIES_TEST_OVERRIDES": json.dumps({**CUSTOM, **extra})}
    return start_worker(*args, env=env)


def test_claim_order_is_queue_priority_then_task_priority_then_fifo(
    qtasks: ModuleType, start_worker: StartWorker, tmp_path: Path
) -> None:
    log = str(tmp_path / "order")
    qtasks.low.send(path=log, token="low-1")
    qtasks.normal.send(path=log, token="normal-fifo-1")
    qtasks.normal.send(path=log, token="normal-fifo-2")
    qtasks.normal.with_options(TaskSendOptions(priority=1)).send(path=log, token="normal-urgent")
    qtasks.high.send(path=log, token="high-1")
    qtasks.low.with_options(TaskSendOptions(priority=1)).send(path=log, token="low-urgent")
    custom_worker(start_worker, "--processes", "1")
    wait_until(
        lambda: Path(log).exists() and len(Path(log).read_text().split()) == 6, what="all six tasks"
    )
    assert Path(log).read_text().split() == [
        "high-1",
        "normal-urgent",
        "normal-fifo-1",
        "normal-fifo-2",
        "low-urgent",
        "low-1",
    ]


def test_queue_cap_holds_across_three_workers(
    qtasks: ModuleType, start_worker: StartWorker
) -> None:
    for _ in range(24):
        qtasks.capped.send(seconds=0.3)
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(database_url(), autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM horsies_task WHERE queue_name = 'capped'"
                    " AND status IN ('CLAIMED', 'RUNNING')"
                ).fetchone()
                samples.append(int(row[0]) if row else 0)
                stop.wait(0.003)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for _ in range(3):
            custom_worker(start_worker, "--processes", "3")
        wait_until(
            lambda: sql_value("SELECT count(*) FROM horsies_task WHERE status = 'COMPLETED'") == 24,
            what="24 capped tasks",
        )
    finally:
        stop.set()
        sampler.join()
    assert len(samples) > 100
    assert max(samples) == 2, max(samples)


def test_cluster_wide_cap_holds(qtasks: ModuleType, start_worker: StartWorker) -> None:
    for _ in range(12):
        qtasks.capped.send(seconds=0.2)
    for i in range(12):
        qtasks.normal.send(path="/dev/null", token=str(i))
    peak = 0
    for _ in range(2):
        custom_worker(start_worker, "--processes", "3", CLUSTER_WIDE_CAP=3)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            active, done = conn.execute(
                "SELECT count(*) FILTER (WHERE status IN ('CLAIMED', 'RUNNING')),"
                " count(*) FILTER (WHERE status = 'COMPLETED') FROM horsies_task"
            ).fetchone() or (0, 0)
            peak = max(peak, active)
            if done == 24:
                break
            time.sleep(0.003)  # sampling period of the bounded poll
    assert done == 24
    assert peak <= 3


def test_a_claim_cut_short_by_a_cap_is_retried_when_a_task_finishes_anywhere(
    qtasks: ModuleType, start_worker: StartWorker, tmp_path: Path
) -> None:
    """Not at the next poll: with polls 10 minutes apart, twelve tasks go one at a time through
    CLUSTER_WIDE_CAP=1 on two workers, each woken by the notification of a finished task."""
    log = tmp_path / "capped-order"
    for i in range(12):
        qtasks.normal.send(path=str(log), token=str(i))
    for _ in range(2):
        custom_worker(
            start_worker, "--processes", "2", CLUSTER_WIDE_CAP=1, POLL_INTERVAL_MS=600_000
        )
    wait_until(
        lambda: sql_value("SELECT count(*) FROM horsies_task WHERE status = 'COMPLETED'") == 12,
        what="twelve tasks through a cap of one, long before the next poll",
    )
    assert sorted(log.read_text().split(), key=int) == [str(i) for i in range(12)]


def claimed_from(queue: str, count: int) -> list[claim.Claimed]:
    return [
        claim.Claimed(str(uuid.uuid4()), "t", "{}", 1, 0, "{}", None, None, queue)
        for _ in range(count)
    ]


def test_only_a_claim_that_a_cap_ended_waits_for_finished_tasks() -> None:
    """A claim that found no backlog is not repeated for every task finishing anywhere."""
    planner = ClaimPlanner(parse({**CUSTOM, "CLUSTER_WIDE_CAP": 3}), ["capped", "normal"])
    room = {"capped": 2, "normal": 4}  # 4 free children; the capped queue's cap leaves 2
    assert planner._cap_binding(claimed_from("capped", 2), room, 3, 4)  # its cap used up
    assert planner._cap_binding([], {"capped": 0, "normal": 0}, 0, 4)  # every cap full
    assert planner._cap_binding(claimed_from("normal", 3), room, 3, 4)  # the cluster cap
    assert not planner._cap_binding(claimed_from("capped", 1), room, 3, 4)  # backlog ran out
    assert not planner._cap_binding([], room, 4, 4)  # nothing to claim


def test_paused_queue_is_never_claimed(
    qtasks: ModuleType, start_worker: StartWorker, tmp_path: Path
) -> None:
    paused = qtasks.paused.send(token="p").ok_value
    custom_worker(start_worker)
    # Each is taken by a claim planned over every configured queue, the paused one included.
    for i in range(5):
        other = qtasks.high.send(path=str(tmp_path / "h"), token=f"h{i}").ok_value
        assert other.get(timeout_ms=30_000).ok_value == f"h{i}"
        assert sql_value("SELECT status FROM horsies_task WHERE id = %s", paused.task_id) == (
            "PENDING"
        )


def test_worker_queues_option_limits_claims(
    qtasks: ModuleType, start_worker: StartWorker, tmp_path: Path
) -> None:
    low = qtasks.low.send(path=str(tmp_path / "l"), token="l").ok_value
    high = qtasks.high.send(path=str(tmp_path / "h"), token="h").ok_value
    custom_worker(start_worker, "--queues", "high")
    assert high.get(timeout_ms=30_000).ok_value == "h"
    assert low.get(timeout_ms=1_500).is_err()
    assert sql_value("SELECT status FROM horsies_task WHERE id = %s", low.task_id) == "PENDING"
    custom_worker(start_worker, "--queues", "low,normal")
    assert low.get(timeout_ms=30_000).ok_value == "l"


def test_unknown_queue_in_worker_option_is_refused(start_worker: StartWorker) -> None:
    worker = start_worker("--queues", "nope", wait=False)
    assert worker.proc.wait(timeout=60) != 0
    assert "unknown queue" in worker.log()


@pytest.mark.usefixtures("update_log")
def test_cap_lock_is_taken_only_when_a_cap_applies(
    qtasks: ModuleType, start_worker: StartWorker
) -> None:
    """The cap lock (an advisory transaction lock) is held by claims of a capped queue only."""
    for _ in range(6):
        qtasks.capped.send(seconds=0.01)
    capped_worker = custom_worker(start_worker, "--queues", "capped")
    wait_completed(6)
    capped_claims = [u for u in logged_updates() if u.claimed]
    assert sum(u.claimed for u in capped_claims) == 6
    assert all(u.cap_locks >= 1 for u in capped_claims)
    capped_worker.stop()

    forget_updates()
    for i in range(6):
        qtasks.high.send(path="/dev/null", token=str(i))
    custom_worker(start_worker, "--queues", "high,normal")  # neither queue has a cap
    wait_completed(12)
    uncapped_claims = [u for u in logged_updates() if u.claimed]
    assert sum(u.claimed for u in uncapped_claims) == 6
    assert all(u.cap_locks == 0 for u in uncapped_claims)


# Both claim statements, as a worker of one queue and a worker of two queues send them.
CLAIMS = {
    "one queue": claim.claim_request(
        uuid.UUID(int=0), [claim.QueueSlot("default", rank=1, limit=32)], limit=32, lease_s=60
    ),
    "several queues": claim.claim_request(
        uuid.UUID(int=0),
        [claim.QueueSlot("default", rank=1, limit=32), claim.QueueSlot("other", rank=2, limit=32)],
        limit=32,
        lease_s=60,
    ),
}


def _claim_time_ms(conn: psycopg.Connection[Any], name: str, runs: int = 60) -> float:
    """Best-of-`runs` time of a 32-task claim, each rolled back (only its cost is measured)."""
    statement, params = CLAIMS[name]
    times = []
    for _ in range(runs):
        with conn.transaction():
            start = time.perf_counter()
            conn.execute(claim.CLAIM_STATEMENTS[statement], params).fetchall()
            times.append((time.perf_counter() - start) * 1000)
            raise psycopg.Rollback()
    return min(times)


def _insert_tasks(conn: psycopg.Connection[Any], finished: int, pending: int) -> None:
    conn.execute(
        "INSERT INTO horsies_task (id, task_name, queue_name, priority, status, kwargs, sent_at,"
        " enqueued_at, retry_count, max_retries, options, enqueue_sha, claim_gen, finished_at)"
        " SELECT gen_random_uuid(), 'tests.noop', 'default', 50,"
        " CASE WHEN g <= %(finished)s THEN 'COMPLETED' ELSE 'PENDING' END, '{}',"
        " now() - make_interval(secs => 2000000 - g), now() - make_interval(secs => 2000000 - g),"
        " 0, 0, '{}', '', 1, CASE WHEN g <= %(finished)s THEN now() END"
        " FROM generate_series(1, %(total)s) AS g",
        {"finished": finished, "total": finished + pending},
    )
    conn.execute("VACUUM (ANALYZE) horsies_task")  # settle hint bits: time the claim, not them


def test_claim_uses_partial_index_on_a_deep_backlog() -> None:
    """A 32-task claim costs about the same with 1,000,000 finished + 100,000 pending rows
    as on a near-empty table (64 pending rows), because it reads only the partial index: for
    the single-queue statement and the several-queues one alike."""
    assert horsies_settings().QUEUE_MODE == "DEFAULT"
    assert {statement for statement, _ in CLAIMS.values()} == set(claim.CLAIM_STATEMENTS)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        _insert_tasks(conn, finished=0, pending=64)
        small_ms = {name: _claim_time_ms(conn, name) for name in CLAIMS}
        conn.execute("TRUNCATE horsies_task_attempt, horsies_task")
        _insert_tasks(conn, finished=1_000_000, pending=100_000)
        for name, (statement, params) in CLAIMS.items():
            query = "EXPLAIN " + claim.CLAIM_STATEMENTS[statement]
            plan = "\n".join(str(r[0]) for r in conn.execute(query, params).fetchall())
            deep_ms = _claim_time_ms(conn, name)
            assert "horsies_task_claim_idx" in plan, (name, plan)
            assert "Seq Scan on horsies_task" not in plan, (name, plan)
            assert deep_ms <= 2 * small_ms[name], (name, small_ms[name], deep_ms)
