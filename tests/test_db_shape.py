"""The shape of db/: SQL only there, one module per caller, typed rows out, one claim statement."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from horsies_django.db import claim, worker_queries
from horsies_django.db.claim import ClaimFrom, claim_statement

PACKAGE = Path(__file__).resolve().parent.parent / "horsies_django"
# Migrations define the schema and its triggers; the throwaway PostgreSQL is a dev tool.
OUTSIDE_THE_QUEUE = ("db/", "migrations/", "embedded_pg/")
STATEMENT = re.compile(
    r"\b(SELECT\b.+\bFROM|UPDATE\s+horsies_|INSERT\s+INTO|DELETE\s+FROM)\b", re.S | re.I
)
# The modules of db/ and whose statements each holds.
CALLER_MODULES = {
    "producer_queries.py": "sending, reading results and info, cancelling",
    "worker_queries.py": "the worker parent: caps, due times, outcomes, its own row",
    "claim.py": "the claim, for workers, run_pending and eager mode",
    "maintenance_queries.py": "status and prune commands, leadership, rescue, expiry",
    "admin_queries.py": "the admin's reads and the operator actions",
    "testing_queries.py": "run_pending and eager mode",
    "catalogue_queries.py": "the catalogue of registered tasks (migrate, worker start)",
    "workflow_queries.py": "workflows: start, the handle's reads, cancel / pause / resume",
    "django_tasks_queries.py": "the django.tasks backend: enqueue, a result with its attempts",
    "schedule_queries.py": "periodic schedules: writing the declared ones, firing their slots",
    "connections.py": "connections and session settings",
    "notify.py": "LISTEN connections and channel names",
    "outbox.py": "statements sent without blocking the worker's loop",
}


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_sql_statement_outside_db() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{line}: {text[:60]!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not path.relative_to(PACKAGE).as_posix().startswith(OUTSIDE_THE_QUEUE)
        for line, text in _string_constants(path)
        if STATEMENT.search(text)
    ]
    assert found == []


def test_the_scan_finds_statements_where_they_are() -> None:
    in_db = [t for _, t in _string_constants(PACKAGE / "db/producer_queries.py")]
    assert any(STATEMENT.search(t) for t in in_db)


def test_db_is_one_module_per_caller() -> None:
    assert {p.name for p in (PACKAGE / "db").glob("*.py")} - {"__init__.py"} == set(CALLER_MODULES)


def _returns(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    return [
        (node.name, ast.unparse(node.returns) if node.returns else "")
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
    ]


def test_db_functions_return_typed_records_not_bare_rows() -> None:
    """A caller outside db/ never unpacks a row by position: what db/ returns is a record, a
    scalar or a mapping. (A connection typed `Connection[Row]` is not a row.)"""
    bare = re.compile(r"\bRow\b|tuple\[[^\]]*,[^\]]*,|list\[Any\]|^Any$")
    offenders = [
        f"{path.name}: {name} -> {returns or 'no annotation'}"
        for path in sorted((PACKAGE / "db").glob("*.py"))
        for name, returns in _returns(path)
        if not returns or bare.search(returns.replace("Connection[Row]", "Connection"))
    ]
    assert offenders == []


def test_the_in_process_runners_claim_with_the_worker_statement() -> None:
    """run_pending and eager mode have no claim of their own: their module holds no SQL, and
    the statements they run are the worker's claim with a filter."""
    assert not [
        t for _, t in _string_constants(PACKAGE / "db/testing_queries.py") if STATEMENT.search(t)
    ]
    worker_claim = claim.CLAIM_STATEMENTS["horsies_claim"]
    by_name = claim.statement_for("horsies_claim", by_name=True)
    assert by_name.replace("\n          AND t.task_name = ANY(%s::text[])", "") == worker_claim
    one_task = claim_statement(ClaimFrom.ONE_TASK)
    one_queue = claim.CLAIM_STATEMENTS["horsies_claim_one_queue"]
    assert one_task.split("WHERE t.id IN")[0] == one_queue.split("WHERE t.id IN")[0]
    assert one_task.split("RETURNING t.*")[1] == one_queue.split("RETURNING t.*")[1]
    assert one_task == claim.CLAIM_ONE_TASK
    assert "CLAIM_ONE_TASK" in (PACKAGE / "db/testing_queries.py").read_text()


def test_outcome_rows_map_ids_typed_or_as_text() -> None:
    ids = worker_queries.recorded_ids([("0193a1c2-0000-7000-8000-000000000001",)])
    assert ids == {"0193a1c2-0000-7000-8000-000000000001"}
