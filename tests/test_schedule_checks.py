"""`manage.py check` for periodic schedules: one message per problem, with a stable id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.checks import CheckMessage
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from horsies_django import app
from horsies_django.schedules import Cron, Every
from horsies_django.schedules import declared as declared_module
from horsies_django.schedules.checks import check_schedules
from horsies_django.schedules.declared import undeclare


def checked(*entries: dict[str, Any]) -> list[CheckMessage]:
    with override_settings(HORSIES={"SCHEDULES": list(entries)}):
        return check_schedules()


def one(*entries: dict[str, Any]) -> CheckMessage:
    messages = checked(*entries)
    assert len(messages) == 1, [str(m) for m in messages]
    assert messages[0].hint
    return messages[0]


def entry(**fields: Any) -> dict[str, Any]:
    return {"name": "nightly", "task": "tests.add", "kwargs": {"a": 1, "b": 2},
            "pattern": {"daily": "02:30"}, **fields}  # fmt: skip


@pytest.fixture(autouse=True)
def only_these_schedules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Schedules declared in code by other tests' modules (the docs') are not these tests'."""
    monkeypatch.setattr(declared_module, "_in_code", {})


@pytest.fixture
def declared_in_code() -> Iterator[None]:
    app.periodic("in-code", task="tests.noop", pattern=Every(seconds=60))
    yield
    undeclare("in-code")


def test_valid_schedules_produce_no_messages() -> None:
    assert checked(entry(), entry(name="often", pattern="cron */5 * * * *")) == []


def test_e014_an_invalid_entry() -> None:
    message = one(entry(pattern={"fortnightly": "09:00"}))
    assert message.id == "horsies_django.E014"
    assert "entry nightly: pattern: Value error, unknown pattern kind 'fortnightly'" in message.msg
    assert one(entry(pattern="cron 61 * * * *")).id == "horsies_django.E014"
    assert one(entry(name="no spaces allowed")).id == "horsies_django.E014"


@pytest.mark.usefixtures("declared_in_code")
def test_e014_a_name_declared_in_code_and_in_settings() -> None:
    message = one(entry(name="in-code"))
    assert message.id == "horsies_django.E014"
    assert "declared both in code and in" in message.msg


def test_e015_an_unregistered_task() -> None:
    message = one(entry(task="tests.missing"))
    assert message.id == "horsies_django.E015"
    assert "'tests.missing' is not registered" in message.msg


def test_e016_kwargs_that_do_not_fit_the_signature() -> None:
    message = one(entry(kwargs={"a": 1}))
    assert message.id == "horsies_django.E016"
    assert "b" in message.msg


def test_e017_an_unknown_timezone() -> None:
    message = one(entry(timezone="Mars/Olympus_Mons"))
    assert message.id == "horsies_django.E017"
    assert "'Mars/Olympus_Mons' is unknown" in message.msg


def test_e014_a_pattern_that_never_fires() -> None:
    message = one(entry(pattern="cron 0 0 30 2 *"))  # 30 February
    assert message.id == "horsies_django.E014"
    assert "does not parse: Bad day-of-month" in message.msg
    with pytest.raises(ValueError, match="Bad day-of-month"):
        app.periodic("never", task="tests.noop", pattern=Cron(expression="0 0 31 4 *"))


def test_manage_py_check_reports_them() -> None:
    with (
        override_settings(HORSIES={"SCHEDULES": [entry(task="tests.missing")]}),
        pytest.raises(SystemCheckError, match=r"horsies_django\.E015"),
    ):
        call_command("check")
