"""Search terms for the task and attempt lists, each turned into an index-served filter.

Accepted forms: a full task id; the beginning of an id (8+ hex digits, also `01a2b3c4…9f0e`
as shown in the list); `key=value` or a JSON object (kwargs containment); anything else
matches task names and error codes containing it, or a value anywhere inside the kwargs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Final
from uuid import UUID

from django.db.models import Q

from horsies_django.db import admin_queries

_HEX_PREFIX: Final = re.compile(r"^[0-9a-f]{8,32}$")
_SHORT_ID: Final = re.compile(r"^([0-9a-f]{8})(?:…|\.\.\.)([0-9a-f]{1,12})$")
_KEY_VALUE: Final = re.compile(r"^([A-Za-z_][\w.-]*)\s*[=:]\s*(.+)$")


def id_filter(term: str, field: str = "pk") -> Q | None:
    """A filter on `field` for a full id, an id prefix or a short id; None if not id-like."""
    text = term.strip().lower()
    try:
        return Q(**{field: UUID(text)})
    except ValueError:
        pass
    short = _SHORT_ID.match(text)
    prefix, suffix = (short.group(1), short.group(2)) if short else (text.replace("-", ""), "")
    if not _HEX_PREFIX.match(prefix):
        return None
    low = UUID(prefix.ljust(32, "0"))
    high = UUID(prefix.ljust(32, "f"))
    q = Q(**{f"{field}__gte": low, f"{field}__lte": high})
    if suffix:
        q &= Q(**{f"{field}__endswith": suffix})
    return q


def kwargs_filter(term: str) -> Q | None:
    """`key=value` or a JSON object: tasks whose kwargs contain it (None if neither)."""
    text = term.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        return Q(kwargs__contains=obj) if isinstance(obj, dict) else None
    match = _KEY_VALUE.match(text)
    if not match:
        return None
    return Q(kwargs__contains={match.group(1): _json_or_text(match.group(2).strip())})


def text_filter(term: str, task_names: Iterable[str], error_codes: Iterable[str]) -> Q:
    """Names and codes containing `term` (matched in Python against the known values, so the
    database filter is an indexed equality), or a kwargs value equal to it."""
    needle = term.strip().lower()
    names = [n for n in task_names if needle in n.lower()]
    codes = [c for c in error_codes if needle in c.lower()]
    q = Q(admin_queries.kwargs_has_value(term.strip()))
    number = _number(term)
    if number is not None:
        q |= Q(admin_queries.kwargs_has_value(number))
    if names:
        q |= Q(task_name__in=names)
    if codes:
        q |= Q(error_code__in=codes)
    return q


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _number(term: str) -> int | float | None:
    try:
        return int(term)
    except ValueError:
        try:
            value = float(term)
        except ValueError:
            return None
        return value if value == value and abs(value) != float("inf") else None
