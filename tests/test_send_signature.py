"""Arguments are checked against the task's signature when sent, as the worker will read them.

A value that does not fit its parameter's annotation is `VALIDATION_FAILED` naming the
parameter and the type (not a `PYDANTIC_HYDRATION_ERROR` on the worker later); a value of the
annotated type is accepted even when it is not JSON (a datetime, a set, a Decimal) and arrives
on a real worker as that type.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from horsies_django import Err, Ok, TaskSendError, TaskSendErrorCode
from horsies_django.handles import TaskHandle
from horsies_django.types import Result
from tests.conftest import sql_rows, sql_value
from tests.testapp.hostile_tasks import echo_any
from tests.testapp.signature_tasks import (
    Colour,
    FragileParcel,
    Parcel,
    Size,
    annotate,
    count,
    described,
    parcel_task,
    typed,
)
from tests.testapp.tasks import echo
from tests.worker_helpers import TASK_MODULES, StartWorker, configured_workers

type SendResult = Result[TaskHandle[Any], TaskSendError]

pytestmark = pytest.mark.usefixtures("clean_tables")

SIGNATURE_TASK_MODULES = (*TASK_MODULES, "tests.testapp.signature_tasks")


def task_count() -> int:
    return int(sql_value("SELECT count(*) FROM horsies_task"))


def refused(result: SendResult) -> str:
    assert isinstance(result, Err), result
    assert result.error.code is TaskSendErrorCode.VALIDATION_FAILED, result.error
    assert not result.error.retryable
    assert result.error.payload is None
    return result.error.message


def stored_kwargs(result: SendResult) -> Any:
    assert isinstance(result, Ok), result
    ((kwargs,),) = sql_rows("SELECT kwargs FROM horsies_task WHERE id = %s", result.value.task_id)
    return kwargs


PARCEL = Parcel(weight=Decimal("2.50"), shipped_on=date(2024, 3, 1), labels={"fragile"})
IDENT = uuid.UUID("01a2416e-3d44-77b5-a5dc-385438646434")


def typed_kwargs(**changes: Any) -> dict[str, Any]:
    """Arguments of tests.signature.typed, each of its annotated type."""
    return {
        "when": datetime(2024, 5, 1, 12, 30, tzinfo=ZoneInfo("Europe/Paris")),
        "day": date(2024, 5, 2),
        "amount": Decimal("10.50"),
        "ident": IDENT,
        "tags": {"b", "a"},
        "colour": Colour.GREEN,
        "size": Size.LARGE,
        "parcel": PARCEL,
        **changes,
    }


# --------------------------------------------------------------------------- refused at send


def test_a_value_of_another_type_is_refused_naming_the_parameter_and_the_type() -> None:
    """Before: accepted, then PYDANTIC_HYDRATION_ERROR on the worker."""
    message = refused(count.send(order_id="abc"))  # type: ignore[arg-type]
    assert message.startswith("tests.signature.count: argument order_id must be int, not 'abc'")
    assert "unable to parse string as an integer" in message
    assert task_count() == 0


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"when": "yesterday"}, ["argument when must be datetime, not 'yesterday' (str)"]),
        ({"day": 3.5}, ["argument day must be date, not 3.5 (float)"]),
        ({"amount": "ten"}, ["argument amount must be Decimal, not 'ten' (str)"]),
        ({"ident": "not-a-uuid"}, ["argument ident must be UUID, not 'not-a-uuid'"]),
        ({"tags": {1, 2}}, ["argument tags must be set[str]", "Input should be a valid string"]),
        ({"colour": "blue"}, ["argument colour must be Colour, not 'blue'", "'red' or 'green'"]),
        ({"size": 7}, ["argument size must be Size, not 7 (int)"]),
        ({"maybe": "x"}, ["argument maybe must be int | None, not 'x' (str)"]),
        (
            {"parcel": {"weight": "heavy", "shipped_on": "2024-01-01", "labels": []}},
            ["argument parcel must be Parcel", "parcel.weight: Input should be a valid decimal"],
        ),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "",
)
def test_each_annotated_type_refuses_what_it_cannot_read(
    changes: dict[str, Any], fragments: list[str]
) -> None:
    message = refused(typed.send(**typed_kwargs(**changes)))
    for fragment in fragments:
        assert fragment in message
    assert task_count() == 0


def test_a_value_whose_json_would_not_come_back_equal_is_refused() -> None:
    """`dict[str, Any]` reads a datetime's JSON back as a str: refused, not altered."""
    message = refused(annotate.send(meta={"at": datetime(2024, 1, 1, tzinfo=UTC)}))
    assert "argument meta.at is a datetime, which is not JSON" in message
    assert annotate.send(meta={"at": "2024-01-01T00:00:00Z", "n": [1, 2]}).is_ok()
    assert task_count() == 1


def test_any_and_json_value_parameters_keep_the_json_rules() -> None:
    """Without a type to read it back, a datetime or a set is still refused."""
    for task in (echo, echo_any):
        now = datetime.now(UTC)
        assert "is a datetime, which is not JSON" in refused(task.send(value=now))  # type: ignore[arg-type]
        assert "is a set, which is not JSON" in refused(task.send(value={1}))  # type: ignore[arg-type]
    assert task_count() == 0


def test_codec_limits_still_apply_to_typed_values() -> None:
    assert "contains a NUL character" in refused(count.send(order_id=1, note="a\x00b"))
    assert "int of more than 4,300 digits" in refused(count.send(order_id=10**5000))
    assert "uses the reserved key" in refused(annotate.send(meta={"__horsies_type__": "os:X"}))
    assert task_count() == 0


# --------------------------------------------------------------------------- stored at send


def test_values_of_the_annotated_type_are_stored_as_the_json_the_worker_reads() -> None:
    """Before: a datetime, a Decimal, a set, a UUID or an Enum was refused as not JSON."""
    kwargs = stored_kwargs(typed.send(**typed_kwargs()))
    assert kwargs["when"] == "2024-05-01T12:30:00+02:00"
    assert kwargs["day"] == "2024-05-02"
    assert kwargs["amount"] == "10.50"
    assert kwargs["ident"] == str(IDENT)
    assert sorted(kwargs["tags"]) == ["a", "b"]
    assert kwargs["colour"] == "green"
    assert kwargs["size"] == 2
    assert kwargs["parcel"]["__horsies_type__"] == "tests.testapp.signature_tasks:Parcel"


def test_values_the_annotation_converts_are_stored_converted() -> None:
    """What the worker would convert anyway ("42" for an int) is converted at send."""
    assert stored_kwargs(count.send(order_id="42")) == {"order_id": 42}  # type: ignore[arg-type]
    kwargs = stored_kwargs(
        typed.send(**typed_kwargs(when="2024-05-01T10:00:00Z", tags=["x", "x"], maybe="7"))
    )
    assert kwargs["when"] == "2024-05-01T10:00:00Z"
    assert kwargs["tags"] == ["x"]
    assert kwargs["maybe"] == 7


# --------------------------------------------------------------------------- on a real worker


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartWorker]:
    yield from configured_workers(tmp_path)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {
            "when": datetime(2024, 1, 2, 3, 4, 5, 600_000, tzinfo=timezone(timedelta(hours=-5))),
            "day": date(1999, 12, 31),
            "amount": Decimal("-0.000001"),
            "tags": set(),
            "colour": "red",
            "size": 1,
            "parcel": {"weight": 3, "shipped_on": "2020-02-29", "labels": ["a"]},
            "maybe": 0,
        },
    ],
    ids=["typed-values", "converted-values"],
)
def test_typed_arguments_arrive_on_a_worker_as_their_types(
    start: StartWorker, changes: dict[str, Any]
) -> None:
    start({"TASK_MODULES": SIGNATURE_TASK_MODULES})
    sent = typed_kwargs(**changes)
    handle = typed.send(**sent).ok_value
    result = handle.get(timeout_ms=60_000)
    assert result.is_ok(), result
    expected = typed.definition.params
    for name, value in {**sent, "maybe": sent.get("maybe")}.items():
        param = expected[name]
        want = value if param.adapter is None else param.adapter.validate_python(value)
        assert result.ok_value[name] == described(want), name
    assert result.ok_value["when"][0] == "datetime"
    assert result.ok_value["tags"][0] == "set"
    assert result.ok_value["colour"][0] == "Colour"
    assert result.ok_value["parcel"][0] == "Parcel"


def test_a_model_subclass_arrives_as_the_subclass(start: StartWorker) -> None:
    start({"TASK_MODULES": SIGNATURE_TASK_MODULES})
    fragile = FragileParcel(
        weight=Decimal(1), shipped_on=date(2024, 1, 1), labels=set(), handle_with="care"
    )
    handle = parcel_task.send(parcel=fragile).ok_value
    result = handle.get(timeout_ms=60_000)
    assert result.is_ok(), result
    assert result.ok_value == described(fragile)
    assert result.ok_value[0] == "FragileParcel"
