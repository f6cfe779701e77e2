"""Which task rows are `django.tasks` tasks: `django.tasks:` + the module path of the function.

A name, not a registration: the worker needs no `@app.task` for them, and imports the
function by its module path when it runs one (the prefix is reserved by `definitions`).
"""

from __future__ import annotations

from typing import Final

from horsies_django.definitions import DJANGO_TASK_PREFIX

# The task name column's size: a longer module path cannot be stored.
MAX_TASK_NAME_CHARS: Final = 255


def task_name_for(module_path: str) -> str:
    """The task name of the `django.tasks` function at `module_path`."""
    return DJANGO_TASK_PREFIX + module_path


def module_path_of(task_name: str) -> str | None:
    """The module path a task name stands for, or None when it names a registered task."""
    if task_name.startswith(DJANGO_TASK_PREFIX):
        return task_name[len(DJANGO_TASK_PREFIX) :]
    return None


def is_django_task(task_name: str) -> bool:
    return task_name.startswith(DJANGO_TASK_PREFIX)
