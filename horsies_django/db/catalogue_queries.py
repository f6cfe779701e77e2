"""The statement that keeps `horsies_task_catalogue` current (what `horsies_send()` reads).

Runs on Django's connection of the queue's alias, from `migrate` and from a starting worker. A
row changes only when its definition did, so a fleet of starting workers rewrites nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Final

from django.db import connections

UPSERT_CATALOGUE: Final = """
INSERT INTO horsies_task_catalogue AS c (
    task_name, queue_name, max_retries, timeout_ms, options, parameters, required_parameters,
    updated_at)
SELECT e.task_name, e.queue_name, e.max_retries, e.timeout_ms, e.options, e.parameters,
    e.required_parameters, now()
FROM jsonb_to_recordset(%s::jsonb) AS e(
    task_name text, queue_name text, max_retries int, timeout_ms int, options jsonb,
    parameters jsonb, required_parameters jsonb)
ON CONFLICT (task_name) DO UPDATE
SET queue_name = EXCLUDED.queue_name, max_retries = EXCLUDED.max_retries,
    timeout_ms = EXCLUDED.timeout_ms, options = EXCLUDED.options,
    parameters = EXCLUDED.parameters, required_parameters = EXCLUDED.required_parameters,
    updated_at = now()
WHERE (c.queue_name, c.max_retries, c.timeout_ms, c.options, c.parameters,
       c.required_parameters)
   IS DISTINCT FROM (EXCLUDED.queue_name, EXCLUDED.max_retries, EXCLUDED.timeout_ms,
       EXCLUDED.options, EXCLUDED.parameters, EXCLUDED.required_parameters)
RETURNING c.task_name
"""


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One registered task as senders outside Python see it."""

    task_name: str
    queue_name: str
    max_retries: int
    timeout_ms: int | None
    options: dict[str, object]
    parameters: list[str]
    required_parameters: list[str]


def upsert_catalogue(alias: str, entries: Sequence[CatalogueEntry]) -> list[str]:
    """Insert or update these entries; returns the names of those that changed."""
    with connections[alias].cursor() as cur:
        cur.execute(UPSERT_CATALOGUE, (json.dumps([asdict(e) for e in entries]),))
        return [str(name) for (name,) in cur.fetchall()]
