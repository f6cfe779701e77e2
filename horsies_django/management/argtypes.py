"""argparse `type=` functions shared by the management commands: each names the fix."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None


def seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None


def int_between(low: int, high: int) -> Callable[[str], int]:
    """A whole number from `low` to `high` inclusive."""

    def parse(value: str) -> int:
        number = whole_number(value)
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{number} must be between {low} and {high}")
        return number

    return parse


def seconds_between(low: float, high: float) -> Callable[[str], float]:
    """A number of seconds from `low` to `high` inclusive."""

    def parse(value: str) -> float:
        number = seconds(value)
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(
                f"{value} must be between {low:g} and {high:g} seconds"
            )
        return number

    return parse


def non_negative_int(value: str) -> int:
    number = whole_number(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} must be 0 (off) or more")
    return number


def positive_seconds(value: str) -> float:
    number = seconds(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value} must be more than 0 seconds")
    return number
