"""The state machine of `horsies_django.states`: its sets, and everything that must agree with them.

No database and no subprocess: the sets are checked against each other, the admin previews
against the sets, the SQL of `db/` is parsed for status literals, and the package's Python for
statuses spelled as bare strings.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Final

import pytest
from django.utils import timezone

import horsies_django
from horsies_django import states, types
from horsies_django.admin import actions
from horsies_django.db import admin_queries, maintenance_queries, producer_queries
from horsies_django.management.commands import horsies_prune
from horsies_django.models import Task, WorkerState
from horsies_django.states import (
    CANCELLABLE_STATES,
    REENQUEUABLE_STATES,
    RUN_NOW_STATES,
    TASK_ACTIVE_STATES,
    TASK_TERMINAL_STATES,
    TASK_UNFINISHED_STATES,
    TASK_UNSTARTED_STATES,
    NodeStatus,
    TaskStatus,
    WorkflowStatus,
    in_order,
)
from horsies_django.types import OutcomeCode

PACKAGE: Final = Path(horsies_django.__file__).parent
ALL: Final = frozenset(TaskStatus)

SETS: Final = {
    "TASK_ACTIVE_STATES": TASK_ACTIVE_STATES,
    "TASK_TERMINAL_STATES": TASK_TERMINAL_STATES,
    "TASK_UNFINISHED_STATES": TASK_UNFINISHED_STATES,
    "TASK_UNSTARTED_STATES": TASK_UNSTARTED_STATES,
    "CANCELLABLE_STATES": CANCELLABLE_STATES,
    "REENQUEUABLE_STATES": REENQUEUABLE_STATES,
    "RUN_NOW_STATES": RUN_NOW_STATES,
}

# --------------------------------------------------------------------------- the sets


def test_every_status_is_pending_active_or_terminal_exactly_once() -> None:
    parts = [frozenset({TaskStatus.PENDING}), TASK_ACTIVE_STATES, TASK_TERMINAL_STATES]
    for status in TaskStatus:
        assert sum(status in part for part in parts) == 1, status
    assert TASK_ACTIVE_STATES.isdisjoint(TASK_TERMINAL_STATES)


def test_unfinished_is_everything_not_terminal() -> None:
    assert TASK_UNFINISHED_STATES == ALL - TASK_TERMINAL_STATES
    assert TASK_ACTIVE_STATES < TASK_UNFINISHED_STATES


def test_only_tasks_whose_user_code_has_not_started_can_be_cancelled() -> None:
    assert CANCELLABLE_STATES == TASK_UNSTARTED_STATES
    assert CANCELLABLE_STATES <= TASK_UNFINISHED_STATES
    assert TaskStatus.RUNNING not in CANCELLABLE_STATES
    assert TaskStatus.CLAIMED in CANCELLABLE_STATES  # claimed, but no child has started it


def test_only_finished_unsuccessful_tasks_can_be_reenqueued() -> None:
    assert TASK_TERMINAL_STATES - {TaskStatus.COMPLETED} == REENQUEUABLE_STATES


def test_only_waiting_tasks_can_be_run_now() -> None:
    assert {TaskStatus.PENDING} == RUN_NOW_STATES
    assert RUN_NOW_STATES.isdisjoint(TASK_ACTIVE_STATES | TASK_TERMINAL_STATES)


def test_the_sets_are_frozensets_of_task_statuses() -> None:
    for name, members in SETS.items():
        assert isinstance(members, frozenset), name
        assert members, name
        assert all(type(m) is TaskStatus for m in members), name


def test_is_terminal_reads_the_terminal_set() -> None:
    for status in TaskStatus:
        assert status.is_terminal == (status in TASK_TERMINAL_STATES)


def test_in_order_gives_plain_values_in_declaration_order() -> None:
    assert in_order(REENQUEUABLE_STATES) == ["FAILED", "CANCELLED", "EXPIRED"]
    assert in_order([TaskStatus.RUNNING, TaskStatus.CLAIMED]) == ["CLAIMED", "RUNNING"]
    assert all(type(v) is str for v in in_order(ALL))
    # The partial indexes of models.py name these lists; another order would need a migration.
    assert in_order(TASK_UNSTARTED_STATES) == ["PENDING", "CLAIMED"]


def test_the_public_names_are_the_state_machine_s() -> None:
    assert horsies_django.TASK_TERMINAL_STATES is states.TASK_TERMINAL_STATES
    assert horsies_django.TaskStatus is types.TaskStatus is states.TaskStatus


# --------------------------------------------------------------------------- users of the sets


def _task(status: TaskStatus, *, due_in: timedelta = timedelta(hours=1)) -> Task:
    return Task(status=status.value, enqueued_at=timezone.now() + due_in)


@pytest.mark.parametrize("status", list(TaskStatus))
def test_the_admin_previews_apply_to_the_services_sets(status: TaskStatus) -> None:
    task = _task(status)  # due later, so only the status decides "run now"
    assert (actions._cancellable(task) is None) == (status in CANCELLABLE_STATES)
    assert (actions._reenqueuable(task) is None) == (status in REENQUEUABLE_STATES)
    assert (actions._waiting(task) is None) == (status in RUN_NOW_STATES)


def test_pruning_has_an_age_for_every_terminal_status_and_only_those() -> None:
    assert set(horsies_prune.DEFAULT_AGES) == TASK_TERMINAL_STATES


# --------------------------------------------------------------------------- SQL literals

# `status` or `new_status`, optionally qualified (`t.status`), compared with literals.
STATUS_COMPARISON: Final = re.compile(
    r"(?<![\w.])(?:\w+\.)?(?P<column>new_status|status)\s*"
    r"(?P<op>IN|=|<>|!=)\s*(?P<rhs>\([^()]*\)|'[^']*')",
    re.IGNORECASE,
)
LITERAL: Final = re.compile(r"'([^']*)'")
UPPER_LITERAL: Final = re.compile(r"'([A-Z][A-Z0-9_]*)'")

# IN-lists that are not an eligibility set, and why. FINISH picks which columns of the outcome
# it records by the status it records (given as data, `d.new_status`): a result for COMPLETED
# and FAILED, an error code and reason for FAILED and EXPIRED.
IN_LIST_EXCEPTIONS: Final = {
    frozenset(
        {TaskStatus.COMPLETED, TaskStatus.FAILED}
    ): "FINISH: the outcomes that store a result",
    frozenset({TaskStatus.FAILED, TaskStatus.EXPIRED}): "FINISH: the outcomes that store an error",
}

# Upper-case literals in SQL that are not task statuses.
OTHER_VOCABULARY: Final = (
    frozenset(WorkerState.values)
    | {OutcomeCode.TASK_CANCELLED.value, OutcomeCode.TASK_EXPIRED.value}
    | {"UTF8"}
)


def _sql_texts(path: Path) -> Iterator[tuple[int, str]]:
    """Every string in a module except docstrings; f-strings with `{…}` for what they format."""
    tree = ast.parse(path.read_text())
    pieces = {
        id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values
    }
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = (v.value if isinstance(v, ast.Constant) else "{…}" for v in node.values)
            yield node.lineno, "".join(str(p) for p in parts)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings | pieces
        ):
            yield node.lineno, node.value


def status_problems(text: str) -> list[str]:
    """What is wrong with the status literals of one SQL text (empty when nothing is)."""
    problems = []
    for match in STATUS_COMPARISON.finditer(text):
        literals = LITERAL.findall(match["rhs"])
        unknown = [v for v in literals if v not in TaskStatus.__members__]
        if unknown:
            problems.append(f"{match[0]!r}: not a TaskStatus: {unknown}")
            continue
        if match["op"].upper() != "IN":
            continue
        found = frozenset(TaskStatus(v) for v in literals)
        if found not in SETS.values() and found not in IN_LIST_EXCEPTIONS:
            problems.append(f"{match[0]!r}: {in_order(found)} is none of the sets in states.py")
    for word in UPPER_LITERAL.findall(text):
        if word not in TaskStatus.__members__ and word not in OTHER_VOCABULARY:
            problems.append(f"{word!r} is neither a status nor a known SQL word")
    return problems


def _db_modules() -> list[Path]:
    return sorted(p for p in (PACKAGE / "db").glob("*.py") if p.name != "workflow_queries.py")


# Workflow statements compare workflow and node statuses, not task statuses: checked apart.
WORKFLOW_WORDS: Final = frozenset(WorkflowStatus) | frozenset(NodeStatus)


def test_the_workflow_statements_use_workflow_and_node_statuses() -> None:
    words = {
        word
        for _, text in _sql_texts(PACKAGE / "db/workflow_queries.py")
        for word in UPPER_LITERAL.findall(text)
    }
    assert words
    assert words <= WORKFLOW_WORDS | {"UTF8"}, words - WORKFLOW_WORDS


def test_every_status_literal_in_the_sql_of_db_agrees_with_the_state_machine() -> None:
    problems = [
        f"{path.name}, statement at line {line}: {problem}"
        for path in _db_modules()
        for line, text in _sql_texts(path)
        for problem in status_problems(text)
    ]
    assert not problems, "\n".join(problems)


def test_the_scanner_sees_the_status_comparisons_of_db() -> None:
    comparisons = [
        m[0]
        for path in _db_modules()
        for _, text in _sql_texts(path)
        for m in STATUS_COMPARISON.finditer(text)
    ]
    assert len(comparisons) >= 30
    assert any("IN ('PENDING', 'CLAIMED', 'RUNNING')" in c for c in comparisons)  # horsies_status
    assert any(c.startswith("d.new_status IN") for c in comparisons)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("WHERE status IN ('PENDING', 'CLAIMD')", "not a TaskStatus: ['CLAIMD']"),
        ("WHERE t.status = 'pending'", "not a TaskStatus: ['pending']"),
        ("SET status = 'DONE'", "not a TaskStatus: ['DONE']"),
        ("WHERE status <> 'EXPIRE'", "not a TaskStatus: ['EXPIRE']"),
        ("WHERE status IN ('PENDING', 'RUNNING')", "none of the sets"),
        ("WHERE status IN ('FAILED', 'CANCELLED')", "none of the sets"),
        ("VALUES (%s, 'PENDNG', now())", "neither a status nor a known SQL word"),
    ],
)
def test_the_scanner_reports_a_wrong_literal(text: str, problem: str) -> None:
    found = status_problems(text)
    assert any(problem in p for p in found), found


def _where_statuses(statement: str) -> frozenset[TaskStatus]:
    """The statuses a one-row statement's WHERE clause accepts."""
    [match] = STATUS_COMPARISON.finditer(statement.rpartition("WHERE")[2])
    return frozenset(TaskStatus(v) for v in LITERAL.findall(match["rhs"]))


def test_the_services_statements_apply_to_the_services_sets() -> None:
    assert _where_statuses(producer_queries.CANCEL_TASK) == CANCELLABLE_STATES
    assert _where_statuses(admin_queries.REENQUEUE_COPY) == REENQUEUABLE_STATES
    assert _where_statuses(admin_queries.RUN_NOW) == RUN_NOW_STATES
    assert _where_statuses(maintenance_queries.EXPIRE_PENDING) == {TaskStatus.PENDING}


# --------------------------------------------------------------------------- no bare statuses

# Python strings equal to a status that are not task statuses, and why. (Members of other
# enumerations, AttemptOutcome and WorkerState, are their definitions and are skipped.)
NOT_A_STATUS: Final = {
    ("worker/heartbeat.py", "RUNNING"): "a worker state (worker/ does not import models.py)",
    ("worker/reporting.py", "FAILED"): "a log verb for an attempt, beside CRASHED",
}


def _python_modules() -> Iterator[Path]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] != "migrations" and relative != Path("states.py"):
            yield path


def _enum_members(tree: ast.AST) -> set[int]:
    """ids of the nodes of `NAME = value` lines in the body of an enumeration class."""
    return {
        id(node)
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef)
        and any(ast.unparse(base).endswith(("Enum", "Choices")) for base in cls.bases)
        for line in cls.body
        if isinstance(line, ast.Assign)
        for node in ast.walk(line.value)
    }


def _bare_statuses(path: Path) -> Iterator[tuple[str, str, int]]:
    tree = ast.parse(path.read_text())
    skipped = _enum_members(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in TaskStatus.__members__
            and id(node) not in skipped
        ):
            yield str(path.relative_to(PACKAGE)), node.value, node.lineno


def test_no_status_is_a_bare_string_outside_the_state_machine() -> None:
    found = [f for path in _python_modules() for f in _bare_statuses(path)]
    assert [f for f in found if f[:2] not in NOT_A_STATUS] == []
    # The exceptions are still needed (and so still true).
    assert {f[:2] for f in found} == set(NOT_A_STATUS)
