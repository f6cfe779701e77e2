"""The hot path's shape, observed by the database: batched claims, batched outcomes, a fixed
set of connections, and the cap lock taken only when a cap applies.

A statement-level trigger (test-only, dropped afterwards) logs every UPDATE of horsies_task:
its backend, its transaction, how many rows it took from PENDING to RUNNING (a claim), how many
it finished, and whether its backend held the cap lock (the advisory lock claimers serialise on
when a cap applies) at that moment.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

import psycopg
import pytest
from django.test import override_settings

from horsies_django.worker.claims import CAP_LOCK_KEY
from tests.conftest import ROOT, database_url, sql_value, wait_until
from tests.test_queues import CUSTOM, StartWorker, custom_worker
from tests.testapp.tasks import noop

pytestmark = pytest.mark.usefixtures("clean_tables")

INSTALL = """
CREATE TABLE test_update_log (
    pid int, xid bigint, claimed int, finished int, cap_locks int
);
CREATE FUNCTION test_log_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_update_log
    SELECT pg_backend_pid(), txid_current(),
           count(*) FILTER (WHERE o.status = 'PENDING' AND n.status = 'RUNNING'),
           count(*) FILTER (WHERE o.status = 'RUNNING' AND n.status = 'COMPLETED'),
           (SELECT count(*) FROM pg_locks
             WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
               AND objsubid = 1 AND classid::bigint * 4294967296 + objid::bigint = %(key)s)
    FROM old_rows o JOIN new_rows n USING (id);
    RETURN NULL;
END $$;
CREATE TRIGGER test_log_update AFTER UPDATE ON horsies_task
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION test_log_update();
"""
UNINSTALL = """
DROP TRIGGER IF EXISTS test_log_update ON horsies_task;
DROP FUNCTION IF EXISTS test_log_update();
DROP TABLE IF EXISTS test_update_log;
"""


@dataclass(frozen=True)
class Update:
    pid: int
    xid: int
    claimed: int
    finished: int
    cap_locks: int


def _run(sql: str) -> None:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def update_log() -> Iterator[None]:
    _run(UNINSTALL)
    _run(INSTALL.replace("%(key)s", str(CAP_LOCK_KEY)))
    yield
    _run(UNINSTALL)


def logged_updates() -> list[Update]:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, xid, claimed, finished, cap_locks FROM test_update_log"
        ).fetchall()
    return [Update(*row) for row in rows]


def drain(total: int) -> None:
    wait_until(
        lambda: sql_value("SELECT count(*) FROM horsies_task WHERE status = 'COMPLETED'") == total,
        timeout_s=120,
        what=f"{total} tasks COMPLETED",
    )


@pytest.mark.usefixtures("update_log")
def test_uncapped_worker_claims_and_records_in_batches_on_fixed_connections(
    start_worker: StartWorker,
) -> None:
    total = 600
    assert all(r.is_ok() for r in noop.send_many([{"i": i} for i in range(total)]))
    start_worker("--processes", "4")
    drain(total)
    updates = logged_updates()
    claims = [u for u in updates if u.claimed]
    finishes = [u for u in updates if u.finished]
    # Every task was claimed once and finished once.
    assert sum(u.claimed for u in claims) == total
    assert sum(u.finished for u in finishes) == total
    # Batched claims: one statement claims for every free slot (and the tasks held ready).
    assert max(u.claimed for u in claims) >= 4
    assert len(claims) <= total / 2, f"{len(claims)} claim statements for {total} tasks"
    # Batched outcomes: one transaction records several finished tasks.
    assert len({u.xid for u in finishes}) <= total / 2, f"{len(finishes)} finish statements"
    assert max(u.finished for u in finishes) >= 2
    # No connection per task: claims run on one connection, outcomes on one other.
    assert len({u.pid for u in claims}) == 1
    assert len({u.pid for u in finishes}) == 1
    # No caps configured: the cap lock is never taken.
    assert all(u.cap_locks == 0 for u in updates)


@pytest.fixture
def qtasks() -> Iterator[ModuleType]:
    with override_settings(HORSIES=CUSTOM):
        yield importlib.import_module("tests.testapp.queue_tasks")


@pytest.mark.usefixtures("update_log")
def test_cap_lock_is_taken_only_when_a_cap_applies(
    qtasks: ModuleType, start_worker: StartWorker
) -> None:
    for _ in range(6):
        qtasks.capped.send(seconds=0.01)
    capped_worker = custom_worker(start_worker, "--queues", "capped")
    drain(6)
    capped_claims = [u for u in logged_updates() if u.claimed]
    assert sum(u.claimed for u in capped_claims) == 6
    assert all(u.cap_locks >= 1 for u in capped_claims)
    capped_worker.stop()

    _run("TRUNCATE test_update_log")
    for i in range(6):
        qtasks.high.send(path="/dev/null", token=str(i))
    custom_worker(start_worker, "--queues", "high,normal")  # neither queue has a cap
    drain(12)
    uncapped_claims = [u for u in logged_updates() if u.claimed]
    assert sum(u.claimed for u in uncapped_claims) == 6
    assert all(u.cap_locks == 0 for u in uncapped_claims)


# Send, claim, dispatch, finalize, get: the modules that run them, and the package's ORM.
HOT_PATH_MODULES = (
    "horsies_django/sending.py",
    "horsies_django/handles.py",
    "horsies_django/results.py",
    "horsies_django/execution.py",
    "horsies_django/db/store.py",
    "horsies_django/db/outbox.py",
    *(f"horsies_django/worker/{p.name}" for p in (ROOT / "horsies_django/worker").glob("*.py")),
)
ORM_MODULES = ("horsies_django.models", "django.db.models")


def test_hot_path_reads_raw_rows_not_models() -> None:
    """No module on the hot path imports the ORM: rows come back as tuples from store.py."""
    offenders = []
    for relative in HOT_PATH_MODULES:
        tree = ast.parse((ROOT / relative).read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            offenders += [f"{relative}: {n}" for n in names if n.startswith(ORM_MODULES)]
    assert "horsies_django/worker/supervisor.py" in HOT_PATH_MODULES
    assert offenders == []
