"""Canonical JSON and the `enqueue_sha` of a send, specified so any language can compute them.

The specification is in docs/foreign-producers.md ("The enqueue_sha"); the shared test vectors
in `clients/enqueue_sha_vectors.json` are checked by the Python suite, the Rust crate's suite
and the database's own `horsies_enqueue_sha()`. In short: sha256 (lowercase hex) of the UTF-8
bytes of the canonical JSON of the object

    {"delay_ms", "good_until", "kwargs", "priority", "queue_name", "task_id", "task_name"}

where canonical JSON has no whitespace, object keys sorted by code point, strings escaped
only where JSON requires it, and every number written as its exact decimal value without an
exponent or redundant zeros.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from json.encoder import encode_basestring
from typing import Any, Final


def canonical_string(text: str) -> str:
    """A JSON string: `"` and `\\` escaped, \\b \\f \\n \\r \\t, other controls as \\u00xx
    (lowercase), every other character as itself: exactly json's own escaping, in C."""
    return encode_basestring(text)


# A digit followed by a point or an exponent: every non-integer number token has one (a string
# may too, which only costs the exact path).
_MAYBE_FRACTIONAL: Final = re.compile(r"[0-9][.eE]")
# With sorted keys, no spaces and strings as they are, json.dumps writes canonical JSON of
# everything but non-integer numbers (its own escapes are exactly the canonical ones).
_FAST: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def canonical_number(value: int | Decimal) -> str:
    """The exact decimal value: no exponent, no '+', no redundant zeros; zero is "0"."""
    if isinstance(value, int):
        return str(value)
    if not value.is_finite():
        raise ValueError(f"{value} is not a JSON number")
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def canonical(value: Any) -> str:
    """The canonical JSON of a value parsed with `parse_json` (numbers as int or Decimal)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | Decimal):
        return canonical_number(value)
    if isinstance(value, float):  # a value not parsed by parse_json: its shortest repr, exactly
        return canonical_number(Decimal(repr(value)))
    if isinstance(value, str):
        return canonical_string(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(f"{canonical_string(k)}:{canonical(v)}" for k, v in items) + "}"
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def parse_json(text: str) -> Any:
    """JSON text with every non-integer number kept as its exact Decimal."""
    return json.loads(text, parse_float=Decimal)


def canonical_json(text: str) -> str:
    """The canonical form of JSON text."""
    if _MAYBE_FRACTIONAL.search(text) is None:  # integers only: the C encoder, ~10x faster
        return _FAST.encode(json.loads(text))
    return canonical(parse_json(text))


def good_until_text(good_until: datetime | None) -> str | None:
    """A deadline as the sha covers it: UTC, microseconds, `Z` (2026-12-04T17:00:00.000000Z)."""
    if good_until is None:
        return None
    return good_until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def delay_ms(delay_seconds: float | None) -> int | None:
    """A send's delay as the sha covers it: whole milliseconds, rounded half up."""
    if delay_seconds is None:
        return None
    return int(Decimal(repr(float(delay_seconds))) * 1000 + Decimal("0.5"))


def enqueue_sha(
    *,
    task_id: str,
    task_name: str,
    queue_name: str,
    priority: int,
    kwargs_json: str,
    delay_ms: int | None,
    good_until: datetime | None,
) -> str:
    """SHA-256 over everything a send stores, so a replay can prove it carries the same payload."""
    shas = EnqueueSha(task_name, queue_name, priority, delay_ms, good_until)
    return shas.of(task_id, canonical_json(kwargs_json))


@lru_cache(maxsize=256)
def shas_for(
    task_name: str,
    queue_name: str,
    priority: int,
    delay_ms: int | None,
    good_until: datetime | None,
) -> EnqueueSha:
    """An `EnqueueSha`, kept for the next send alike (most sends of a task share every field)."""
    return EnqueueSha(task_name, queue_name, priority, delay_ms, good_until)


def flat(kwargs: dict[str, Any]) -> str:
    """The canonical JSON of an object whose values are all str, int, bool or None (exact
    types): json's own sorted, compact text, with no parse (`canonical_json` of its JSON)."""
    return _FAST.encode(kwargs)


class EnqueueSha:
    """`enqueue_sha` of sends that share a task, queue, priority, delay and deadline, differing
    only in task id and arguments (a `send_many` call): the shared fields are written once."""

    __slots__ = ("_head", "_middle", "_tail")

    def __init__(
        self,
        task_name: str,
        queue_name: str,
        priority: int,
        delay_ms: int | None,
        good_until: datetime | None,
    ) -> None:
        self._head = (
            f'{{"delay_ms":{"null" if delay_ms is None else delay_ms},'
            f'"good_until":{_nullable(good_until_text(good_until))},'
            '"kwargs":'
        )
        self._middle = (
            f',"priority":{priority},"queue_name":{canonical_string(queue_name)},"task_id":'
        )
        self._tail = f',"task_name":{canonical_string(task_name)}}}'

    def of(self, task_id: str, canonical_kwargs: str) -> str:
        """The sha of one send, given its arguments' canonical JSON."""
        payload = (
            f"{self._head}{canonical_kwargs}{self._middle}"
            f"{encode_basestring(task_id.lower())}{self._tail}"
        )
        # surrogatepass: a forged payload with a lone surrogate gets a sha (and is refused later).
        return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()

    def of_new(self, task_id: str, canonical_kwargs: str) -> str:
        """`of` for an id this process made (lowercase UUID text: nothing to escape) and the
        canonical JSON of checked arguments (no lone surrogate)."""
        payload = f'{self._head}{canonical_kwargs}{self._middle}"{task_id}"{self._tail}'
        return hashlib.sha256(payload.encode()).hexdigest()


def _nullable(text: str | None) -> str:
    return "null" if text is None else canonical_string(text)
