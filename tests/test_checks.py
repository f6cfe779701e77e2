"""One test per check id: each bad setting triggers exactly that id, with a useful hint."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import CheckMessage
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db.backends.postgresql import psycopg_any
from django.test import override_settings

from horsies_django import app
from horsies_django.checks import check_horsies_settings, database_backend_messages
from horsies_django.conf import horsies_settings
from horsies_django.types import TaskError, TaskResult

ROOT = Path(__file__).resolve().parent.parent


def run_with(horsies: Any) -> list[CheckMessage]:
    with override_settings(HORSIES=horsies):
        return check_horsies_settings()


def ids(messages: list[CheckMessage]) -> list[str]:
    return [str(m.id) for m in messages]


def only(horsies: Any, check_id: str) -> CheckMessage:
    messages = run_with(horsies)
    assert ids(messages) == [f"horsies_django.{check_id}"], [str(m) for m in messages]
    assert messages[0].hint
    return messages[0]


def test_valid_settings_produce_no_messages() -> None:
    assert run_with(dict(settings.HORSIES)) == []
    assert run_with({}) == []
    assert run_with(None) == []


def test_e001_unknown_key_suggests_the_close_one() -> None:
    message = only({"HEARTBEAT_INTERVALMS": 500}, "E001")
    assert "'HEARTBEAT_INTERVALMS'" in message.msg
    assert message.hint == "Did you mean 'HEARTBEAT_INTERVAL_MS'?"


def test_e001_unknown_key_far_from_any_lists_the_known_keys() -> None:
    message = only({"ZZZ": 1}, "E001")
    assert "QUEUE_MODE" in str(message.hint)


def test_e001_unknown_key_inside_a_queue() -> None:
    queues = [{"name": "a", "max_concurency": 2}]
    message = only({"QUEUE_MODE": "CUSTOM", "CUSTOM_QUEUES": queues}, "E001")
    assert "HORSIES['CUSTOM_QUEUES'][0]" in message.msg
    assert message.hint == "Did you mean 'max_concurrency'?"


def test_e002_wrong_type_names_key_and_default() -> None:
    message = only({"POLL_INTERVAL_MS": "fast"}, "E002")
    assert "HORSIES['POLL_INTERVAL_MS']" in message.msg
    assert "5000" in str(message.hint)


def test_e002_wrong_literal() -> None:
    message = only({"QUEUE_MODE": "custom"}, "E002")
    assert "'DEFAULT'" in message.msg


def test_e002_horsies_not_a_dict() -> None:
    only(["QUEUE_MODE"], "E002")


def test_e002_mapper_code_not_upper_snake() -> None:
    message = only({"EXCEPTION_MAPPER": {"TimeoutError": "timeout"}}, "E002")
    assert "UPPER_SNAKE_CASE" in message.msg


def test_e003_custom_mode_without_queues() -> None:
    message = only({"QUEUE_MODE": "CUSTOM"}, "E003")
    assert "CUSTOM_QUEUES" in str(message.hint)


def test_e004_duplicate_queue_names() -> None:
    queues = [{"name": "a"}, {"name": "b"}, {"name": "a", "priority": 2}]
    message = only({"QUEUE_MODE": "CUSTOM", "CUSTOM_QUEUES": queues}, "E004")
    assert "'a'" in message.msg


def test_e005_negative_queue_cap() -> None:
    queues = [{"name": "a", "max_concurrency": -1}]
    message = only({"QUEUE_MODE": "CUSTOM", "CUSTOM_QUEUES": queues}, "E005")
    assert "max_concurrency" in message.msg


def test_e005_cluster_cap_below_one() -> None:
    message = only({"CLUSTER_WIDE_CAP": 0}, "E005")
    assert "CLUSTER_WIDE_CAP" in message.msg


def test_e006_unknown_database_alias() -> None:
    message = only({"DATABASE_ALIAS": "replica"}, "E006")
    assert "'default'" in str(message.hint)


def test_e007_database_not_postgresql() -> None:
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    databases = {**settings.DATABASES, "side": sqlite}
    with (
        pytest.warns(UserWarning, match="DATABASES"),
        override_settings(DATABASES=databases),
    ):
        message = only({"DATABASE_ALIAS": "side"}, "E007")
    assert "'side'" in message.msg


def test_e008_psycopg2_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    # The flag Django's PostgreSQL backend sets when only psycopg2 could be imported.
    monkeypatch.setattr(psycopg_any, "is_psycopg3", False)
    message = only({}, "E008")
    assert "psycopg2" in message.msg
    assert "psycopg[binary]" in str(message.hint)


def test_backend_that_cannot_load_is_reported_as_e008() -> None:
    messages = database_backend_messages("x", "no.such.postgresql.backend")
    assert ids(messages) == ["horsies_django.E008"]


def test_e009_task_module_not_importable() -> None:
    message = only({"TASK_MODULES": ["tests.testapp.tasks", "tests.no_such_tasks"]}, "E009")
    assert "'tests.no_such_tasks'" in message.msg
    assert "ModuleNotFoundError" in message.msg


def test_e010_reserved_code_in_global_mapper() -> None:
    message = only({"EXCEPTION_MAPPER": {"TimeoutError": "TASK_TIMEOUT"}}, "E010")
    assert "OperationalErrorCode.TASK_TIMEOUT" in message.msg


@pytest.fixture
def task_with_reserved_code() -> Iterator[str]:
    name = "tests.checks.reserved_code"

    @app.task(name, exception_mapper={TimeoutError: "WORKER_CRASHED"})
    def reserved() -> TaskResult[None, TaskError]:
        return TaskResult(ok=None)

    yield name
    app.unregister(name)


def test_e010_reserved_code_in_a_task_mapper(task_with_reserved_code: str) -> None:
    message = only({}, "E010")
    assert task_with_reserved_code in message.msg
    assert message.obj == task_with_reserved_code


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("NoSuchError", "not a builtin"),
        ("print", "not an exception class"),
        ("json.NoSuchError", "has no attribute 'NoSuchError'"),
        ("nowhere.at_all.Error", "no module"),
        ("json.JSONDecoder", "not an exception class"),
    ],
)
def test_e011_mapper_key_not_an_exception_class(key: str, problem: str) -> None:
    message = only({"EXCEPTION_MAPPER": {key: "MY_CODE"}}, "E011")
    assert problem in message.msg


def test_mapper_keys_that_resolve_are_accepted() -> None:
    mapper = {"TimeoutError": "A_CODE", "json.JSONDecodeError": "B_CODE"}
    assert run_with({"EXCEPTION_MAPPER": mapper}) == []


def test_e012_custom_queues_in_default_mode() -> None:
    only({"CUSTOM_QUEUES": [{"name": "a"}]}, "E012")


def test_w001_lease_too_short_for_heartbeat() -> None:
    message = only({"HEARTBEAT_INTERVAL_MS": 1_000, "CLAIM_LEASE_MS": 2_000}, "W001")
    assert "2000" in str(message.hint)


def test_w002_stale_threshold_too_short() -> None:
    only({"HEARTBEAT_INTERVAL_MS": 1_000, "WORKER_STALE_AFTER_MS": 1_500}, "W002")


def test_every_problem_is_reported_at_once() -> None:
    horsies = {
        "QUEUE_MODE": "CUSTOM",
        "CUSTOM_QUEUES": [{"name": "a", "max_concurrency": -2}],
        "POLL_INTERVALL_MS": 5,
        "DATABASE_ALIAS": "nope",
        "EXCEPTION_MAPPER": {"NoSuchError": "TASK_TIMEOUT"},
    }
    assert sorted(ids(run_with(horsies))) == [
        f"horsies_django.{i}" for i in ("E001", "E005", "E006", "E010", "E011")
    ]


def test_manage_py_check_fails_on_errors() -> None:
    with (
        override_settings(HORSIES={"CLUSTER_WIDE_CAP": 0}),
        pytest.raises(SystemCheckError, match=r"horsies_django\.E005"),
    ):
        call_command("check", tags=["horsies_django"])
    call_command("check", tags=["horsies_django"])


def test_override_settings_resets_the_cached_settings() -> None:
    before = horsies_settings().POLL_INTERVAL_MS
    with override_settings(HORSIES={"POLL_INTERVAL_MS": before + 7}):
        during = horsies_settings().POLL_INTERVAL_MS
    after = horsies_settings().POLL_INTERVAL_MS
    assert (during, after) == (before + 7, before)


def run_manage(tmp_path: Path, horsies: str, *command: str) -> subprocess.CompletedProcess[str]:
    """`manage.py <command>` under a settings module with this HORSIES literal."""
    (tmp_path / "bad_horsies_settings.py").write_text(
        f"from tests.settings import *  # noqa: F403\nHORSIES = {horsies}\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "DJANGO_SETTINGS_MODULE": "bad_horsies_settings",
    }
    return subprocess.run(
        [sys.executable, "-m", "django", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_worker_refuses_to_start_with_invalid_settings(tmp_path: Path) -> None:
    proc = run_manage(
        tmp_path, "{'EXCEPTION_MAPPER': {'TimeoutError': 'TASK_TIMEOUT'}}", "horsies_worker"
    )
    assert proc.returncode != 0, proc.stderr
    assert "horsies_django.E010" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def test_check_command_reports_a_model_error_instead_of_crashing(tmp_path: Path) -> None:
    proc = run_manage(tmp_path, "{'HEARTBEAT_INTERVALMS': 500}", "check")
    assert proc.returncode != 0
    assert "horsies_django.E001" in proc.stderr
    assert "Did you mean 'HEARTBEAT_INTERVAL_MS'?" in proc.stderr
    assert "Traceback" not in proc.stderr
