"""Tasks with typed parameters, for the send-side signature tests (workers load them through
TASK_MODULES). Each returns what it received, described with the types it arrived as."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from horsies_django import TaskError, TaskResult, app


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Parcel(BaseModel):
    weight: Decimal
    shipped_on: date
    labels: set[str]


class FragileParcel(Parcel):
    handle_with: str


def described(value: object) -> list[str]:
    """`[type name, text]`: how a value arrived, comparable with the value sent (sets sorted;
    a datetime's text keeps its UTC offset, whatever tzinfo class carries it)."""
    text = str(sorted(value)) if isinstance(value, set | frozenset) else str(value)
    return [type(value).__qualname__, text]


@app.task("tests.signature.typed")
def typed(
    *,
    when: datetime,
    day: date,
    amount: Decimal,
    ident: UUID,
    tags: set[str],
    colour: Colour,
    size: Size,
    parcel: Parcel,
    maybe: int | None = None,
) -> TaskResult[dict[str, list[str]], TaskError]:
    """Every argument as it arrived on the worker."""
    received = {
        "when": when,
        "day": day,
        "amount": amount,
        "ident": ident,
        "tags": tags,
        "colour": colour,
        "size": size,
        "parcel": parcel,
        "maybe": maybe,
    }
    return TaskResult(ok={name: described(value) for name, value in received.items()})


@app.task("tests.signature.count")
def count(*, order_id: int, note: str = "") -> TaskResult[int, TaskError]:
    return TaskResult(ok=order_id)


@app.task("tests.signature.parcel")
def parcel_task(*, parcel: Parcel) -> TaskResult[list[str], TaskError]:
    """The class the parcel arrived as (a subclass stays a subclass)."""
    return TaskResult(ok=described(parcel))


@app.task("tests.signature.annotate")
def annotate(*, meta: dict[str, Any]) -> TaskResult[dict[str, Any], TaskError]:
    return TaskResult(ok=meta)
