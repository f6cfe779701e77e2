"""Migrations match the models, and they reverse cleanly (tables, indexes, triggers, functions).

The round trip runs in subprocesses against a fresh database created for the test and dropped
afterwards, so the tables the rest of the session uses are never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from urllib.parse import urlsplit

import psycopg
import pytest
from django.core.management import call_command
from psycopg import sql

from tests.conftest import ROOT, database_url

SCHEMA_OBJECTS = """
SELECT 'table ' || table_name FROM information_schema.tables
    WHERE table_schema = 'public' AND table_name LIKE 'horsies%%'
UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proname LIKE 'horsies%%'
UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE tgname LIKE 'horsies%%'
UNION ALL SELECT 'index ' || indexname FROM pg_indexes WHERE indexname LIKE 'horsies%%'
ORDER BY 1
"""


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    out = StringIO()
    call_command("makemigrations", "horsies_django", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    """A new empty database on the dev server, dropped afterwards."""
    base = urlsplit(database_url())
    name = f"{base.path.lstrip('/')}_migrations_{os.getpid()}"
    admin = base._replace(path="/postgres").geturl()
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield base._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(drop)


def _manage(url: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "django", *args, "--settings", "tests.settings"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _objects(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(SCHEMA_OBJECTS).fetchall()]


def test_migrations_reverse_to_nothing_and_apply_again(fresh_database_url: str) -> None:
    url = fresh_database_url
    _manage(url, "migrate", "--no-input")
    forward = _objects(url)
    for expected in (
        "table horsies_task",
        "table horsies_task_attempt",
        "table horsies_worker",
        "function horsies_notify_task_inserted",
        "trigger horsies_task_new_insert",
        "trigger horsies_task_done_update",
    ):
        assert expected in forward
    assert any(name.startswith("index ") for name in forward)

    _manage(url, "migrate", "horsies_django", "zero", "--no-input")
    assert _objects(url) == []
    plan = _manage(url, "showmigrations", "horsies_django")
    assert "[X]" not in plan

    _manage(url, "migrate", "--no-input")
    assert _objects(url) == forward
    # The re-created triggers work: an insert notifies listeners.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("LISTEN horsies_task_new")
        conn.execute(
            "INSERT INTO horsies_task (id, task_name, queue_name, priority, status, kwargs,"
            " sent_at, enqueued_at, retry_count, max_retries, options, enqueue_sha, claim_gen)"
            " VALUES (gen_random_uuid(), 't', 'default', 50, 'PENDING', '{}', now(), now(),"
            " 0, 0, '{}', 'sha', 0)"
        )
        received = [n.payload for n in conn.notifies(timeout=10, stop_after=1)]
    assert received == ["default 0"]  # queue and milliseconds until due
