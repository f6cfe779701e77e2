"""`manage.py horsies_worker`: option validation, spawned children, queues, recycling.

Every test runs the real command in a subprocess against the real database.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from horsies_django import TaskHandle, app
from tests.conftest import WorkerProcess, sql_rows, sql_value, wait_until
from tests.testapp.tasks import add, boom, noop
from tests.worker_helpers import (
    StartWorker,
    child_processes,
    configured_workers,
    run_worker_command,
    sql_script,
    tcp_ports,
)

pytestmark = pytest.mark.usefixtures("clean_tables")


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[StartWorker]:
    yield from configured_workers(tmp_path)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("args", "option", "explanation"),
    [
        (["--processes", "0"], "--processes", "must be between 1 and 256"),
        (["--processes", "257"], "--processes", "must be between 1 and 256"),
        (["--processes", "two"], "--processes", "is not a whole number"),
        (["--max-tasks-per-child", "-1"], "--max-tasks-per-child", "0 (off) or more"),
        (["--max-tasks-per-child", "1.5"], "--max-tasks-per-child", "is not a whole number"),
        (["--queues", ",,"], "--queues", "comma-separated list of queue names"),
        (["--queues", "bad name!"], "--queues", "comma-separated list of queue names"),
        (["--queues", "default,nope"], "--queues", "unknown queue(s) ['nope']"),
        (["--shutdown-timeout", "0"], "--shutdown-timeout", "more than 0 seconds"),
    ],
)
def test_bad_option_values_exit_non_zero_naming_the_option(
    args: list[str], option: str, explanation: str
) -> None:
    done = run_worker_command(*args)
    assert done.returncode != 0
    assert option in done.stderr
    assert explanation in done.stderr
    assert "Traceback" not in done.stderr
    assert sql_value("SELECT count(*) FROM horsies_worker") == 0


def test_too_long_worker_name_is_refused_with_a_clear_error() -> None:
    done = run_worker_command("--worker-name", "w" * 300)
    assert done.returncode != 0
    assert "--worker-name" in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- processes


def test_processes_are_forked_by_a_fork_server_and_the_name_is_recorded(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker("--processes", "3", "--worker-name", "billing-1", "--queues", "default")
    children = wait_until(
        lambda: len(kids := child_processes(worker)) == 3 and kids, what="3 pool children"
    )
    for child in children:  # forked by the worker's fork server, a fork of the worker itself
        server = child.parent()
        assert server.pid != worker.pid
        assert server.parent().pid == worker.pid
        assert not server.net_connections("tcp")  # it holds no connection to hand down
    row = sql_rows(
        "SELECT name, processes, queues, pid FROM horsies_worker WHERE id = %s",
        worker.worker_id(),
    )
    assert row == [("billing-1", 3, ["default"], worker.pid)]
    assert "billing-1" in worker.log()

    handles = [add.send(a=i, b=1).ok_value for i in range(6)]
    assert [h.get(timeout_ms=30_000).ok_value for h in handles] == [i + 1 for i in range(6)]
    attempt_pids = {pid for (pid,) in sql_rows("SELECT pid FROM horsies_task_attempt")}
    assert attempt_pids <= {c.pid for c in children}
    assert worker.pid not in attempt_pids


def test_children_never_write_task_rows(start_worker: Callable[..., WorkerProcess]) -> None:
    """A probe trigger records the client socket of every write to the task tables: all of
    them come from the worker parent's connections, none from a child."""
    install_write_probe()
    try:
        worker = start_worker("--processes", "2")
        handles: list[TaskHandle[Any]] = [
            add.send(a=1, b=2).ok_value,
            boom.send().ok_value,
            noop.send().ok_value,
        ]
        for handle in handles:
            handle.get(timeout_ms=30_000)
        parent_ports = tcp_ports(worker.pid)
        child_ports = set().union(*(tcp_ports(c.pid) for c in child_processes(worker)))
        writes = sql_rows("SELECT tbl, op, port FROM h8_write_probe")
    finally:
        remove_write_probe()
    attempt_writes = [w for w in writes if w[0] == "horsies_task_attempt"]
    task_updates = [w for w in writes if w[0] == "horsies_task" and w[1] == "UPDATE"]
    assert len(attempt_writes) == 3
    assert len(task_updates) >= 3  # claim + (running mark) + finish per task
    assert {w[2] for w in attempt_writes + task_updates} <= parent_ports
    assert not child_ports & {w[2] for w in writes}


def install_write_probe() -> None:
    sql_script(
        """
        CREATE TABLE h8_write_probe (tbl text, op text, port int);
        CREATE FUNCTION h8_probe() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO h8_write_probe VALUES (TG_TABLE_NAME, TG_OP, inet_client_port());
            RETURN NULL;
        END $$;
        CREATE TRIGGER h8_probe_task AFTER INSERT OR UPDATE ON horsies_task
            FOR EACH ROW EXECUTE FUNCTION h8_probe();
        CREATE TRIGGER h8_probe_attempt AFTER INSERT OR UPDATE ON horsies_task_attempt
            FOR EACH ROW EXECUTE FUNCTION h8_probe();
        """
    )


def remove_write_probe() -> None:
    sql_script(
        """
        DROP TRIGGER IF EXISTS h8_probe_task ON horsies_task;
        DROP TRIGGER IF EXISTS h8_probe_attempt ON horsies_task_attempt;
        DROP FUNCTION IF EXISTS h8_probe();
        DROP TABLE IF EXISTS h8_write_probe;
        """
    )


def test_max_tasks_per_child_replaces_the_child(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker("--processes", "1", "--max-tasks-per-child", "2")
    handles = [noop.send(i=i).ok_value for i in range(6)]
    for handle in handles:
        assert handle.get(timeout_ms=30_000).is_ok()
    per_pid = sql_rows(
        "SELECT pid, count(*) FROM horsies_task_attempt GROUP BY pid ORDER BY min(finished_at)"
    )
    assert [count for _, count in per_pid] == [2, 2, 2]
    assert worker.pid not in {pid for pid, _ in per_pid}
    assert "recycling child" in worker.log()


# --------------------------------------------------------------------------- queues

QUEUE_TASKS = """
from horsies_django import TaskError, TaskResult, app


@app.task("qtests.in_a", queue_name="a")
def in_a() -> TaskResult[str, TaskError]:
    return TaskResult(ok="a")


@app.task("qtests.in_b", queue_name="b")
def in_b() -> TaskResult[str, TaskError]:
    return TaskResult(ok="b")
"""

CUSTOM_QUEUES = {
    "QUEUE_MODE": "CUSTOM",
    "CUSTOM_QUEUES": [{"name": "a", "priority": 1}, {"name": "b", "priority": 2}],
}


def test_queues_option_limits_what_the_worker_claims(
    configured: StartWorker, tmp_path: Path
) -> None:
    (tmp_path / "h8_queue_tasks.py").write_text(QUEUE_TASKS)
    worker = configured({**CUSTOM_QUEUES, "TASK_MODULES": ["h8_queue_tasks"]}, "--queues", "b")
    assert sql_value("SELECT queues FROM horsies_worker WHERE id = %s", worker.worker_id()) == ["b"]
    sys.path.insert(0, str(tmp_path))
    try:
        with override_settings(HORSIES=CUSTOM_QUEUES):
            module = importlib.import_module("h8_queue_tasks")
            in_a = module.in_a.send().ok_value
            in_b = module.in_b.send().ok_value
            assert in_b.get(timeout_ms=30_000).ok_value == "b"
            second_b = module.in_b.send().ok_value
            assert second_b.get(timeout_ms=30_000).ok_value == "b"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("h8_queue_tasks", None)
        app.unregister("qtests.in_a")
        app.unregister("qtests.in_b")
    assert sql_rows("SELECT status, claimed_by FROM horsies_task WHERE id = %s", in_a.task_id) == [
        ("PENDING", None)
    ]
    assert (
        sql_value("SELECT count(*) FROM horsies_task_attempt WHERE task_id = %s", in_a.task_id) == 0
    )
