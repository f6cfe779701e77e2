"""Strict JSON for arguments and results, and typed envelopes that workers rehydrate."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from horsies_django import TaskError, TaskResult, app, codec
from horsies_django.exceptions import EncodingError
from tests.testapp.tasks import Order, Point


class Line(BaseModel):
    sku: str
    qty: int
    price: float


class Basket(BaseModel):
    lines: list[Line]
    placed_at: datetime


@dataclasses.dataclass
class Stamp:
    at: datetime
    note: str


@pytest.mark.parametrize(
    ("value", "path", "fragment"),
    [
        (float("nan"), "v", "NaN or infinity"),
        (float("inf"), "v", "NaN or infinity"),
        ([1.0, float("-inf")], "v[1]", "NaN or infinity"),
        ({"a": {"b": float("nan")}}, "v.a.b", "NaN or infinity"),
        ("a\x00b", "v", "NUL character"),
        (["ok", "\ud800"], "v[1]", "lone surrogate"),
        ({"k\x00": 1}, "v key", "NUL character"),
        ({"\udfff": 1}, "v key", "lone surrogate"),
        (Line(sku="x", qty=1, price=float("nan")), "v.price", "NaN or infinity"),
        (Line(sku="x\x00", qty=1, price=1.0), "v.sku", "NUL character"),
        (Stamp(at=datetime(2024, 1, 1, tzinfo=UTC), note="\ud83d"), "v.note", "lone surrogate"),
    ],
)
def test_refuses_what_postgresql_cannot_store(value: Any, path: str, fragment: str) -> None:
    with pytest.raises(EncodingError, match=fragment) as info:
        codec.encode(value, "v")
    assert info.value.path == path
    assert str(info.value).startswith(path)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (object(), "object, which is not JSON"),
        ({1, 2}, "set, which is not JSON"),
        (datetime(2024, 1, 1), "datetime, which is not JSON"),
        (b"bytes", "bytes, which is not JSON"),
        ({1: "a"}, "non-string key 1"),
        ({codec.TYPE_KEY: "x"}, "reserved key"),
    ],
)
def test_refuses_values_that_are_not_json(value: Any, fragment: str) -> None:
    with pytest.raises(EncodingError, match=fragment) as info:
        codec.encode({"inner": value}, "arg")
    assert info.value.path == "arg.inner"


def test_dumps_refuses_nan_even_if_encode_was_skipped() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        codec.dumps({"x": float("nan")})


def test_local_and_main_classes_are_refused_with_a_fix() -> None:
    class Local(BaseModel):
        a: int

    with pytest.raises(EncodingError, match="define it at module level") as info:
        codec.encode({"m": Local(a=1)}, "arg")
    assert info.value.path == "arg.m"
    main_model = type(
        "Main", (BaseModel,), {"__annotations__": {"a": int}, "__module__": "__main__"}
    )
    with pytest.raises(EncodingError, match="defined in __main__"):
        codec.encode(main_model(a=1), "arg")


@pytest.mark.django_db
def test_accepted_values_round_trip_through_jsonb_unchanged() -> None:
    value = {
        "text": 'naïve 🐎 \u2028 "quoted" \\ back',
        "big": 2**70,
        "neg": -1.5e-300,
        "nested": [None, True, False, [], {}, {"k": [1, "2"]}],
        "tuple": (1, 2),
    }
    text = codec.dumps(codec.encode(value, "v"))
    with connection.cursor() as cur:
        cur.execute("SELECT %s::jsonb::text", [text])
        stored = cur.fetchone()[0]
    assert json.loads(stored) == {**value, "tuple": [1, 2]}


def test_models_and_dataclasses_travel_in_envelopes() -> None:
    encoded = codec.encode({"order": Order(order_id=7, items=["a"]), "p": Point(1, 2)}, "kw")
    assert encoded["order"] == {
        codec.TYPE_KEY: "tests.testapp.tasks:Order",
        codec.DATA_KEY: {"order_id": 7, "items": ["a"]},
    }
    assert encoded["p"][codec.TYPE_KEY] == "tests.testapp.tasks:Point"
    # Survives text: what the worker reads back is plain JSON.
    decoded = codec.decode(codec.loads(codec.dumps(encoded)))
    assert decoded == {"order": Order(order_id=7, items=["a"]), "p": Point(1, 2)}


def test_worker_rehydrates_to_the_declared_parameter_types() -> None:
    """The same path the worker takes: stored JSON -> each parameter's declared type."""
    order_task, move_task = app.get("tests.total_order"), app.get("tests.move")
    assert order_task is not None
    assert move_task is not None
    stored = codec.loads(codec.dumps(codec.encode(Order(order_id=1, items=["x"]), "order")))
    order = codec.rehydrate(stored, order_task.params["order"].adapter)
    assert isinstance(order, Order)
    assert order == Order(order_id=1, items=["x"])
    # A plain dict sent for a model parameter is validated into the model too.
    from_dict = codec.rehydrate({"order_id": 2, "items": []}, order_task.params["order"].adapter)
    assert isinstance(from_dict, Order)
    point = codec.rehydrate(
        codec.loads(codec.dumps(codec.encode(Point(3, 4), "point"))),
        move_task.params["point"].adapter,
    )
    assert isinstance(point, Point)
    assert point == Point(3, 4)


def test_nested_models_and_non_json_fields_rehydrate() -> None:
    basket = Basket(
        lines=[Line(sku="a", qty=2, price=1.25)], placed_at=datetime(2024, 5, 6, 7, 8, tzinfo=UTC)
    )
    stamp = Stamp(at=datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC), note="n")
    text = codec.dumps(codec.encode({"items": [basket, stamp]}, "kw"))
    items = codec.rehydrate(codec.loads(text)["items"], codec.adapter_for(list[Basket | Stamp]))
    assert items == [basket, stamp]
    assert isinstance(items[0].placed_at, datetime)
    assert isinstance(items[1], Stamp)


def test_results_round_trip() -> None:
    ok = TaskResult[Order, TaskError](ok=Order(order_id=5, items=[]))
    back = codec.decode_result(codec.encode_result(ok), codec.adapter_for(Order))
    assert back == ok
    assert isinstance(back.ok_value, Order)
    none: TaskResult[None, TaskError] = TaskResult(ok=None)
    assert codec.decode_result(codec.encode_result(none), None) == none
    err: TaskResult[int, TaskError] = TaskResult(err=TaskError(error_code="BAD", data=[1]))
    assert codec.decode_result(codec.encode_result(err), None) == err
    with pytest.raises(EncodingError, match="NaN"):
        codec.encode_result(TaskResult(ok=float("nan")))
    with pytest.raises(ValueError, match="unknown shape"):
        codec.decode_result('{"ok": 1, "err": 2}', None)


# --------------------------------------------------------------------------- limits


def test_encoding_stops_at_the_first_string_past_the_limit() -> None:
    with pytest.raises(codec.TooLargeError) as info:
        codec.encode({"a": "x" * 600, "b": ["y" * 600, "never reached\x00"]}, "kw", limit=1_000)
    assert info.value.path == "kw.b[0]"
    assert (info.value.size, info.value.limit, info.value.exact) == (1_202, 1_000, False)
    assert info.value.size_text == "at least 1,202 bytes"
    assert (
        str(info.value)
        == "at least 1,202 bytes of JSON, over 1,000 bytes (past the limit at kw.b[0])"
    )


@pytest.mark.parametrize(
    ("text", "limit", "size"),
    [
        ("a" * 10, 10, None),
        ("a" * 11, 10, "11 bytes"),
        ("é" * 5, 10, None),  # 10 bytes of UTF-8
        ("é" * 6, 10, "12 bytes"),
        ("🐎" * 3, 12, None),
        ("🐎" * 3, 11, "12 bytes"),
        ("é" * 11, 10, "at least 11 bytes"),  # more characters than the limit: not encoded
    ],
)
def test_check_size_counts_utf8_bytes(text: str, limit: int, size: str | None) -> None:
    if size is None:
        codec.check_size(text, limit)
        return
    with pytest.raises(codec.TooLargeError) as info:
        codec.check_size(text, limit)
    assert info.value.size_text == size


def test_encode_arguments_checks_the_whole_text() -> None:
    assert codec.encode_arguments({"a": 1, "b": "é"}, 1_024) == '{"a":1,"b":"é"}'
    with pytest.raises(codec.TooLargeError, match=r"^1,097 bytes of JSON, over 1,024 bytes$"):
        codec.encode_arguments({"n": list(range(300))}, 1_024)


def test_results_are_checked_against_their_limit() -> None:
    assert codec.encode_result(TaskResult(ok="x" * 100), 1_024) == '{"ok":"' + "x" * 100 + '"}'
    with pytest.raises(codec.TooLargeError, match="at least 2,000 bytes"):
        codec.encode_result(TaskResult(ok="x" * 2_000), 1_024)
    with pytest.raises(codec.TooLargeError, match=r"past the limit at error\.message"):
        codec.encode_result(TaskResult(err=TaskError(error_code="E", message="m" * 2_000)), 1_024)


def _nested_lists(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_is_limited_and_cycles_are_caught_by_it() -> None:
    codec.encode(_nested_lists(codec.MAX_NESTING_DEPTH), "v")
    with pytest.raises(EncodingError, match="more than 64 levels deep") as info:
        codec.encode(_nested_lists(codec.MAX_NESTING_DEPTH + 1), "v")
    assert info.value.path == "v" + "[0]" * codec.MAX_NESTING_DEPTH
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(EncodingError, match=r"v\[0\]\[0\].*\.\.\..* nests .* contains itself"):
        codec.encode(cycle, "v")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        pytest.param(10**4300, "more than 4,300 digits", id="4301-digits"),
        pytest.param(-(10**4300), "more than 4,300 digits", id="negative-4301-digits"),
        pytest.param(1e16, "back as integers", id="1e16"),
        pytest.param(-2.5e300, "back as integers", id="-2.5e300"),
        pytest.param(Line(sku="s", qty=1, price=1e20), "back as integers", id="model-1e20"),
    ],
)
def test_numbers_jsonb_would_alter_are_refused(value: Any, fragment: str) -> None:
    with pytest.raises(EncodingError, match=fragment):
        codec.encode(value, "v")


@pytest.mark.django_db
def test_numbers_at_the_edges_round_trip_through_jsonb_unchanged() -> None:
    values = [10**4300 - 1, -(10**4300 - 1), 9_999_999_999_999_998.0, 1e15 + 0.5, 5e-324, 1e-300]
    text = codec.dumps(codec.encode(values, "v"))
    with connection.cursor() as cur:
        cur.execute("SELECT %s::jsonb::text", [text])
        stored = cur.fetchone()[0]
    back = json.loads(stored)
    assert back == values
    assert [type(v) for v in back] == [type(v) for v in values]


def test_pydantic_serialization_errors_become_encoding_errors() -> None:
    loop: dict[str, Any] = {}
    loop["me"] = loop
    with pytest.raises(EncodingError, match="pydantic cannot turn into JSON") as info:
        codec.encode(Stamp(at=datetime(2024, 1, 1, tzinfo=UTC), note=loop), "v")  # type: ignore[arg-type]
    assert info.value.path == "v"


FLAT_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(), st.integers(min_value=10**4299)
)


@given(st.dictionaries(st.sampled_from(["a", "b", "é", "z"]), FLAT_VALUES), st.integers(1, 64))
def test_the_flat_path_writes_what_encode_arguments_writes(
    kwargs: dict[str, Any], limit: int
) -> None:
    """The first try of every send gives encode_arguments' text, or steps aside (None) for
    encode_arguments to decide: never a text of its own, never a refusal of its own."""
    flat = dict.fromkeys(("a", "b", "é", "z"), codec.FLAT_TYPES)
    text = codec.encode_flat_arguments(kwargs, flat, limit * 16)
    try:
        expected: str | None = codec.encode_arguments(kwargs, limit * 16)
    except EncodingError:
        expected = None
    assert text is None or text == expected
    if expected is not None and expected.isascii() and "\x00" not in expected:
        assert text == expected  # what sends pass most: the flat path takes it


def test_the_flat_path_steps_aside_for_what_a_parameter_validates() -> None:
    declared = {
        "i": codec.declared_type(int, codec.adapter_for(int)),
        "s": codec.declared_type(str | None, codec.adapter_for(str | None)),
    }
    flat = {name: codec.flat_types(expected) for name, expected in declared.items()}
    assert codec.encode_flat_arguments({"i": 1, "s": None}, flat, 1024) == '{"i":1,"s":null}'
    for kwargs in ({"i": True}, {"i": "1"}, {"s": 1}, {"x": 1}, {"i": 1.0}, {"s": "\x00"}):
        assert codec.encode_flat_arguments(kwargs, flat, 1024) is None, kwargs
