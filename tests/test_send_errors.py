"""Errors that name the real problem: a send or a wait that cannot work says why and what fixes
it, as a value (never an exception).

Setups that the system checks would refuse (a SQLite alias, horsies_django missing from
INSTALLED_APPS) run in a subprocess with a settings module written to the test's tmp_path, as
`manage.py shell` would: the checks are not run before the send.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.test import override_settings

from horsies_django import Err, Ok, RetrievalCode, TaskSendError, TaskSendErrorCode
from horsies_django.checks import database_backend_messages
from horsies_django.handles import MAX_WAIT_MS, TaskHandle
from horsies_django.types import Result, TaskError, TaskResult
from tests.conftest import ROOT, database_url, sql_rows, sql_value
from tests.testapp.tasks import add

type SendResult = Result[TaskHandle[Any], TaskSendError]

pytestmark = pytest.mark.usefixtures("clean_tables")


def task_count() -> int:
    return int(sql_value("SELECT count(*) FROM horsies_task"))


def run_with_settings(tmp_path: Path, settings_body: str, script: str) -> dict[str, Any]:
    """Run `script` after django.setup() under a settings module written to tmp_path; it
    prints one JSON line, returned here."""
    (tmp_path / "error_settings.py").write_text(settings_body)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "error_settings",
    }
    body = f"import json\nimport django\ndjango.setup()\n{script}"
    proc = subprocess.run(
        [sys.executable, "-c", body],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


SEND_AND_REPORT = """
from tests.testapp.tasks import add
result = add.send(a=1, b=2)
error = result.err_value if result.is_err() else None
print(json.dumps({
    "code": None if error is None else str(error.code),
    "retryable": None if error is None else error.retryable,
    "message": None if error is None else error.message,
    "has_payload": error is not None and error.payload is not None,
    "check_ids": check_ids,
}))
"""

CHECK_IDS = """
from django.core import checks
check_ids = sorted({m.id for m in checks.run_checks() if m.id.startswith("horsies_django.")})
"""


# --------------------------------------------------------------------------- not PostgreSQL


SQLITE_SETTINGS = """
from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, HORSIES

DATABASES = {{**DATABASES, "lite": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {path!r}}}}}
HORSIES = {{**HORSIES, "DATABASE_ALIAS": "lite", "PREPARED_STATEMENTS": {prepared!r}}}
"""


@pytest.mark.parametrize("prepared", [False, True], ids=["plain", "prepared"])
def test_a_send_to_a_database_that_is_not_postgresql_says_what_check_e007_says(
    tmp_path: Path, prepared: bool
) -> None:
    """Before: "unrecognized token ... retry with retry_send(err)", retryable=True (or an
    AttributeError raised with prepared statements)."""
    settings = SQLITE_SETTINGS.format(path=str(tmp_path / "lite.sqlite3"), prepared=prepared)
    report = run_with_settings(tmp_path, settings, CHECK_IDS + SEND_AND_REPORT)
    (e007,) = database_backend_messages("lite", "django.db.backends.sqlite3")
    assert e007.id == "horsies_django.E007"
    assert "horsies_django.E007" in report["check_ids"]  # what `manage.py check` would say
    assert report["code"] == "ENQUEUE_FAILED"
    assert report["retryable"] is False
    assert report["has_payload"]
    assert e007.msg in report["message"]
    assert str(e007.hint) in report["message"]
    assert "(system check horsies_django.E007)" in report["message"]
    assert "retry_send" not in report["message"]
    assert task_count() == 0


def test_a_send_to_an_alias_missing_from_databases_says_what_check_e006_says() -> None:
    """Before: django.utils.connection.ConnectionDoesNotExist was raised."""
    with override_settings(HORSIES={**settings.HORSIES, "DATABASE_ALIAS": "nowhere"}):
        result = add.send(a=1, b=2)
    assert isinstance(result, Err), result
    assert result.error.code is TaskSendErrorCode.ENQUEUE_FAILED
    assert not result.error.retryable
    assert "HORSIES['DATABASE_ALIAS'] is 'nowhere', which is not in settings.DATABASES" in (
        result.error.message
    )
    assert "(system check horsies_django.E006)" in result.error.message
    assert task_count() == 0


# --------------------------------------------------------------------------- app not installed


NO_APP_SETTINGS = """
from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in ("horsies_django", "tests.testapp")]
ROOT_URLCONF = "error_urls"
# A schema without horsies' tables, as in a database migrated without the app.
DATABASES = {
    "default": {
        **DATABASES["default"],
        "OPTIONS": {"options": "-c search_path=never_migrated"},
    }
}
"""


def test_tasks_without_the_app_installed_fail_a_check_and_sends_say_to_install_it(
    tmp_path: Path,
) -> None:
    """Before: no check, and "relation horsies_task does not exist ... check that migrations are
    applied (manage.py migrate)", which migrate does not fix."""
    (tmp_path / "error_urls.py").write_text("urlpatterns = []\n")
    report = run_with_settings(
        tmp_path, NO_APP_SETTINGS, SEND_AND_REPORT.replace("result = ", CHECK_IDS + "result = ", 1)
    )
    assert report["check_ids"] == ["horsies_django.E013"]
    assert report["code"] == "ENQUEUE_FAILED"
    assert report["retryable"] is False
    message = report["message"]
    assert "'horsies_django' is not in INSTALLED_APPS" in message
    assert "Add 'horsies_django' to INSTALLED_APPS, then run manage.py migrate." in message
    assert "(system check horsies_django.E013)" in message
    assert "check that migrations are applied" not in message


def test_no_installation_check_fires_when_the_app_is_installed() -> None:
    from django.core import checks

    ids = {message.id for message in checks.run_checks()}
    assert "horsies_django.E013" not in ids


# --------------------------------------------------------------------------- wait timeouts


BAD_TIMEOUTS = [-5, -1, -0.5, math.nan, math.inf, MAX_WAIT_MS + 1, 10**400, True, "5", [5]]


def short_repr(value: object) -> str:
    return f"{value!r:.20}"


def refused_wait(result: TaskResult[Any, TaskError], timeout: object) -> str:
    assert result.is_err(), result
    error = result.err_value
    assert error.error_code is RetrievalCode.INVALID_TIMEOUT, error
    message = str(error.message)
    assert f"timeout_ms={timeout!r:.20}" in message
    assert "from 0 (look once, do not wait) to 3,153,600,000,000 (100 years)" in message
    return message


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS, ids=short_repr)
def test_get_refuses_a_timeout_that_is_not_a_wait(timeout: Any) -> None:
    """Before: -5 looked once and reported WAIT_TIMEOUT; "5" raised TypeError."""
    handle = add.send(a=1, b=2).ok_value
    refused_wait(handle.get(timeout_ms=timeout), timeout)
    assert handle.get(timeout_ms=0).err_value.error_code is RetrievalCode.WAIT_TIMEOUT


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS, ids=short_repr)
def test_get_async_refuses_a_timeout_that_is_not_a_wait(timeout: Any) -> None:
    handle = add.send(a=1, b=2).ok_value

    async def wait() -> TaskResult[Any, TaskError]:
        return await handle.get_async(timeout_ms=timeout)

    refused_wait(asyncio.run(wait()), timeout)


# --------------------------------------------------------------------------- event loops


async def closing_connections[T](call: Callable[[], Awaitable[T]]) -> T:
    """Await `call()`, then close the connections sync_to_async opened in its thread."""
    result = await call()
    await sync_to_async(connections.close_all, thread_sensitive=True)()
    return result


def in_event_loop(send: Callable[[], SendResult]) -> TaskSendError:
    """Call a synchronous send inside a running event loop: an ASYNC_CONTEXT error."""

    async def inside() -> SendResult:
        return send()

    result = asyncio.run(inside())
    assert isinstance(result, Err), result
    error = result.error
    assert error.code is TaskSendErrorCode.ASYNC_CONTEXT, error
    assert not error.retryable
    assert error.payload is not None
    assert error.task_id == error.payload.task_id
    return error


def test_a_synchronous_send_in_an_event_loop_returns_async_context_with_its_payload() -> None:
    """Before: django.core.exceptions.SynchronousOnlyOperation was raised."""
    error = in_event_loop(lambda: add.send(a=2, b=3))
    assert "await task.send_async(...)" in error.message
    assert "await task.retry_send_async(err)" in error.message
    assert task_count() == 0
    sent = asyncio.run(closing_connections(lambda: add.retry_send_async(error)))
    assert isinstance(sent, Ok), sent
    assert sent.value.task_id == error.task_id
    assert sql_rows("SELECT id::text, kwargs FROM horsies_task") == [
        (error.task_id, {"a": 2, "b": 3})
    ]


def test_a_synchronous_schedule_in_an_event_loop_is_resent_as_scheduled() -> None:
    error = in_event_loop(lambda: add.schedule(30, a=1, b=1))
    assert "await task.schedule_async(...)" in error.message
    assert "await task.retry_schedule_async(err)" in error.message
    sent = asyncio.run(closing_connections(lambda: add.retry_schedule_async(error)))
    assert isinstance(sent, Ok), sent
    (delay,) = sql_rows(
        "SELECT extract(epoch FROM enqueued_at - sent_at) FROM horsies_task WHERE id = %s",
        error.task_id,
    )[0]
    assert float(delay) == 30.0


def test_every_synchronous_entry_point_in_an_event_loop_returns_async_context() -> None:
    in_event_loop(lambda: add.with_options(add_options()).send(a=1, b=1))
    in_event_loop(lambda: add.send_many([{"a": 1, "b": 1}])[0])
    failed = in_event_loop(lambda: add.send(a=1, b=1))
    again = in_event_loop(lambda: add.retry_send(failed))  # the payload is kept for later
    assert again.payload == failed.payload
    assert task_count() == 0
    # Validation still comes first: a bad argument is VALIDATION_FAILED in a loop too.
    bad = asyncio.run(_inside(lambda: add.send(a="x", b=1)))  # type: ignore[arg-type]
    assert isinstance(bad, Err)
    assert bad.error.code is TaskSendErrorCode.VALIDATION_FAILED


async def _inside(send: Callable[[], SendResult]) -> SendResult:
    return send()


def add_options() -> Any:
    from horsies_django import TaskSendOptions

    return TaskSendOptions(priority=5)


def test_the_async_entry_points_still_send_from_an_event_loop() -> None:
    sent = asyncio.run(closing_connections(lambda: add.send_async(a=4, b=4)))
    scheduled = asyncio.run(closing_connections(lambda: add.schedule_async(10, a=5, b=5)))
    assert isinstance(sent, Ok), sent
    assert isinstance(scheduled, Ok), scheduled
    assert task_count() == 2
