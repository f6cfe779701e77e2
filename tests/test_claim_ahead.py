"""The claim-ahead policy as pure logic (no database, no processes): see worker/claim_ahead.py."""

from __future__ import annotations

import pytest

from horsies_django.worker import claim_ahead
from horsies_django.worker.claim_ahead import (
    MAX_HELD_PER_CHILD,
    SHORT_TASK_S,
    TaskDurations,
    ahead,
    held_per_child,
    long_running,
    to_hand_back,
)


def durations(average: float | None) -> TaskDurations:
    return TaskDurations(average=average)


def test_nothing_is_held_before_a_task_finished_under_a_cap_or_while_tasks_are_long() -> None:
    assert ahead(processes=4, capped=False, durations=durations(None), long_children=0) == 0
    assert ahead(processes=4, capped=True, durations=durations(0.001), long_children=0) == 0
    long = durations(SHORT_TASK_S)
    assert ahead(processes=4, capped=False, durations=long, long_children=0) == 0


@pytest.mark.parametrize(
    ("average_s", "per_child"),
    [(0.0001, MAX_HELD_PER_CHILD), (0.001, 16), (0.005, 4), (0.02, 1), (0.049, 1)],
)
def test_short_tasks_are_held_to_cover_about_20_ms_per_child(
    average_s: float, per_child: int
) -> None:
    assert held_per_child(average_s) == per_child
    got = ahead(processes=3, capped=False, durations=durations(average_s), long_children=0)
    assert got == 3 * per_child


def test_children_running_a_long_task_get_nothing_held_for_them() -> None:
    short = durations(0.001)
    assert ahead(processes=4, capped=False, durations=short, long_children=1) == 3 * 16
    assert ahead(processes=4, capped=False, durations=short, long_children=4) == 0
    assert ahead(processes=1, capped=False, durations=short, long_children=1) == 0


def test_a_task_is_long_once_it_has_run_past_the_threshold() -> None:
    assert long_running([]) == 0
    assert long_running([0.0, SHORT_TASK_S - 1e-6]) == 0
    assert long_running([SHORT_TASK_S, 15.0, 0.001]) == 2


def test_held_tasks_go_back_only_when_a_task_turned_long_or_tasks_are_no_longer_short() -> None:
    # The estimate moving between short values never gives work back.
    assert to_hand_back(held=64, idle=0, ahead_now=48, long_children=0, tasks_short=True) == 0
    # A child's task turned long: what exceeds the room of the others goes back.
    assert to_hand_back(held=16, idle=0, ahead_now=0, long_children=1, tasks_short=True) == 16
    assert to_hand_back(held=40, idle=1, ahead_now=32, long_children=1, tasks_short=True) == 7
    # Tasks are long on average now: hold no more than the idle children take.
    assert to_hand_back(held=10, idle=2, ahead_now=0, long_children=0, tasks_short=False) == 8
    assert to_hand_back(held=1, idle=2, ahead_now=0, long_children=0, tasks_short=False) == 0


def test_the_duration_estimate_is_smoothed_and_starts_unknown() -> None:
    estimate = TaskDurations()
    assert estimate.average is None
    assert not estimate.short
    estimate.observe(0.010)
    assert estimate.average == pytest.approx(0.010)
    assert estimate.short
    estimate.observe(0.110)  # one slow task moves the average by a fifth of the difference
    assert estimate.average == pytest.approx(0.010 + claim_ahead.DURATION_SMOOTHING * 0.100)
    for _ in range(30):
        estimate.observe(1.0)
    assert not estimate.short
