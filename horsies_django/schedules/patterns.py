"""When a periodic schedule fires: intervals, hourly, daily, weekly, monthly, and cron.

Every pattern answers one question, `next_after(moment, tz)`: the first slot strictly after
`moment` (both aware; the answer in UTC). Intervals are counted from the Unix epoch, so every
scheduler agrees on their slots whatever its start time. Calendar patterns are cron expressions
evaluated by cronsim in the schedule's timezone, with the wall clock's rules:

- a time that does not exist (the spring-forward gap) fires once, at the first minute after the
  gap, for a pattern at a fixed time of day (daily 02:30 fires at 03:00 that day); minute
  patterns (`*/15 * * * *`) have no slot inside the gap;
- a time that happens twice (the fall-back repeat) fires once, at its first occurrence; so
  `hourly :30` fires once at 02:30 on the night clocks go back (use `Every` for slots evenly
  spaced in elapsed time).

A pattern also has a canonical text form (`str(pattern)`, parsed back by `parse_pattern`), which
the database stores.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Annotated, Final, Literal

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
WEEKDAYS: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron's numbering
MAX_SEARCH: Final = 100_000  # slots examined looking for the next valid one (cron)

type Weekday = Literal["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


class _Pattern(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def cron(self) -> str:
        raise NotImplementedError

    def next_after(self, moment: datetime, tz: tzinfo) -> datetime:
        """The first slot strictly after `moment`, in UTC."""
        return _next_cron(self.cron(), moment, tz)


class Every(_Pattern):
    """Every `seconds` seconds, counted from the Unix epoch (timezones do not matter)."""

    seconds: Annotated[int, Field(ge=1)]

    def next_after(self, moment: datetime, tz: tzinfo) -> datetime:
        elapsed = (moment - EPOCH) // timedelta(seconds=self.seconds)
        return EPOCH + timedelta(seconds=self.seconds * (elapsed + 1))

    def __str__(self) -> str:
        return f"every {self.seconds}s"


class Hourly(_Pattern):
    """Every hour at `minute`."""

    minute: Annotated[int, Field(ge=0, le=59)] = 0

    def cron(self) -> str:
        return f"{self.minute} * * * *"

    def __str__(self) -> str:
        return f"hourly :{self.minute:02d}"


class _AtTime(_Pattern):
    at: time

    @field_validator("at")
    @classmethod
    def _whole_minutes(cls, value: time) -> time:
        if value.second or value.microsecond or value.tzinfo is not None:
            raise ValueError("a time of day is hours and minutes (HH:MM), without a timezone")
        return value


class Daily(_AtTime):
    """Every day at `at` (wall clock in the schedule's timezone)."""

    def cron(self) -> str:
        return f"{self.at.minute} {self.at.hour} * * *"

    def __str__(self) -> str:
        return f"daily {self.at:%H:%M}"


class Weekly(_AtTime):
    """On each of `days` at `at`."""

    days: Annotated[tuple[Weekday, ...], Field(min_length=1)]

    def cron(self) -> str:
        numbers = sorted({WEEKDAYS.index(d) for d in self.days})
        return f"{self.at.minute} {self.at.hour} * * {','.join(map(str, numbers))}"

    def __str__(self) -> str:
        ordered = sorted(set(self.days), key=WEEKDAYS.index)
        return f"weekly {','.join(ordered)} {self.at:%H:%M}"


class Monthly(_AtTime):
    """On day `day` of each month at `at`; months without that day are skipped."""

    day: Annotated[int, Field(ge=1, le=31)]

    def cron(self) -> str:
        return f"{self.at.minute} {self.at.hour} {self.day} * *"

    def __str__(self) -> str:
        return f"monthly {self.day} {self.at:%H:%M}"


class Cron(_Pattern):
    """A five-field cron expression (minute hour day-of-month month day-of-week)."""

    expression: str

    @field_validator("expression")
    @classmethod
    def _parses(cls, value: str) -> str:
        text = " ".join(value.split())
        if len(text.split()) != 5:
            raise ValueError(f"cron {value!r} must have 5 fields: minute hour day month weekday")
        try:
            CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            raise ValueError(f"cron {value!r} does not parse: {exc}") from exc
        return text

    def cron(self) -> str:
        return self.expression

    def __str__(self) -> str:
        return f"cron {self.expression}"


type Pattern = Every | Hourly | Daily | Weekly | Monthly | Cron


class UnsatisfiableError(ValueError):
    """The pattern has no slot (e.g. `0 0 30 2 *`, 30 February)."""


def _next_cron(expression: str, moment: datetime, tz: tzinfo) -> datetime:
    local = moment.astimezone(tz)
    try:
        slots = CronSim(expression, local)
        for _ in range(MAX_SEARCH):
            candidate = next(slots)
            if _imaginary(candidate) or _repeated(candidate):
                continue  # in a spring-forward gap, or a fall-back hour's second pass
            as_utc = candidate.astimezone(UTC)
            if as_utc > moment:  # a repeated hour can yield a time already passed
                return as_utc
    except (CronSimError, StopIteration) as exc:
        raise UnsatisfiableError(f"cron {expression!r} never fires: {exc}") from exc
    raise UnsatisfiableError(f"cron {expression!r} has no slot in {MAX_SEARCH} tries")


def _repeated(moment: datetime) -> bool:
    """The second occurrence of a wall-clock time that happens twice (fall back)."""
    first = moment.replace(fold=0)
    return first.utcoffset() != moment.replace(fold=1).utcoffset() and (
        moment.astimezone(UTC) != first.astimezone(UTC)
    )


def _imaginary(moment: datetime) -> bool:
    round_trip = moment.astimezone(UTC).astimezone(moment.tzinfo)
    return round_trip.replace(tzinfo=None) != moment.replace(tzinfo=None)


_TEXT_FORMS: Final = (
    (re.compile(r"every (\d+)s"), lambda m: Every(seconds=int(m[1]))),
    (re.compile(r"hourly :(\d\d)"), lambda m: Hourly(minute=int(m[1]))),
    (re.compile(r"daily (\d\d:\d\d)"), lambda m: Daily(at=time.fromisoformat(m[1]))),
    (
        re.compile(r"weekly ([a-z,]+) (\d\d:\d\d)"),
        lambda m: Weekly(days=tuple(m[1].split(",")), at=time.fromisoformat(m[2])),
    ),
    (
        re.compile(r"monthly (\d+) (\d\d:\d\d)"),
        lambda m: Monthly(day=int(m[1]), at=time.fromisoformat(m[2])),
    ),
    (re.compile(r"cron (.+)"), lambda m: Cron(expression=m[1])),
)


def parse_pattern(text: str) -> Pattern:
    """The pattern whose `str()` is `text` (ValueError if there is none)."""
    for form, build in _TEXT_FORMS:
        match = form.fullmatch(text.strip())
        if match:
            pattern: Pattern = build(match)
            return pattern
    raise ValueError(
        f"{text!r} is not a pattern: use 'every 60s', 'hourly :15', 'daily 09:30', "
        "'weekly mon,fri 09:00', 'monthly 1 08:00' or 'cron */5 * * * *'"
    )
