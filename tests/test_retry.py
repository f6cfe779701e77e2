"""RetryPolicy: validated at declaration, deterministic delays except the documented jitter."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from horsies_django import OperationalErrorCode, OutcomeCode, RetryPolicy
from horsies_django.retry import JITTER_FRACTION, MAX_DELAY_SECONDS, MAX_RETRIES_LIMIT


def test_fixed_uses_one_interval_per_retry() -> None:
    policy = RetryPolicy.fixed([5, 30, 120], auto_retry_for=["TIMEOUT"], jitter=False)
    assert policy.max_retries == 3
    assert [policy.delay_seconds(n) for n in (1, 2, 3)] == [5.0, 30.0, 120.0]


def test_fixed_interval_count_must_match_max_retries() -> None:
    with pytest.raises(
        ValidationError, match="one interval per retry: 2 intervals for max_retries=3"
    ):
        RetryPolicy(max_retries=3, intervals=(1, 2), auto_retry_for=("TIMEOUT",))
    # The default intervals are three: a different max_retries alone is inconsistent.
    with pytest.raises(ValidationError, match=r"RetryPolicy\.fixed"):
        RetryPolicy(max_retries=2, auto_retry_for=("TIMEOUT",))


def test_exponential_doubles_from_the_base_and_is_capped() -> None:
    policy = RetryPolicy.exponential(30, max_retries=5, auto_retry_for=["TIMEOUT"], jitter=False)
    assert [policy.delay_seconds(n) for n in range(1, 6)] == [30.0, 60.0, 120.0, 240.0, 480.0]
    big = RetryPolicy.exponential(
        MAX_DELAY_SECONDS // 2, max_retries=20, auto_retry_for=["TIMEOUT"], jitter=False
    )
    assert big.delay_seconds(20) == float(MAX_DELAY_SECONDS)
    with pytest.raises(ValidationError, match="exactly one base interval"):
        RetryPolicy(
            max_retries=2, intervals=(1, 2), backoff_strategy="exponential",
            auto_retry_for=("TIMEOUT",),
        )  # fmt: skip


@pytest.mark.parametrize("max_retries", [0, -1, MAX_RETRIES_LIMIT + 1])
def test_max_retries_is_between_1_and_20(max_retries: int) -> None:
    with pytest.raises(ValidationError, match="max_retries"):
        RetryPolicy.exponential(10, max_retries=max_retries, auto_retry_for=["TIMEOUT"])


def test_limits_are_inclusive() -> None:
    assert RetryPolicy.exponential(1, max_retries=1, auto_retry_for=["X"]).max_retries == 1
    assert RetryPolicy.fixed([1] * 20, auto_retry_for=["X"]).max_retries == 20
    with pytest.raises(ValidationError):
        RetryPolicy.fixed([1] * 21, auto_retry_for=["X"])
    with pytest.raises(ValidationError):
        RetryPolicy.fixed([], auto_retry_for=["X"])


@pytest.mark.parametrize("interval", [0, -5, MAX_DELAY_SECONDS + 1])
def test_intervals_are_positive_and_at_most_a_day(interval: int) -> None:
    with pytest.raises(ValidationError, match="intervals"):
        RetryPolicy.fixed([interval], auto_retry_for=["TIMEOUT"])


@pytest.mark.parametrize("code", ["timeout", "Time_Out", "A B", "", "_X"])
def test_auto_retry_codes_must_be_upper_snake(code: str) -> None:
    with pytest.raises(ValidationError, match="UPPER_SNAKE_CASE"):
        RetryPolicy.fixed([1], auto_retry_for=[code])


def test_auto_retry_for_is_a_non_empty_list_of_codes() -> None:
    with pytest.raises(ValidationError, match="list of error codes"):
        RetryPolicy.fixed([1], auto_retry_for="TIMEOUT")
    with pytest.raises(ValidationError, match="auto_retry_for"):
        RetryPolicy.fixed([1], auto_retry_for=[])


def test_exception_classes_are_refused_with_a_hint() -> None:
    with pytest.raises(ValidationError, match="exception_mapper=") as info:
        RetryPolicy.fixed([1], auto_retry_for=[TimeoutError])  # type: ignore[list-item]
    assert "exception_mapper={TimeoutError: 'TIMEOUT_ERROR'}" in str(info.value)


@pytest.mark.parametrize(
    ("name", "mapping"),
    [
        ("TimeoutError", "{TimeoutError: 'TIMEOUT_ERROR'}"),
        ("ValueError", "{ValueError: 'VALUE_ERROR'}"),
        ("builtins.TimeoutError", "{TimeoutError: 'TIMEOUT_ERROR'}"),
        ("requests.exceptions.ConnectionError", "{ConnectionError: 'CONNECTION_ERROR'}"),
    ],
)
def test_exception_class_names_are_refused_with_a_hint(name: str, mapping: str) -> None:
    """horsies users write auto_retry_for=["TimeoutError"]: point them to exception_mapper."""
    builders: list[Callable[[], RetryPolicy]] = [
        lambda: RetryPolicy.fixed([1], auto_retry_for=[name]),
        lambda: RetryPolicy.exponential(1, max_retries=1, auto_retry_for=["TIMEOUT", name]),
        lambda: RetryPolicy(max_retries=1, intervals=(1,), auto_retry_for=(name,)),
    ]
    for build in builders:
        with pytest.raises(ValidationError, match="names an exception class") as info:
            build()
        assert f"exception_mapper={mapping}" in str(info.value)


def test_builtin_codes_are_accepted_as_members_or_strings() -> None:
    policy = RetryPolicy.fixed(
        [1, 2], auto_retry_for=[OperationalErrorCode.TASK_TIMEOUT, "WORKER_CRASHED"]
    )
    assert policy.auto_retry_for == ("TASK_TIMEOUT", "WORKER_CRASHED")
    assert policy.retries_on(OperationalErrorCode.TASK_TIMEOUT)
    assert policy.retries_on(OutcomeCode.TASK_TIMEOUT)  # horsies' spelling of the same code
    horsies = RetryPolicy.fixed([1], auto_retry_for=[OutcomeCode.TASK_TIMEOUT])
    assert horsies.auto_retry_for == ("TASK_TIMEOUT",)
    assert policy.retries_on("WORKER_CRASHED")
    assert not policy.retries_on("UNHANDLED_EXCEPTION")
    assert not policy.retries_on(None)


def test_jitter_stays_within_bounds_and_varies() -> None:
    policy = RetryPolicy.exponential(100, max_retries=3, auto_retry_for=["X"])
    assert policy.jitter  # on by default
    rng = random.Random(1234)
    delays = [policy.delay_seconds(2, rng) for _ in range(2000)]
    low, high = 200 * (1 - JITTER_FRACTION), 200 * (1 + JITTER_FRACTION)
    assert all(low <= d <= high for d in delays)
    assert min(delays) < 200 * 0.8
    assert max(delays) > 200 * 1.2
    again = random.Random(1234)
    assert [policy.delay_seconds(2, again) for _ in range(2000)] == delays


def test_policy_is_frozen_and_rejects_unknown_fields() -> None:
    policy = RetryPolicy.fixed([1], auto_retry_for=["X"])
    with pytest.raises(ValidationError):
        policy.max_retries = 5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        RetryPolicy(auto_retry_for=("X",), retries=3)  # type: ignore[call-arg]


def test_stored_form_round_trips() -> None:
    policy = RetryPolicy.exponential(7, max_retries=4, auto_retry_for=["A", "B"], jitter=False)
    stored = policy.to_stored()
    assert stored["intervals"] == [7]
    assert stored["backoff_strategy"] == "exponential"
    assert RetryPolicy.model_validate(stored) == policy
