"""`horsies_django`'s public names are imported on first use (PEP 562), so that a worker loads only
what it runs. Each check runs in a fresh interpreter: this one has imported everything already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BARE_IMPORT = """
import json, sys
import horsies_django
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("horsies_django", "pydantic")))))
"""

EVERY_NAME = """
import importlib, json
import horsies_django
resolved = {}
for name in horsies_django.__all__:
    value = getattr(horsies_django, name)
    home = importlib.import_module(horsies_django._HOMES[name])
    resolved[name] = value is getattr(home, name)
print(json.dumps(resolved))
"""

WORKER_IMPORTS = """
import json, sys
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["horsies_django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "never_used"}},
    USE_TZ=True,
)
django.setup()
from horsies_django import TaskError, TaskResult, app  # what a task module imports
import horsies_django.management.commands.horsies_worker
print(json.dumps(sorted(m for m in sys.modules if m.startswith("horsies_django.workflows"))))
"""


def run_fresh(code: str) -> object:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_package_loads_none_of_its_modules() -> None:
    assert run_fresh(BARE_IMPORT) == ["horsies_django"]


def test_every_public_name_resolves_to_its_definition() -> None:
    resolved = run_fresh(EVERY_NAME)
    assert isinstance(resolved, dict)
    assert sorted(resolved) == sorted(set(resolved))
    assert [name for name, same in resolved.items() if not same] == []


def test_unknown_names_and_submodules_behave_as_before() -> None:
    code = """
import json
import horsies_django
try:
    horsies_django.no_such_name
except AttributeError as exc:
    missing = str(exc)
from horsies_django import codec  # a submodule, not a public name
print(json.dumps([missing, codec.__name__, "TaskResult" in dir(horsies_django)]))
"""
    assert run_fresh(code) == [
        "module 'horsies_django' has no attribute 'no_such_name'",
        "horsies_django.codec",
        True,
    ]


def test_a_worker_with_no_workflows_loads_no_workflow_module() -> None:
    """Django set up, a task module's imports and the worker command: the workflow modules
    (authoring, validation, starting, handles) stay out until something uses them."""
    assert run_fresh(WORKER_IMPORTS) == []
