"""A really stopped PostgreSQL server: every send path returns Err(ENQUEUE_FAILED), never raises.

Kept apart from tests/test_sending.py because it runs outside Django's test case, which refuses
connections to a DATABASES alias it was not told about; pytest-django's blocker is lifted instead.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from horsies_django import TaskSendErrorCode, TaskSendOptions, embedded_pg
from tests.conftest import sql_value
from tests.test_sending import SendResult, err, ok_id, row
from tests.testapp.tasks import add, noop

DOWN = "horsies_down"


@pytest.fixture(scope="module")
def server() -> Iterator[embedded_pg.ThrowawayServer]:
    with embedded_pg.running_postgres("h2_down") as running:
        yield running


def _stop(server: embedded_pg.ThrowawayServer) -> None:
    cmd = [str(server.pg_ctl), "stop", "-D", str(server.datadir), "-m", "fast", "-w"]
    if server.runas:
        cmd = ["runuser", "-u", server.runas, "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60, cwd=server.tmpdir)


@pytest.fixture
def stopped_alias(server: embedded_pg.ThrowawayServer, django_db_blocker: Any) -> Iterator[str]:
    """A DATABASES alias whose server was working (migrated, one send) and is now stopped.

    Used outside Django's test case, with pytest-django's blocker lifted for the test.
    """
    info = psycopg.conninfo.conninfo_to_dict(server.url)
    config = {
        **settings.DATABASES["default"],
        "NAME": info["dbname"], "HOST": info["host"], "PORT": info["port"], "USER": info["user"],
        "PASSWORD": "", "OPTIONS": {"connect_timeout": 5},
    }  # fmt: skip
    configured = connections.configure_settings(
        {"default": settings.DATABASES["default"], DOWN: config}
    )
    connections.settings[DOWN] = configured[DOWN]
    with django_db_blocker.unblock():
        try:
            if server.postmaster_pid is not None:
                call_command("migrate", "horsies_django", database=DOWN, verbosity=0)
                with override_settings(HORSIES={**settings.HORSIES, "DATABASE_ALIAS": DOWN}):
                    ok_id(add.send(a=0, b=0))  # the alias works while the server is up
                connections[DOWN].close()
                _stop(server)
            assert server.postmaster_pid is None
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(server.url, connect_timeout=5).close()
            yield DOWN
        finally:
            connections[DOWN].close()
            del connections[DOWN]
            del connections.settings[DOWN]
            connections.close_all()


def test_stopped_database_gives_retryable_errors_never_exceptions(stopped_alias: str) -> None:
    deadline = datetime.now(UTC) + timedelta(minutes=1)

    async def send_async() -> SendResult:
        result = await add.send_async(a=1, b=1)
        await sync_to_async(connections.close_all, thread_sensitive=True)()
        return result

    with override_settings(HORSIES={**settings.HORSIES, "DATABASE_ALIAS": stopped_alias}):
        attempts: list[SendResult] = [
            add.send(a=1, b=1),
            add.schedule(10, a=1, b=1),
            add.with_options(TaskSendOptions(good_until=deadline)).send(a=1, b=1),
            asyncio.run(send_async()),
            *noop.send_many([{"i": 1}, {"i": 2}]),
        ]
        bad, good = add.send_many([{"a": 1}, {"a": 1, "b": 1}])
        err(bad, TaskSendErrorCode.VALIDATION_FAILED)
        attempts.append(good)
        with override_settings(
            HORSIES={
                **settings.HORSIES,
                "DATABASE_ALIAS": stopped_alias,
                "RESEND_ON_TRANSIENT_ERR": True,
            }
        ):
            attempts.append(add.send(a=2, b=2))  # resends, then still gives up with an Err
        errors = [err(a, TaskSendErrorCode.ENQUEUE_FAILED) for a in attempts]
        # A replay against the still-stopped server fails the same way, keeping its task id.
        again = err(add.retry_send(errors[0]), TaskSendErrorCode.ENQUEUE_FAILED)
        assert again.retryable
        assert again.task_id == errors[0].task_id
    assert all(e.retryable and e.payload is not None and e.task_id for e in errors)
    assert all(isinstance(e.exception, Exception) for e in errors)
    assert len({e.task_id for e in errors}) == len(errors)
    # Once a database is reachable again, the stored payloads replay with their ids.
    replayed = [errors[0].task_id, errors[1].task_id]
    try:
        assert ok_id(add.retry_send(errors[0])) == replayed[0]
        assert ok_id(add.retry_schedule(errors[1])) == replayed[1]
        (delay,) = row(replayed[1] or "", "extract(epoch FROM enqueued_at - sent_at)")
        assert float(delay) == 10.0
    finally:
        sql_value("DELETE FROM horsies_task WHERE id = ANY(%s::uuid[]) RETURNING 1", replayed)
    assert json.loads(errors[0].payload.kwargs_json if errors[0].payload else "") == {
        "a": 1,
        "b": 1,
    }
