"""The catalogue of registered tasks in the database, for senders in other languages.

`horsies_send()` (docs/foreign-producers.md) fills a send from it exactly as a Python send fills
one from the task's definition. `migrate` and every starting worker refresh it from the tasks
registered in this process; entries of tasks no longer registered are kept (during a rolling
deploy, old senders may still send them, and the old workers still run them).
"""

from __future__ import annotations

import json

from horsies_django.conf import horsies_settings
from horsies_django.db import catalogue_queries
from horsies_django.db.catalogue_queries import CatalogueEntry
from horsies_django.definitions import TaskDefinition
from horsies_django.registered import table


def entry_of(definition: TaskDefinition) -> CatalogueEntry:
    """What `horsies_send()` needs of a definition: the same values a Python send stores."""
    return CatalogueEntry(
        task_name=definition.name,
        queue_name=definition.queue_name,
        max_retries=definition.max_retries,
        timeout_ms=definition.timeout_ms,
        options=json.loads(definition.options_json),
        parameters=sorted(definition.params),
        required_parameters=sorted(definition.required_params),
    )


def refresh(alias: str | None = None) -> list[str]:
    """Write every registered task to the catalogue; returns the names that changed."""
    entries = [entry_of(d) for _, d in sorted(table.definitions.items())]
    if not entries:
        return []
    return catalogue_queries.upsert_catalogue(alias or horsies_settings().DATABASE_ALIAS, entries)
