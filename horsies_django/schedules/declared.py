"""Periodic schedules as declared: in code (`app.periodic(...)`) or in `HORSIES["SCHEDULES"]`.

A `Schedule` names a registered task, its kwargs and a pattern; its timezone defaults to
Django's `TIME_ZONE`. Declaring does not touch the database: a scheduler writes the declared
schedules to `horsies_schedule` when it starts. Names are unique across code and settings.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import time
from typing import Annotated, Any, Final

from django.conf import settings as django_settings
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from horsies_django.schedules.patterns import (
    Cron,
    Daily,
    Every,
    Hourly,
    Monthly,
    Pattern,
    Weekly,
    parse_pattern,
)

NAME_PATTERN: Final = r"^[A-Za-z0-9_\-:.]{1,200}$"
DEFAULT_MAX_CATCH_UP: Final = 100
PATTERN_KINDS: Final = "every_s, hourly, daily, weekly, monthly, cron"


class Schedule(BaseModel):
    """One periodic schedule: run `task` with `kwargs` at every slot of `pattern`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    task: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    pattern: Pattern
    timezone: str | None = None  # IANA name; None: settings.TIME_ZONE
    enabled: bool = True
    catch_up_missed: bool = False
    max_catch_up: Annotated[int, Field(ge=1)] = DEFAULT_MAX_CATCH_UP

    @field_validator("pattern", mode="before")
    @classmethod
    def _pattern_from_settings(cls, value: object) -> object:
        return pattern_from_setting(value) if isinstance(value, (str, Mapping)) else value

    @property
    def timezone_name(self) -> str:
        return self.timezone or str(getattr(django_settings, "TIME_ZONE", None) or "UTC")

    def zone(self) -> zoneinfo.ZoneInfo:
        """The schedule's timezone (ZoneInfoNotFoundError if the name is unknown)."""
        return zoneinfo.ZoneInfo(self.timezone_name)


def pattern_from_setting(value: object) -> Pattern:
    """A pattern from settings: its text form, or one of {"every_s": 60}, {"hourly": 15},
    {"daily": "09:30"}, {"weekly": {"days": [...], "at": "09:00"}},
    {"monthly": {"day": 1, "at": "08:00"}}, {"cron": "*/5 * * * *"}."""
    if isinstance(value, str):
        return parse_pattern(value)
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ValueError(f"a pattern is one key ({PATTERN_KINDS}), not {value!r}")
    ((kind, arg),) = value.items()
    match kind:
        case "every_s":
            return Every(seconds=arg)
        case "hourly":
            return Hourly(minute=arg)
        case "daily":
            return Daily(at=time.fromisoformat(arg) if isinstance(arg, str) else arg)
        case "weekly":
            return Weekly.model_validate(arg)
        case "monthly":
            return Monthly.model_validate(arg)
        case "cron":
            return Cron(expression=arg)
    raise ValueError(f"unknown pattern kind {kind!r}: use one of {PATTERN_KINDS}")


_in_code: dict[str, Schedule] = {}


def declare(schedule: Schedule) -> Schedule:
    """Add a schedule declared in code (a module imported at start-up, e.g. tasks.py)."""
    existing = _in_code.get(schedule.name)
    if existing is not None and existing != schedule:
        raise ValueError(f"schedule {schedule.name!r} is declared twice with different settings")
    _in_code[schedule.name] = schedule
    return schedule


def undeclare(name: str) -> None:
    """Forget a schedule declared in code (tests)."""
    _in_code.pop(name, None)


class SettingsScheduleError(ValueError):
    """An entry of HORSIES["SCHEDULES"] is not a valid schedule."""


def from_settings(entries: tuple[Mapping[str, Any], ...]) -> list[Schedule]:
    schedules = []
    for i, entry in enumerate(entries):
        try:
            schedules.append(Schedule.model_validate(dict(entry)))
        except ValidationError as exc:
            name = entry.get("name", f"#{i}") if isinstance(entry, Mapping) else f"#{i}"
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors()
            )
            raise SettingsScheduleError(f'HORSIES["SCHEDULES"] entry {name}: {problems}') from exc
        except (ValueError, TypeError) as exc:
            raise SettingsScheduleError(f'HORSIES["SCHEDULES"] entry #{i}: {exc}') from exc
    return schedules


def declared_schedules(entries: tuple[Mapping[str, Any], ...] = ()) -> dict[str, Schedule]:
    """Every declared schedule by name: those in code, then those in settings `entries`."""
    found = dict(_in_code)
    for schedule in from_settings(entries):
        if schedule.name in found and found[schedule.name] != schedule:
            raise SettingsScheduleError(
                f"schedule {schedule.name!r} is declared both in code and in "
                'HORSIES["SCHEDULES"]; keep one'
            )
        found[schedule.name] = schedule
    return found
