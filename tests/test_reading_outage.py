"""Reading never raises: `get()`, `info()` and friends when the database is away or drops them.

The outages are real: an alias pointed at a port where nothing listens, a throwaway PostgreSQL
server stopped (`pg_ctl stop`) while `get()` waits and started again, and the waiting connection
terminated by `pg_terminate_backend`. Like tests/test_sending_outage.py, the aliases of other
servers are used outside Django's test case, with pytest-django's blocker lifted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from horsies_django import (
    BrokerErrorCode,
    BrokerResult,
    OperationalErrorCode,
    TaskError,
    TaskHandle,
    TaskResult,
    embedded_pg,
)
from horsies_django.results import stop_listener
from tests.conftest import ROOT, WorkerProcess, launch_worker, sql_value, wait_until
from tests.testapp.tasks import add

LONG_MS = 60_000
_ALIAS_NUMBERS = itertools.count()


# --------------------------------------------------------------------------- an alias elsewhere


@contextlib.contextmanager
def alias_to(url: str, django_db_blocker: Any) -> Iterator[str]:
    """A new DATABASES alias pointing at `url`, used as HORSIES' alias, unblocked.

    Each use gets its own name: other threads (asgiref's) keep their wrappers of an alias.
    """
    alias = f"horsies_read_{next(_ALIAS_NUMBERS)}"
    info = psycopg.conninfo.conninfo_to_dict(url)
    config = {
        **settings.DATABASES["default"],
        "NAME": info["dbname"], "HOST": info["host"], "PORT": info["port"], "USER": info["user"],
        "PASSWORD": "", "OPTIONS": {"connect_timeout": 5},
    }  # fmt: skip
    configured = connections.configure_settings(
        {"default": settings.DATABASES["default"], alias: config}
    )
    connections.settings[alias] = configured[alias]
    try:
        with (
            django_db_blocker.unblock(),
            override_settings(HORSIES={**settings.HORSIES, "DATABASE_ALIAS": alias}),
        ):
            yield alias
    finally:
        stop_listener()  # the result listener follows the alias; let the next test start afresh
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]
        connections.close_all()


def broker_error(result: TaskResult[Any, TaskError]) -> str:
    """The message of a BROKER_ERROR result (fails the test for anything else)."""
    assert result.is_err(), result
    assert result.err_value.error_code == OperationalErrorCode.BROKER_ERROR, result
    assert result.err_value.message
    return result.err_value.message


def broker_err(result: BrokerResult[Any]) -> None:
    assert result.is_err(), result
    assert result.err_value.code == BrokerErrorCode.BROKER_ERROR, result
    assert isinstance(result.err_value.exception, Exception)


def every_read_fails(handle: TaskHandle[Any]) -> None:
    """Each reading function of `handle` returns its error value, sync and async."""
    broker_error(handle.get(timeout_ms=LONG_MS))
    broker_error(handle.get())  # no timeout: returns, does not wait for ever
    broker_err(handle.info())
    broker_err(handle.info(include_result=True, include_failed_reason=True, include_attempts=True))
    broker_err(handle.cancel())

    async def in_async_code() -> None:
        try:
            broker_error(await handle.get_async(timeout_ms=LONG_MS))
            broker_err(await handle.info_async(include_attempts=True))
            broker_err(await handle.cancel_async())
        finally:
            await sync_to_async(connections.close_all, thread_sensitive=True)()

    asyncio.run(in_async_code())


# --------------------------------------------------------------------------- nothing listening


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A URL whose port is bound by this test but never listened on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"postgresql://horsies@127.0.0.1:{sock.getsockname()[1]}/horsies"


def test_every_read_returns_an_error_when_the_database_is_unreachable(
    dead_url: str, django_db_blocker: Any
) -> None:
    with alias_to(dead_url, django_db_blocker):
        typed = TaskHandle[int]("01900000-0000-7000-8000-000000000000", "tests.add")
        every_read_fails(typed)
        every_read_fails(TaskHandle.from_id("01900000-0000-7000-8000-000000000001"))
        message = broker_error(typed.get())
        assert "01900000-0000-7000-8000-000000000000" in message
        assert "call get() again later" in message


# --------------------------------------------------------------------------- a stopped server


@pytest.fixture(scope="module")
def server() -> Iterator[embedded_pg.ThrowawayServer]:
    with embedded_pg.running_postgres("h2_read") as running:
        yield running


def _pg_ctl(server: embedded_pg.ThrowawayServer, *args: str) -> None:
    cmd = [str(server.pg_ctl), *args, "-D", str(server.datadir), "-w"]
    if server.runas:
        cmd = ["runuser", "-u", server.runas, "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120, cwd=server.tmpdir)


def stop_server(server: embedded_pg.ThrowawayServer) -> None:
    _pg_ctl(server, "stop", "-m", "fast")
    assert server.postmaster_pid is None


def start_server(server: embedded_pg.ThrowawayServer) -> None:
    """Start the stopped server again, on its port (so URLs and aliases stay valid)."""
    options = f"-p {server.port} -h 127.0.0.1 -k {server.tmpdir} -c max_connections=200"
    _pg_ctl(server, "start", "-l", str(server.logfile), "-o", options)


class Waiter:
    """`TaskHandle.from_id(task_id).get()` in a thread, with that thread's connection exposed."""

    def __init__(self, task_id: str, alias: str, timeout_ms: int | None = None) -> None:
        self.result: TaskResult[Any, TaskError] | None = None
        self.raised: BaseException | None = None
        self.wrapper: Any = None
        self._args = (task_id, alias, timeout_ms)
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        task_id, alias, timeout_ms = self._args
        self.wrapper = connections[alias]
        self._ready.set()
        try:
            self.result = TaskHandle.from_id(task_id).get(timeout_ms=timeout_ms)
        except BaseException as exc:
            self.raised = exc
        finally:
            connections.close_all()

    def backend_pid(self) -> int | None:
        """The PostgreSQL pid of the waiting thread's connection (None while it has none)."""
        conn = self.wrapper.connection
        return None if conn is None or conn.closed else int(conn.info.backend_pid)

    def finished(self) -> TaskResult[Any, TaskError]:
        self.thread.join(timeout=LONG_MS / 1000)
        assert not self.thread.is_alive(), "get() is still waiting"
        if self.raised is not None:
            raise AssertionError(f"get() raised {self.raised!r}") from self.raised
        assert self.result is not None
        return self.result


def worker_on(url: str, tmp_path: Path) -> WorkerProcess:
    worker = launch_worker(
        os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
        ("--processes", "1"),
        tmp_path / "worker.log",
        {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": url},
    )
    worker.wait_ready()
    return worker


def test_get_waiting_while_the_server_stops_returns_broker_error_then_the_real_result(
    server: embedded_pg.ThrowawayServer, django_db_blocker: Any, tmp_path: Path
) -> None:
    if server.postmaster_pid is None:  # a previous run of this test left it stopped
        start_server(server)
    with alias_to(server.url, django_db_blocker) as alias:
        call_command("migrate", "horsies_django", database=alias, verbosity=0)
        handle = add.send(a=2, b=3).ok_value  # no worker yet: it stays PENDING
        waiter = Waiter(handle.task_id, alias)
        wait_until(waiter.backend_pid, what="get() to read the row and wait")

        stop_server(server)  # while get() waits
        broker_error(waiter.finished())
        every_read_fails(handle)  # still down: every call asks again, nothing was cached

        start_server(server)
        worker = worker_on(server.url, tmp_path)
        try:
            assert handle.get(timeout_ms=LONG_MS).ok_value == 5  # the same handle
            info = handle.info(include_result=True).ok_value
            assert info is not None
            assert info.result == TaskResult(ok=5)
        finally:
            worker.stop()
            worker.kill()


# --------------------------------------------------------------------------- a dropped connection


@pytest.mark.usefixtures("clean_tables")
def test_get_survives_its_connection_being_terminated_mid_wait(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    handle = add.send(a=4, b=5).ok_value  # no worker yet: it stays PENDING
    waiter = Waiter(handle.task_id, "default", timeout_ms=2 * LONG_MS)
    old_pid = wait_until(waiter.backend_pid, what="get() to read the row and wait")

    assert sql_value("SELECT pg_terminate_backend(%s)", old_pid) is True
    wait_until(
        lambda: not waiter.thread.is_alive() or waiter.backend_pid() not in (None, old_pid),
        what="get() to notice the dropped connection and reconnect",
    )
    assert waiter.thread.is_alive(), f"get() stopped waiting: {waiter.raised or waiter.result}"

    start_worker()
    assert waiter.finished().ok_value == 9
