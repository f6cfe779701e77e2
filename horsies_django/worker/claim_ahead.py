"""The claim-ahead policy: how many tasks a worker may hold beyond its idle children.

Holding short tasks ready means a child that finishes gets its next task at once instead of
after a claim's round trip. Invariant: work is held only for children that will be free soon.
Nothing is held while a concurrency cap applies or while tasks are not short; a child whose
current task has run past the short-task threshold counts as busy with a long task at once,
whatever the average says; and anything held longer than `HOLD_MAX_S` is given back.
Pure logic: no database, no processes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

# Tasks shorter than this on average are "short"; a task running longer is "long" at once.
SHORT_TASK_S: Final = 0.05
# While tasks are short, hold enough to keep every child busy for CLAIM_COVER_S (several claim
# round trips with their commits, which slow down on a deep backlog between vacuums): 1 to
# MAX_HELD_PER_CHILD per child. Larger claims also walk the claim index's head less often.
CLAIM_COVER_S: Final = 0.02
MAX_HELD_PER_CHILD: Final = 16
# A task held (claimed, not yet handed to a child) this long goes back to PENDING, fenced, so
# another worker can run it: claim-ahead never makes work wait on this worker.
HOLD_MAX_S: Final = 0.5
DURATION_SMOOTHING: Final = 0.2


@dataclass(slots=True)
class TaskDurations:
    """A smoothed average of how long this worker's tasks take, from dispatch to outcome."""

    average: float | None = None

    def observe(self, took_s: float) -> None:
        avg = self.average
        self.average = took_s if avg is None else avg + DURATION_SMOOTHING * (took_s - avg)

    @property
    def short(self) -> bool:
        return self.average is not None and self.average < SHORT_TASK_S


def long_running(running_for_s: Iterable[float]) -> int:
    """How many children run a task that has passed the short-task threshold."""
    return sum(1 for elapsed in running_for_s if elapsed >= SHORT_TASK_S)


def held_per_child(average_s: float) -> int:
    """Tasks to hold per child so that it stays busy for about CLAIM_COVER_S."""
    wanted = math.ceil(CLAIM_COVER_S / max(average_s, 1e-6))
    return min(MAX_HELD_PER_CHILD, max(1, wanted))


def ahead(*, processes: int, capped: bool, durations: TaskDurations, long_children: int) -> int:
    """Tasks to hold beyond the idle children (0 under a cap or while tasks are not short)."""
    if capped or durations.average is None or not durations.short:
        return 0
    return held_per_child(durations.average) * max(0, processes - long_children)


def to_hand_back(
    *, held: int, idle: int, ahead_now: int, long_children: int, tasks_short: bool
) -> int:
    """How many of the last held tasks to give back now: those beyond the room left once long
    tasks count. Only when a task turned long or tasks stopped being short: the estimate moving
    between short values is no reason to give work back."""
    if long_children == 0 and tasks_short:
        return 0
    return max(0, held - (idle + ahead_now))
