"""System checks for a database behind a transaction pooler (PgBouncer's `pool_mode =
transaction`), which Django's `DISABLE_SERVER_SIDE_CURSORS: True` marks.

E018 unknown LISTEN_DATABASE_ALIAS · W003 LISTEN through a transaction pooler ·
W004 ASYNC_CLAIM_COMMIT through a transaction pooler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning
from pydantic import ValidationError

from horsies_django import conf
from horsies_django.checks import TAG, database_backend_messages


@register(TAG)
def check_pooler(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """The LISTEN alias exists, and is not pooled; no session setting is asked of a pool."""
    raw = getattr(settings, "HORSIES", None) or {}
    try:
        parsed = conf.parse(raw) if isinstance(raw, dict) else None
    except ValidationError:
        parsed = None  # reported by check_horsies_settings
    databases: Mapping[str, Any] = settings.DATABASES
    if parsed is None or parsed.DATABASE_ALIAS not in databases:
        return []
    listen = parsed.listen_alias
    if listen not in databases:
        return [
            Error(
                f"HORSIES['LISTEN_DATABASE_ALIAS'] is {listen!r}, which is not in "
                "settings.DATABASES.",
                hint=f"Add {listen!r} to DATABASES with a direct connection to the database of "
                f"{parsed.DATABASE_ALIAS!r}, or remove LISTEN_DATABASE_ALIAS.",
                id=f"{TAG}.E018",
            )
        ]
    messages = database_backend_messages(listen, str(databases[listen].get("ENGINE", "")))
    if conf.behind_transaction_pooler(listen):
        messages.append(_listen_through_pooler(parsed, listen))
    if parsed.ASYNC_CLAIM_COMMIT and conf.behind_transaction_pooler(parsed.DATABASE_ALIAS):
        messages.append(
            CheckWarning(
                "HORSIES['ASYNC_CLAIM_COMMIT'] is True, but DATABASE_ALIAS "
                f"{parsed.DATABASE_ALIAS!r} goes through a transaction pooler "
                "(DISABLE_SERVER_SIDE_CURSORS): a session setting cannot be given to a pooled "
                "connection, so claims commit durably.",
                hint="Remove ASYNC_CLAIM_COMMIT, or set synchronous_commit for the workers' role "
                "(ALTER ROLE ... SET synchronous_commit = off) knowing what it risks.",
                id=f"{TAG}.W004",
            )
        )
    return messages


def _listen_through_pooler(parsed: conf.HorsiesSettings, listen: str) -> CheckMessage:
    key = "LISTEN_DATABASE_ALIAS" if parsed.LISTEN_DATABASE_ALIAS else "DATABASE_ALIAS"
    return CheckWarning(
        f"HORSIES['{key}'] {listen!r} is used for LISTEN, but it goes through a transaction "
        "pooler (DISABLE_SERVER_SIDE_CURSORS is True): LISTEN there misses notifications "
        "(workers and get() fall back to polling), and a worker's maintenance lock does not "
        "hold.",
        hint="Add an alias to DATABASES that connects to PostgreSQL directly (not through the "
        "pooler) and set HORSIES['LISTEN_DATABASE_ALIAS'] to it; see docs/operations.md, "
        "'PgBouncer'.",
        id=f"{TAG}.W003",
    )
