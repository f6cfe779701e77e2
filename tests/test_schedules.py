"""Periodic schedules against the real database: one task per slot, downtime with and without
catch-up, changes and removals of declarations, and several real schedulers at once.

The firing logic takes the time as an argument, so most tests drive it with their own clock;
the exactly-once test runs three `horsies_scheduler` processes for 60 one-second slots.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from horsies_django.schedules import Every, Hourly, Schedule
from horsies_django.schedules.firing import fire, slot_task_id, write_declared
from tests.conftest import ROOT, database_url, sql_rows, sql_value, wait_until
from tests.worker_helpers import StartWorker, configured_workers, write_settings

pytestmark = pytest.mark.usefixtures("clean_tables")

T0 = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)  # a slot of every 10 s and of every 60 s
TEN_S = timedelta(seconds=10)


def every_10s(name: str = "tick", **options: Any) -> Schedule:
    fields: dict[str, Any] = {
        "name": name,
        "task": "tests.hang_retry",  # carries a retry policy and a timeout
        "kwargs": {"counter": "/nonexistent/counter"},
        "pattern": Every(seconds=10),
    }
    return Schedule(**{**fields, **options})


@pytest.fixture
def conn() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url(), autocommit=True) as connection:
        yield connection


def fired_tasks() -> list[tuple[str, int, int | None, str]]:
    return sql_rows(
        "SELECT id::text, max_retries, timeout_ms, sent_by FROM horsies_task ORDER BY id"
    )


def schedule_row(name: str) -> tuple[Any, ...]:
    rows = sql_rows(
        "SELECT enabled, declared, next_run_at, last_slot_at, run_count, last_task_id::text "
        "FROM horsies_schedule WHERE name = %s",
        name,
    )
    assert len(rows) == 1
    return rows[0]


def test_a_due_slot_fires_one_task_with_its_tasks_policy_once(
    conn: psycopg.Connection[Any],
) -> None:
    write_declared(conn, {"tick": every_10s()}, T0 - TEN_S / 2)
    assert schedule_row("tick")[2] == T0  # the first slot after the declaration
    assert fire(conn, "tick", T0 - TEN_S / 4) is None  # not due yet
    done = fire(conn, "tick", T0)
    assert done is not None
    assert (done.fired, done.skipped, done.next_run_at) == (1, 0, T0 + TEN_S)
    assert fired_tasks() == [(slot_task_id("tick", T0), 1, 1_000, "schedule:tick")]
    # Fired already: the same moment again (another scheduler, a restart) fires nothing.
    assert fire(conn, "tick", T0) is None
    enabled, declared, next_run_at, last_slot, runs, last_task = schedule_row("tick")
    assert (enabled, declared, next_run_at, last_slot, runs) == (True, True, T0 + TEN_S, T0, 1)
    assert last_task == slot_task_id("tick", T0)


def test_after_downtime_only_the_latest_slot_fires_and_the_rest_are_logged(
    conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    write_declared(conn, {"tick": every_10s()}, T0 - TEN_S / 2)
    with caplog.at_level(logging.WARNING, logger="horsies_django.scheduler"):
        done = fire(conn, "tick", T0 + 9 * TEN_S + TEN_S / 2)  # ten slots passed
    assert done is not None
    assert (done.fired, done.skipped) == (1, 9)
    assert [t[0] for t in fired_tasks()] == [slot_task_id("tick", T0 + 9 * TEN_S)]
    assert "9 slot(s) from 2026-12-04T12:00:00+00:00 missed" in caplog.text
    assert "catch_up_missed is off" in caplog.text


def test_with_catch_up_missed_slots_fire_in_order_up_to_the_bound(
    conn: psycopg.Connection[Any],
) -> None:
    write_declared(conn, {"tick": every_10s(catch_up_missed=True, max_catch_up=4)}, T0 - TEN_S)
    done = fire(conn, "tick", T0 + 9 * TEN_S)
    assert done is not None
    assert (done.fired, done.skipped) == (4, 6)
    expected = {slot_task_id("tick", T0 + i * TEN_S) for i in range(6, 10)}
    assert {t[0] for t in fired_tasks()} == expected
    assert schedule_row("tick")[3] == T0 + 9 * TEN_S  # the last slot fired


def test_changing_the_pattern_recomputes_the_next_run_and_removal_keeps_it_disabled(
    conn: psycopg.Connection[Any],
) -> None:
    write_declared(conn, {"tick": every_10s()}, T0 - TEN_S / 2)
    assert schedule_row("tick")[2] == T0
    same = every_10s(kwargs={"counter": "/elsewhere"})
    write_declared(conn, {"tick": same}, T0 - TEN_S / 4)  # kwargs only: next run kept
    assert schedule_row("tick")[2] == T0
    minutely = same.model_copy(update={"pattern": Every(seconds=60)})
    write_declared(conn, {"tick": minutely}, T0 + TEN_S)  # a new pattern: from now on
    assert schedule_row("tick")[2] == T0 + timedelta(seconds=60)

    assert write_declared(conn, {}, T0 + TEN_S) == ["tick"]  # a deploy without it
    assert schedule_row("tick")[:2] == (False, False)
    assert fire(conn, "tick", T0 + timedelta(days=1)) is None
    write_declared(conn, {"tick": minutely}, T0 + TEN_S)  # declared again: enabled again
    assert schedule_row("tick")[:2] == (True, True)


def test_disabled_in_code_stays_as_the_admin_left_it_until_the_code_changes(
    conn: psycopg.Connection[Any],
) -> None:
    write_declared(conn, {"tick": every_10s(enabled=False)}, T0)
    assert schedule_row("tick")[0] is False
    conn.execute("UPDATE horsies_schedule SET enabled = true")  # an operator enabled it
    write_declared(conn, {"tick": every_10s(enabled=False)}, T0)  # same code: kept enabled
    assert schedule_row("tick")[0] is True
    write_declared(conn, {"tick": every_10s(enabled=True)}, T0)
    write_declared(conn, {"tick": every_10s(enabled=False)}, T0)  # the code changed: follows
    assert schedule_row("tick")[0] is False


def test_a_task_unknown_to_this_process_is_left_for_another_scheduler(
    conn: psycopg.Connection[Any],
) -> None:
    ghost = Schedule(name="ghost", task="tests.not_registered", pattern=Every(seconds=10))
    write_declared(conn, {"ghost": ghost}, T0 - TEN_S / 2)
    done = fire(conn, "ghost", T0)
    assert done is not None
    assert done.fired == 0
    assert done.problem is not None
    assert "tests.not_registered is not registered in this process" in done.problem
    assert schedule_row("ghost")[2] == T0  # untouched: whoever has the task fires it
    assert fired_tasks() == []


# --------------------------------------------------------------------------- real schedulers

SLOTS = 60


def start_scheduler(module: str, log: Path, tmp_path: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": module,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
    }
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "django", "horsies_scheduler"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def test_three_schedulers_fire_each_of_sixty_one_second_slots_exactly_once(
    tmp_path: Path,
) -> None:
    every_second = {
        "name": "every-second",
        "task": "tests.noop",
        "kwargs": {},
        "pattern": {"every_s": 1},
        # A scheduler late by more than a slot on a loaded machine still fires every slot.
        "catch_up_missed": True,
    }
    module = write_settings(tmp_path, "scheduler_settings", {"SCHEDULES": [every_second]})
    logs = [tmp_path / f"scheduler-{i}.log" for i in range(3)]
    schedulers = [start_scheduler(module, log, tmp_path) for log in logs]
    try:
        wait_until(
            lambda: sql_value("SELECT count(*) FROM horsies_task") >= SLOTS,
            timeout_s=SLOTS * 3,
            what=f"{SLOTS} slots fired",
        )
        for proc in schedulers:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=30) for proc in schedulers]
    finally:
        for proc in schedulers:
            if proc.poll() is None:
                proc.kill()
    assert codes == [0, 0, 0], [log.read_text() for log in logs]
    ids = {row[0] for row in sql_rows("SELECT id::text FROM horsies_task")}
    runs, last = sql_rows(
        "SELECT run_count, last_slot_at FROM horsies_schedule WHERE name = 'every-second'"
    )[0]
    assert runs == len(ids) >= SLOTS
    # Every slot from the first fired to the last, once: no gap, no repeat.
    slots = [last - timedelta(seconds=i) for i in range(len(ids))]
    assert ids == {slot_task_id("every-second", slot) for slot in slots}
    assert all("horsies_scheduler started: 1 schedule(s)" in log.read_text() for log in logs)


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[StartWorker]:
    yield from configured_workers(tmp_path)


def test_workers_with_scheduler_fire_only_from_the_maintenance_leader(
    configured: StartWorker,
) -> None:
    every_second = {"name": "beat", "task": "tests.noop", "pattern": {"every_s": 1}}
    horsies = {"SCHEDULES": [every_second]}
    workers = [configured(horsies, "--scheduler", "--processes", "1") for _ in range(2)]
    wait_until(
        lambda: sql_value("SELECT count(*) FROM horsies_task WHERE status = 'COMPLETED'") >= 5,
        what="five slots fired and run",
    )
    ids = [r[0] for r in sql_rows("SELECT id::text FROM horsies_task")]
    assert len(ids) == len(set(ids))
    firing = [w for w in workers if "schedule beat: fired" in w.log()]
    assert len(firing) == 1, [w.log() for w in workers]  # the leader, and only it
    assert all(w.proc.poll() is None for w in workers)


def test_a_night_when_clocks_go_back_fires_each_wall_clock_slot_once(
    conn: psycopg.Connection[Any],
) -> None:
    """Europe/Berlin, 2026-10-25: 02:00-03:00 happens twice; `hourly :30` fires 02:30 once."""
    hourly = Schedule(
        name="hourly",
        task="tests.noop",
        pattern=Hourly(minute=30),
        timezone="Europe/Berlin",
        catch_up_missed=True,
    )
    write_declared(conn, {"hourly": hourly}, datetime(2026, 10, 24, 22, 0, tzinfo=UTC))
    done = fire(conn, "hourly", datetime(2026, 10, 25, 4, 0, tzinfo=UTC))
    assert done is not None
    berlin = ZoneInfo("Europe/Berlin")
    expected = [  # 00:30 CEST, 01:30 CEST, 02:30 CEST, (not 02:30 CET), 03:30 CET, 04:30 CET
        datetime(2026, 10, 24, 22, 30, tzinfo=UTC),
        datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 2, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 3, 30, tzinfo=UTC),
    ]
    assert [f"{s.astimezone(berlin):%H:%M}" for s in expected] == [
        "00:30", "01:30", "02:30", "03:30", "04:30",
    ]  # fmt: skip
    assert done.fired == len(expected)
    assert {t[0] for t in fired_tasks()} == {slot_task_id("hourly", s) for s in expected}
