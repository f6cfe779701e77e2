"""Canonical JSON and enqueue_sha v1 (the shared vectors are checked in test_foreign_producers)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from horsies_django import canonical

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_the_fast_path_writes_what_the_exact_path_writes(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert canonical.canonical_json(text) == canonical.canonical(canonical.parse_json(text))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_is_written_as_the_exact_value_of_its_shortest_repr(number: float) -> None:
    written = canonical.canonical_json(json.dumps({"x": number}))
    value = written.removeprefix('{"x":').removesuffix("}")
    assert not set(value) & set("eE+")
    assert Decimal(value) == Decimal(repr(number))
    assert float(value) == number


@pytest.mark.parametrize(
    ("token", "written"),
    [
        ("1.0", "1"),
        ("-0.0", "0"),
        ("0", "0"),
        ("0.10", "0.1"),
        ("2.5E+3", "2500"),
        ("1e16", "10000000000000000"),
        ("1e-7", "0.0000001"),
        ("-1.5e-3", "-0.0015"),
        ("123456789012345678901234567890", "123456789012345678901234567890"),
    ],
)
def test_numbers_are_exact_decimals_without_exponent_or_redundant_zeros(
    token: str, written: str
) -> None:
    assert canonical.canonical_json(token) == written


def test_keys_sort_by_code_point_and_strings_escape_only_what_json_requires() -> None:
    text = json.dumps({"é": 1, "z": 2, "\U0001f600": 3, "\uffff": 4, "A": "\x01\n\u2028"})
    assert (
        canonical.canonical_json(text)
        == '{"A":"\\u0001\\n\u2028","z":2,"é":1,"\uffff":4,"\U0001f600":3}'
    )


def test_delay_and_deadline_are_written_as_the_spec_says() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    assert canonical.delay_ms(None) is None
    assert canonical.delay_ms(1.5) == 1500
    assert canonical.delay_ms(0.0015) == 2  # half up
    berlin = timezone(timedelta(hours=1))
    deadline = datetime(2030, 1, 1, 13, 0, 0, 5, tzinfo=berlin)
    assert canonical.good_until_text(deadline) == "2030-01-01T12:00:00.000005Z"
    assert canonical.good_until_text(datetime(2030, 1, 1, tzinfo=UTC)) == (
        "2030-01-01T00:00:00.000000Z"
    )


@given(
    st.dictionaries(st.text(), st.none() | st.booleans() | st.integers() | st.text(), max_size=5)
)
def test_a_flat_object_is_canonical_without_a_parse(kwargs: dict[str, Any]) -> None:
    text = json.dumps(kwargs, ensure_ascii=False, separators=(",", ":"))
    assert canonical.flat(kwargs) == canonical.canonical_json(text)


def test_shared_fields_are_signed_once_for_many_sends() -> None:
    from datetime import UTC, datetime

    deadline = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    shas = canonical.shas_for("t.x", "q", 7, 90_000, deadline)
    for task_id, kwargs_json in [("0190A0B0-0000-7000-8000-000000000001", '{"b":1,"a":[2.50]}')]:
        assert shas.of(task_id, canonical.canonical_json(kwargs_json)) == canonical.enqueue_sha(
            task_id=task_id,
            task_name="t.x",
            queue_name="q",
            priority=7,
            kwargs_json=kwargs_json,
            delay_ms=90_000,
            good_until=deadline,
        )
