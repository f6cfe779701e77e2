"""pytest fixtures for projects that use horsies_django.

Enable in your top-level conftest.py::

    pytest_plugins = ["horsies_django.pytest_plugin"]

Requires pytest-django.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from horsies_django.results import stop_listener
from horsies_django.testing import RanTask, run_pending

type RunPending = Callable[..., list[RanTask]]


@pytest.fixture
def horsies_run_pending(db: None) -> RunPending:
    """`run_pending(task_names=None, max_tasks=None)`: run due tasks in this process."""
    return run_pending


@pytest.fixture
def horsies_eager(settings: Any) -> None:
    """Eager mode for one test: every `.send()` runs its task at once, in this process."""
    settings.HORSIES = {**(getattr(settings, "HORSIES", None) or {}), "EAGER": True}


@pytest.fixture(scope="session", autouse=True)
def _horsies_stop_result_listener(django_db_setup: None) -> Iterator[None]:
    """Close the result listener's connection before pytest-django drops the test database."""
    yield
    stop_listener()
