"""The tasks registered in this process, and the window in which sends are suppressed.

A task name maps to exactly one function per process. Everything that looks a task up by name
(worker children, eager mode, result decoding, the system checks) reads this table, so none of
them imports the decorator API of `registry`, nor through it sending and the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from horsies_django.definitions import TaskDefinition
from horsies_django.exceptions import TaskDefinitionError


class TaskTable:
    """Task definitions by name; `discovered` once task modules have been imported."""

    def __init__(self) -> None:
        self.definitions: dict[str, TaskDefinition] = {}
        self.discovered = False

    def add(self, definition: TaskDefinition) -> None:
        """Register a definition; the same name from another function raises."""
        existing = self.definitions.get(definition.name)
        if existing is not None and _origin(existing.fn) != _origin(definition.fn):
            raise TaskDefinitionError(
                f"task name {definition.name!r} is already registered by "
                f"{_origin(existing.fn)}; {_origin(definition.fn)} must use another name"
            )
        self.definitions[definition.name] = definition

    def get(self, task_name: str) -> TaskDefinition | None:
        return self.definitions.get(task_name)

    def unregister(self, task_name: str) -> None:
        """Forget a task (for tests that register throwaway tasks)."""
        self.definitions.pop(task_name, None)


def _origin(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{getattr(fn, '__qualname__', fn)}"


# The process's one table (`horsies_django.app` reads and writes it).
table = TaskTable()

_suppress_depth = 0


def suppressed() -> bool:
    """True while task modules are being imported (sends would run at import time)."""
    return _suppress_depth > 0


class suppress_sends:  # noqa: N801 - used as a context manager, reads like a statement
    """Within this block, every send returns Err(SEND_SUPPRESSED) and writes nothing."""

    def __enter__(self) -> None:
        global _suppress_depth
        _suppress_depth += 1

    def __exit__(self, *_: object) -> None:
        global _suppress_depth
        _suppress_depth -= 1
