"""The `--candidate-sql` of the deep-table benchmarks: SQL to run on a migrated database, then
measure again. Either a file, or `reverse:<migration>` for the SQL that undoes one of
horsies_django's migrations (its `REVERSE`), e.g. `reverse:0012_linear_outcome_triggers` for the
outcome triggers as they were before 0012."""

from __future__ import annotations

import importlib
from pathlib import Path

REVERSE_PREFIX = "reverse:"


def read_candidate(value: str) -> str:
    """The SQL that `value` names."""
    if value.startswith(REVERSE_PREFIX):
        name = value.removeprefix(REVERSE_PREFIX)
        migration = importlib.import_module(f"horsies_django.migrations.{name}")
        return str(migration.REVERSE)
    return Path(value).read_text()
