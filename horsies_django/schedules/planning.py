"""What a schedule fires at a moment: pure, so any clock can drive it.

Given the schedule's next unfired slot and the current time, a `Plan` lists the slots to fire
now (in order), how many were skipped, and the next slot after now:

- no slot due: nothing fires;
- without catch-up, only the latest due slot fires; earlier ones missed while no scheduler ran
  are skipped (and logged by the caller);
- with catch-up, every missed slot fires in order, at most `max_catch_up` of them (the latest
  ones; older ones are skipped).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from horsies_django.schedules.patterns import Every, Pattern


@dataclass(frozen=True, slots=True)
class Plan:
    fire: tuple[datetime, ...]
    skipped: int
    skipped_from: datetime | None  # the first skipped slot, for the log
    next_run_at: datetime


def plan(
    pattern: Pattern,
    tz: tzinfo,
    next_run_at: datetime,
    now: datetime,
    *,
    catch_up: bool,
    max_catch_up: int,
) -> Plan:
    """The slots from `next_run_at` up to `now` to fire, and the first slot after `now`."""
    if next_run_at > now:
        return Plan((), 0, None, next_run_at)
    keep = max_catch_up if catch_up else 1
    if isinstance(pattern, Every):  # slots are arithmetic: no need to walk a long downtime
        step = timedelta(seconds=pattern.seconds)
        seen = (now - next_run_at) // step + 1
        fire = [next_run_at + step * i for i in range(max(0, seen - keep), seen)]
        skipped = seen - len(fire)
        return Plan(tuple(fire), skipped, next_run_at if skipped else None, fire[-1] + step)
    due: deque[datetime] = deque(maxlen=keep)
    seen = 0
    first = next_run_at
    slot = next_run_at
    while slot <= now:
        due.append(slot)
        seen += 1
        slot = pattern.next_after(slot, tz)
    skipped = seen - len(due)
    return Plan(tuple(due), skipped, first if skipped else None, slot)


def first_slot(pattern: Pattern, tz: tzinfo, now: datetime) -> datetime:
    """A new (or re-enabled, or changed) schedule's first slot: the first after `now`."""
    return pattern.next_after(now, tz)
