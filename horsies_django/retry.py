"""Retry policies: which failures retry, how often, and how long to wait.

A policy is validated when the task is declared, so a bad policy fails at import, never in a
worker. Delays are deterministic except for the documented jitter (uniform ±25 %).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from horsies_django.types import check_user_code

MAX_RETRIES_LIMIT: Final = 20
MAX_DELAY_SECONDS: Final = 86_400
JITTER_FRACTION: Final = 0.25


class RetryPolicy(BaseModel):
    """How a task retries.

    - `fixed`: `intervals[i]` seconds before retry i+1; `len(intervals) == max_retries`.
    - `exponential`: `intervals[0] * 2**i` seconds before retry i+1 (capped at one day).
    - `jitter`: multiply each delay by a uniform factor in [0.75, 1.25].
    - `auto_retry_for`: the error codes that retry; nothing else does (built-in codes such as
      `UNHANDLED_EXCEPTION`, `WORKER_CRASHED` or `TASK_TIMEOUT` only when listed). An exception
      class, or a string naming one, is refused with a hint to map it via `exception_mapper`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_retries: Annotated[int, Field(ge=1, le=MAX_RETRIES_LIMIT)] = 3
    intervals: Annotated[
        tuple[Annotated[int, Field(ge=1, le=MAX_DELAY_SECONDS)], ...],
        Field(min_length=1, max_length=MAX_RETRIES_LIMIT),
    ] = (60, 300, 900)
    backoff_strategy: Literal["fixed", "exponential"] = "fixed"
    jitter: bool = True
    auto_retry_for: Annotated[tuple[str, ...], Field(min_length=1)]

    @field_validator("auto_retry_for", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ValueError("auto_retry_for must be a list of error codes, e.g. ['TIMEOUT']")
        return tuple(check_user_code(code, where="auto_retry_for") for code in value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.backoff_strategy == "fixed" and len(self.intervals) != self.max_retries:
            raise ValueError(
                f"fixed backoff needs one interval per retry: {len(self.intervals)} intervals "
                f"for max_retries={self.max_retries}; use RetryPolicy.fixed([...]) or "
                "RetryPolicy.exponential(...)"
            )
        if self.backoff_strategy == "exponential" and len(self.intervals) != 1:
            raise ValueError(
                "exponential backoff takes exactly one base interval: "
                "use RetryPolicy.exponential(base_seconds=..., max_retries=...)"
            )
        return self

    @classmethod
    def fixed(
        cls, intervals: Sequence[int], *, auto_retry_for: Sequence[str], jitter: bool = True
    ) -> RetryPolicy:
        """One retry per interval, waiting `intervals[i]` seconds before retry i+1."""
        return cls(
            max_retries=len(intervals),
            intervals=tuple(intervals),
            backoff_strategy="fixed",
            jitter=jitter,
            auto_retry_for=_codes_arg(auto_retry_for),
        )

    @classmethod
    def exponential(
        cls,
        base_seconds: int,
        *,
        max_retries: int,
        auto_retry_for: Sequence[str],
        jitter: bool = True,
    ) -> RetryPolicy:
        """`max_retries` retries, waiting `base_seconds * 2**i` before retry i+1."""
        return cls(
            max_retries=max_retries,
            intervals=(base_seconds,),
            backoff_strategy="exponential",
            jitter=jitter,
            auto_retry_for=_codes_arg(auto_retry_for),
        )

    def retries_on(self, error_code: str | None) -> bool:
        return error_code is not None and str(error_code) in self.auto_retry_for

    def delay_seconds(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry `retry_number` (1-based)."""
        index = retry_number - 1
        if self.backoff_strategy == "fixed":
            base = float(self.intervals[min(index, len(self.intervals) - 1)])
        else:
            base = float(min(self.intervals[0] * 2**index, MAX_DELAY_SECONDS))
        if not self.jitter:
            return base
        factor = (rng or random).uniform(1 - JITTER_FRACTION, 1 + JITTER_FRACTION)
        return base * factor

    def to_stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _codes_arg(codes: Sequence[str]) -> Sequence[str]:
    """Pass a lone string through untouched so validation refuses it (tuple() would split it)."""
    return codes if isinstance(codes, str) else tuple(codes)
