"""horsies_prune: old terminal tasks go with their attempts, in batches; everything else stays."""

from __future__ import annotations

from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from horsies_django.management.commands.horsies_prune import describe, duration
from horsies_django.testing import run_pending
from tests.conftest import database_url, sql_rows, sql_value
from tests.testapp.tasks import add, boom


def execute(query: str, *params: object) -> None:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(query, params)


def finished_task(status: str, days_ago: float, sent_days_ago: float | None = None) -> str:
    """A task run in-process, then moved to `status` and back-dated (attempts kept): finished
    `days_ago`, sent a minute before that unless `sent_days_ago` says when."""
    handle = (add.send(a=1, b=1) if status != "FAILED" else boom.send()).ok_value
    run_pending()
    execute(
        "UPDATE horsies_task SET status = %s, finished_at = now() - make_interval(days => %s), "
        "sent_at = coalesce(now() - make_interval(days => %s), "
        "                   now() - make_interval(days => %s) - interval '1 minute') "
        "WHERE id = %s",
        status,
        days_ago,
        sent_days_ago,
        days_ago,
        handle.task_id,
    )
    return handle.task_id


def worker_row(state: str, days_ago: float) -> None:
    execute(
        "INSERT INTO horsies_worker (id, name, hostname, pid, processes, queues, state, "
        "started_at, heartbeat_at, stopped_at) VALUES (gen_random_uuid(), 'w', 'h', 1, 1, "
        "'[]', %s, now() - interval '60 days', now() - make_interval(days => %s), "
        "CASE WHEN %s = 'RUNNING' THEN NULL ELSE now() - make_interval(days => %s) END)",
        state,
        days_ago,
        state,
        days_ago,
    )


def prune(*args: str) -> str:
    out = StringIO()
    call_command("horsies_prune", *args, stdout=out)
    return out.getvalue()


def remaining() -> set[str]:
    return {str(r[0]) for r in sql_rows("SELECT id FROM horsies_task")}


@pytest.fixture
def history(clean_tables: None) -> dict[str, str]:
    """Finished tasks of every terminal status, some past the default ages, some not."""
    tasks = {
        "old_completed": finished_task("COMPLETED", 8),
        "new_completed": finished_task("COMPLETED", 2),
        "old_failed": finished_task("FAILED", 31),
        "recent_failed": finished_task("FAILED", 8),
        "old_cancelled": finished_task("CANCELLED", 8),
        "old_expired": finished_task("EXPIRED", 8),
    }
    tasks["pending"] = add.send(a=0, b=0).ok_value.task_id
    execute("UPDATE horsies_task SET sent_at = now() - interval '90 days' WHERE status = 'PENDING'")
    worker_row("STOPPED", 8)
    worker_row("DEAD", 8)
    worker_row("STOPPED", 1)
    worker_row("RUNNING", 8)
    return tasks


def test_dry_run_counts_and_deletes_nothing(history: dict[str, str]) -> None:
    out = prune("--dry-run")
    assert "completed  older than 7d: would delete 1 task(s), 1 attempt(s)" in out
    assert "failed     older than 30d: would delete 1 task(s), 1 attempt(s)" in out
    assert "cancelled  older than 7d: would delete 1 task(s), 1 attempt(s)" in out
    assert "expired    older than 7d: would delete 1 task(s), 1 attempt(s)" in out
    assert "would delete 2 row(s)" in out
    assert remaining() == set(history.values())
    assert sql_value("SELECT count(*) FROM horsies_worker") == 4


def test_defaults_delete_old_terminal_tasks_with_their_attempts(history: dict[str, str]) -> None:
    out = prune()
    assert "completed  older than 7d: deleted 1 task(s), 1 attempt(s)" in out
    assert remaining() == {history[k] for k in ("new_completed", "recent_failed", "pending")}
    orphans = (
        "SELECT count(*) FROM horsies_task_attempt a "
        "LEFT JOIN horsies_task t ON t.id = a.task_id WHERE t.id IS NULL"
    )
    assert sql_value(orphans) == 0
    assert sql_value("SELECT count(*) FROM horsies_task_attempt") == 2
    states = sorted(r[0] for r in sql_rows("SELECT state FROM horsies_worker"))
    assert states == ["RUNNING", "STOPPED"]


def test_small_batches_delete_everything_due(history: dict[str, str]) -> None:
    out = prune("--batch-size", "1", "--completed-older-than", "1d", "--failed-older-than", "1d")
    assert "completed  older than 1d: deleted 2 task(s), 2 attempt(s)" in out
    assert "failed     older than 1d: deleted 2 task(s), 2 attempt(s)" in out
    assert remaining() == {history["pending"]}


def test_a_task_goes_once_both_its_send_and_its_finish_are_past_the_age(
    clean_tables: None,
) -> None:
    # finished_at comes from the worker's clock, sent_at from the server's: a worker clock
    # running behind can record a finish before the send. Prune reads the (status, sent_at)
    # range up to the age, so such a task waits until its send is past the age too.
    skewed = finished_task("COMPLETED", 8, sent_days_ago=1)
    finished_task("COMPLETED", 8)
    assert "would delete 1 task(s), 1 attempt(s)" in prune("--dry-run")
    assert "completed  older than 7d: deleted 1 task(s), 1 attempt(s)" in prune()
    assert remaining() == {skewed}
    execute("UPDATE horsies_task SET sent_at = now() - interval '8 days' WHERE id = %s", skewed)
    assert "completed  older than 7d: deleted 1 task(s), 1 attempt(s)" in prune()
    assert remaining() == set()


def test_batches_delete_only_their_own_attempts(clean_tables: None) -> None:
    old = [finished_task("COMPLETED", 8) for _ in range(5)]
    kept = finished_task("COMPLETED", 2)
    out = prune("--batch-size", "2")
    assert "completed  older than 7d: deleted 5 task(s), 5 attempt(s)" in out
    assert remaining() == {kept}
    assert not set(old) & remaining()
    assert sql_value("SELECT count(*) FROM horsies_task_attempt") == 1


def test_never_keeps_a_status(history: dict[str, str]) -> None:
    out = prune("--failed-older-than", "never", "--completed-older-than", "never")
    assert "failed     kept (never pruned)" in out
    assert "workers    kept (never pruned)" in out
    assert {history["old_failed"], history["old_completed"]} <= remaining()
    assert sql_value("SELECT count(*) FROM horsies_worker") == 4


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90m", 5_400),
        ("12h", 43_200),
        ("7d", 604_800),
        ("2w", 1_209_600),
        ("30s", 30),
        ("1.5h", 5_400),
    ],
)
def test_duration_parsing(text: str, seconds: float) -> None:
    assert duration(text) == seconds


def test_durations_are_described_back() -> None:
    assert [describe(duration(t)) for t in ("7d", "90m", "12h", "45s", "never")] == [
        "7d",
        "90m",
        "12h",
        "45s",
        "never",
    ]


@pytest.mark.parametrize("bad", ["7", "3y", "-1d", "soon"])
def test_bad_duration_is_refused_with_the_format(bad: str) -> None:
    with pytest.raises(CommandError, match=r"not a duration: write a number and a unit"):
        prune(f"--completed-older-than={bad}")


def test_bad_batch_size_is_refused() -> None:
    with pytest.raises(CommandError, match="between 1 and"):
        prune("--batch-size", "0")
