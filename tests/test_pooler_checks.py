"""`manage.py check` for a database behind a transaction pooler (tests/pooled/ runs the queue
through a real PgBouncer)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from horsies_django.conf import behind_transaction_pooler
from horsies_django.db.connections import connection_params
from horsies_django.pooler_checks import check_pooler
from tests.conftest import ROOT

POOLED = "DISABLE_SERVER_SIDE_CURSORS"


@pytest.fixture
def pooled_and_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pooled` (marked as behind a transaction pooler) and `direct`, both this database."""
    base: dict[str, Any] = dict(settings.DATABASES["default"])
    base.pop(POOLED, None)
    monkeypatch.setitem(settings.DATABASES, "pooled", {**base, POOLED: True})
    monkeypatch.setitem(settings.DATABASES, "direct_db", base)


def ids(horsies: dict[str, Any]) -> list[str]:
    with override_settings(HORSIES=horsies):
        return [m.id or "" for m in check_pooler()]


@pytest.mark.usefixtures("pooled_and_direct")
def test_listen_through_a_pooled_alias_is_a_warning_that_names_the_fix() -> None:
    with override_settings(HORSIES={"DATABASE_ALIAS": "pooled"}):
        [message] = check_pooler()
    assert message.id == "horsies_django.W003"
    assert "DATABASE_ALIAS" in message.msg
    assert "transaction pooler" in message.msg
    assert "LISTEN_DATABASE_ALIAS" in str(message.hint)
    assert ids({"DATABASE_ALIAS": "pooled", "LISTEN_DATABASE_ALIAS": "pooled"}) == [
        "horsies_django.W003"
    ]
    assert ids({"DATABASE_ALIAS": "pooled", "LISTEN_DATABASE_ALIAS": "direct_db"}) == []
    assert ids({"DATABASE_ALIAS": "direct_db"}) == []


@pytest.mark.usefixtures("pooled_and_direct")
def test_an_unknown_listen_alias_is_an_error() -> None:
    with override_settings(HORSIES={"DATABASE_ALIAS": "pooled", "LISTEN_DATABASE_ALIAS": "nope"}):
        [message] = check_pooler()
    assert message.id == "horsies_django.E018"
    assert "'nope'" in message.msg
    assert "Add 'nope' to DATABASES" in str(message.hint)


@pytest.mark.usefixtures("pooled_and_direct")
def test_async_claim_commit_through_a_pooler_is_a_warning() -> None:
    horsies = {
        "DATABASE_ALIAS": "pooled",
        "LISTEN_DATABASE_ALIAS": "direct_db",
        "ASYNC_CLAIM_COMMIT": True,
    }
    assert ids(horsies) == ["horsies_django.W004"]
    assert ids({**horsies, "DATABASE_ALIAS": "direct_db"}) == []


@pytest.mark.usefixtures("pooled_and_direct")
def test_a_pooled_alias_never_prepares() -> None:
    assert behind_transaction_pooler("pooled")
    assert not behind_transaction_pooler("direct_db")
    assert connection_params("pooled")["prepare_threshold"] is None
    assert "prepare_threshold" not in connection_params("direct_db")  # psycopg's default


def test_manage_py_check_warns_about_listen_through_a_pooler(tmp_path: Path) -> None:
    def check(settings_body: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "pooled_settings.py").write_text(
            "from tests.settings import *  # noqa: F403\n" + settings_body
        )
        env = {
            **os.environ,
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
            "DJANGO_SETTINGS_MODULE": "pooled_settings",
        }
        return subprocess.run(
            [sys.executable, "-m", "django", "check"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    pooled = (
        "DIRECT = dict(DATABASES.get('direct', DATABASES['default']))\n"
        "DATABASES = {'default': {**DIRECT, 'DISABLE_SERVER_SIDE_CURSORS': True}}\n"
        "HORSIES = {**HORSIES}\nHORSIES.pop('LISTEN_DATABASE_ALIAS', None)\n"
    )
    warned = check(pooled)
    assert warned.returncode == 0, warned.stderr  # a warning, not an error
    assert "horsies_django.W003" in warned.stderr
    assert "LISTEN_DATABASE_ALIAS" in warned.stderr
    fixed = check(
        pooled + "DATABASES['direct'] = DIRECT\nHORSIES['LISTEN_DATABASE_ALIAS'] = 'direct'\n"
    )
    assert fixed.returncode == 0, fixed.stderr
    assert "W003" not in fixed.stderr + fixed.stdout
