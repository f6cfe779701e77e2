"""The hot path's shape, observed by the database (see tests/update_log.py): batched claims,
batched outcomes, a fixed set of connections, no cap lock without caps, and no ORM.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_until
from tests.test_queues import StartWorker
from tests.testapp.tasks import add, flaky, noop
from tests.update_log import (
    forget_updates,
    logged_updates,
    statements_per_backend_since,
    wait_completed,
)

pytestmark = pytest.mark.usefixtures("clean_tables")


@pytest.mark.usefixtures("update_log")
def test_uncapped_worker_claims_and_records_in_batches_on_fixed_connections(
    start_worker: StartWorker,
) -> None:
    total = 600
    assert all(r.is_ok() for r in noop.send_many([{"i": i} for i in range(total)]))
    start_worker("--processes", "4")
    wait_completed(total)
    updates = logged_updates()
    claims = [u for u in updates if u.claimed]
    finishes = [u for u in updates if u.finished]
    # Every task was claimed once and finished once (a held task handed back, because a task
    # ran long on a loaded machine, is claimed again: it never started).
    released = sum(u.released for u in updates)
    assert sum(u.claimed for u in claims) == total + released
    assert sum(u.finished for u in finishes) == total
    # Batched claims: one statement claims for every free slot (and the tasks held ready).
    # More than two per child at once: while tasks are short, a worker holds about 20 ms of
    # work per child ready beyond its idle children (one per child, as before, claims 8 at most).
    assert max(u.claimed for u in claims) > 8
    assert len(claims) <= total / 2, f"{len(claims)} claim statements for {total} tasks"
    # Batched outcomes: one transaction records several finished tasks.
    assert len({u.xid for u in finishes}) <= total / 2, f"{len(finishes)} finish statements"
    assert max(u.finished for u in finishes) >= 2
    # No connection per task: claims run on one connection, outcomes on one other.
    assert len({u.pid for u in claims}) == 1
    assert len({u.pid for u in finishes}) == 1
    # No caps configured: the cap lock is never taken.
    assert all(u.cap_locks == 0 for u in updates)


# Send, claim, dispatch, finalize, get: the modules that run them, and the package's ORM.
HOT_PATH_MODULES = (
    "horsies_django/sending.py",
    "horsies_django/handles.py",
    "horsies_django/results.py",
    "horsies_django/execution.py",
    "horsies_django/db/connections.py",
    "horsies_django/db/claim.py",
    "horsies_django/db/producer_queries.py",
    "horsies_django/db/worker_queries.py",
    "horsies_django/db/outbox.py",
    *(f"horsies_django/worker/{p.name}" for p in (ROOT / "horsies_django/worker").glob("*.py")),
)
ORM_MODULES = ("horsies_django.models", "django.db.models")


def test_hot_path_reads_raw_rows_not_models() -> None:
    """No module on the hot path imports the ORM: rows come back from db/ as
    typed records built from tuples."""
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


@pytest.mark.usefixtures("update_log")
@pytest.mark.parametrize("kind", ["scheduled", "retried"])
def test_an_idle_worker_does_not_spin_after_a_due_timer_fires(
    start_worker: StartWorker, kind: str, tmp_path: Path
) -> None:
    """A claim woken by a due time (a scheduled task, a retry) consumes that time: an idle
    worker then claims once per poll interval, not in a loop."""
    start_worker("--processes", "2")
    if kind == "scheduled":
        handle = add.schedule(1, a=1, b=1).ok_value
    else:
        handle = flaky.send(counter=str(tmp_path / "calls"), failures=1).ok_value
    assert handle.get(timeout_ms=30_000).is_ok()
    claimer = next(u.pid for u in logged_updates() if u.claimed)
    forget_updates()

    # Two seconds of an idle worker, by the database's clock: heartbeats and polls keep the
    # log growing (HEARTBEAT_INTERVAL_MS 500, POLL_INTERVAL_MS 1000 in the test settings).
    counts = wait_until(lambda: statements_per_backend_since(2.0), what="two seconds of log")
    assert counts.get(claimer, 0) <= 5, f"{counts.get(claimer)} claims in 2 s by an idle worker"
