"""Schedule patterns and what a scheduler fires when: pure functions driven by a given clock.

DST cases use Europe/Berlin: clocks go forward on 2027-03-28 at 02:00 (to 03:00) and back on
2026-10-25 at 03:00 (to 02:00).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from horsies_django.schedules import Cron, Daily, Every, Hourly, Monthly, Schedule, Weekly
from horsies_django.schedules.declared import SettingsScheduleError, from_settings
from horsies_django.schedules.patterns import Pattern, UnsatisfiableError, parse_pattern
from horsies_django.schedules.planning import plan

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> datetime:
    """An aware UTC moment from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def slots(pattern: Pattern, start: datetime, count: int, tz: ZoneInfo = BERLIN) -> list[str]:
    """The next `count` slots after `start`, as Berlin wall-clock text with offset."""
    found, moment = [], start
    for _ in range(count):
        moment = pattern.next_after(moment, tz)
        found.append(moment.astimezone(tz).strftime("%m-%d %H:%M%z"))
    return found


def test_intervals_are_counted_from_the_epoch_whatever_the_start() -> None:
    every = Every(seconds=90)
    assert every.next_after(at("2026-12-04 00:00:01"), BERLIN) == at("2026-12-04 00:01:30")
    assert every.next_after(at("2026-12-04 00:01:30"), BERLIN) == at("2026-12-04 00:03:00")


def test_calendar_patterns() -> None:
    start = at("2026-12-04 00:00")  # a Friday
    assert slots(Hourly(minute=15), start, 2) == ["12-04 01:15+0100", "12-04 02:15+0100"]
    assert slots(Daily(at=time(9, 30)), start, 2) == ["12-04 09:30+0100", "12-05 09:30+0100"]
    weekly = Weekly(days=("mon", "fri"), at=time(9, 0))
    assert slots(weekly, start, 3) == ["12-04 09:00+0100", "12-07 09:00+0100", "12-11 09:00+0100"]
    assert slots(Cron(expression="0 12 * * sun"), start, 1) == ["12-06 12:00+0100"]


def test_monthly_skips_months_without_that_day() -> None:
    monthly = Monthly(day=31, at=time(8, 0))
    assert slots(monthly, at("2027-01-01 00:00"), 4) == [
        "01-31 08:00+0100",
        "03-31 08:00+0200",
        "05-31 08:00+0200",
        "07-31 08:00+0200",
    ]


def test_spring_forward_fires_a_fixed_time_once_after_the_gap() -> None:
    """02:30 does not exist on 2027-03-28: the daily slot fires at 03:00 that day, once."""
    assert slots(Daily(at=time(2, 30)), at("2027-03-26 12:00"), 3) == [
        "03-27 02:30+0100",
        "03-28 03:00+0200",
        "03-29 02:30+0200",
    ]
    # Minute patterns have no slot inside the gap.
    assert slots(Cron(expression="*/30 * * * *"), at("2027-03-28 00:00"), 3) == [
        "03-28 01:30+0100",
        "03-28 03:00+0200",
        "03-28 03:30+0200",
    ]


def test_fall_back_fires_each_wall_clock_slot_once() -> None:
    """02:00-03:00 happens twice on 2026-10-25: each of its slots fires at the first pass."""
    assert slots(Daily(at=time(2, 30)), at("2026-10-24 12:00"), 2) == [
        "10-25 02:30+0200",
        "10-26 02:30+0100",
    ]
    assert slots(Hourly(minute=30), at("2026-10-24 23:00"), 3) == [
        "10-25 01:30+0200",
        "10-25 02:30+0200",
        "10-25 03:30+0100",
    ]


def test_an_unsatisfiable_pattern_is_refused() -> None:
    with pytest.raises(ValidationError, match="does not parse"):
        Cron(expression="0 0 30 2 *")  # 30 February
    with pytest.raises(ValidationError, match="5 fields"):
        Cron(expression="* * *")
    with pytest.raises(ValidationError, match="HH:MM"):
        Daily(at=time(9, 30, 15))
    assert issubclass(UnsatisfiableError, ValueError)


@given(
    st.one_of(
        st.builds(Every, seconds=st.integers(1, 10**6)),
        st.builds(Hourly, minute=st.integers(0, 59)),
        st.builds(Daily, at=st.times().map(lambda t: t.replace(second=0, microsecond=0))),
        st.builds(
            Monthly,
            day=st.integers(1, 31),
            at=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
        ),
        st.builds(
            Weekly,
            days=st.lists(st.sampled_from(["sun", "mon", "wed", "sat"]), min_size=1).map(tuple),
            at=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
        ),
    )
)
def test_every_pattern_round_trips_through_its_text(pattern: Pattern) -> None:
    again = parse_pattern(str(pattern))
    assert str(again) == str(pattern)
    moment = at("2026-06-01 00:00")
    assert again.next_after(moment, BERLIN) == pattern.next_after(moment, BERLIN) > moment


def test_settings_forms_and_their_errors() -> None:
    declared = from_settings(
        (
            {"name": "a", "task": "t", "pattern": {"every_s": 60}},
            {"name": "b", "task": "t", "pattern": {"daily": "09:30"}, "timezone": "UTC"},
            {"name": "c", "task": "t", "pattern": {"weekly": {"days": ["mon"], "at": "09:00"}}},
            {"name": "d", "task": "t", "pattern": {"monthly": {"day": 1, "at": "08:00"}}},
            {"name": "e", "task": "t", "pattern": {"cron": "*/5 * * * *"}},
            {"name": "f", "task": "t", "pattern": "hourly :15"},
        )
    )
    assert [str(s.pattern) for s in declared] == [
        "every 60s",
        "daily 09:30",
        "weekly mon 09:00",
        "monthly 1 08:00",
        "cron */5 * * * *",
        "hourly :15",
    ]
    with pytest.raises(SettingsScheduleError, match=r"entry bad: .*unknown pattern kind 'yearly'"):
        from_settings(({"name": "bad", "task": "t", "pattern": {"yearly": 1}},))
    with pytest.raises(SettingsScheduleError, match=r"entry x: .*max_catch_up"):
        from_settings(({"name": "x", "task": "t", "pattern": "every 5s", "max_catch_up": 0},))
    schedule = Schedule(name="z", task="t", pattern=Every(seconds=5), timezone="Europe/Berlin")
    assert schedule.zone() == BERLIN


# --------------------------------------------------------------------------- planning

STEP = timedelta(seconds=10)
T0 = at("2026-12-04 12:00:00")


def test_nothing_fires_before_the_next_slot() -> None:
    decided = plan(Every(seconds=10), BERLIN, T0, T0 - STEP / 2, catch_up=False, max_catch_up=5)
    assert decided.fire == ()
    assert decided.next_run_at == T0


def test_without_catch_up_only_the_latest_missed_slot_fires() -> None:
    now = T0 + 9 * STEP + STEP / 2  # ten slots due: T0 ... T0 + 9 steps
    for pattern in (Every(seconds=10), Cron(expression="* * * * *")):
        step = STEP if isinstance(pattern, Every) else timedelta(minutes=1)
        now = T0 + 9 * step + step / 2
        decided = plan(pattern, BERLIN, T0, now, catch_up=False, max_catch_up=5)
        assert decided.fire == (T0 + 9 * step,)
        assert decided.skipped == 9
        assert decided.skipped_from == T0
        assert decided.next_run_at == T0 + 10 * step


def test_with_catch_up_missed_slots_fire_in_order_up_to_the_bound() -> None:
    now = T0 + 9 * STEP
    decided = plan(Every(seconds=10), BERLIN, T0, now, catch_up=True, max_catch_up=4)
    assert decided.fire == tuple(T0 + i * STEP for i in range(6, 10))
    assert decided.skipped == 6
    within = plan(Every(seconds=10), BERLIN, T0, now, catch_up=True, max_catch_up=100)
    assert within.fire == tuple(T0 + i * STEP for i in range(10))
    assert within.skipped == 0
    daily = plan(
        Daily(at=time(12, 0)), BERLIN, T0 - timedelta(hours=1), T0 + timedelta(days=2),
        catch_up=True, max_catch_up=10,
    )  # fmt: skip
    assert [s.astimezone(BERLIN).day for s in daily.fire] == [4, 5, 6]
