"""System checks for periodic schedules (`manage.py check`), with stable ids:

E014 an entry of HORSIES["SCHEDULES"] is not a valid schedule (its pattern never fires, say),
or a name is declared twice · E015 a schedule's task is not registered · E016 its kwargs do not
fit the task's signature · E017 its timezone is unknown.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from horsies_django import sending
from horsies_django.registered import table
from horsies_django.schedules.declared import Schedule, SettingsScheduleError, declared_schedules
from horsies_django.schedules.patterns import UnsatisfiableError

TAG: Final = "horsies_django"


def _error(code: str, message: str, hint: str) -> CheckMessage:
    return Error(message, hint=hint, id=f"{TAG}.{code}")


@register(TAG)
def check_schedules(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, "HORSIES", None) or {}
    entries = raw.get("SCHEDULES", ()) if isinstance(raw, dict) else ()
    if not isinstance(entries, (list, tuple)):
        return []  # the settings check reports the type (E002)
    try:
        schedules = declared_schedules(tuple(entries))
    except SettingsScheduleError as exc:
        hint = "Fix the entry: see docs/schedules.md for the keys and pattern forms."
        return [_error("E014", str(exc), hint)]
    messages: list[CheckMessage] = []
    for schedule in schedules.values():
        messages.extend(_messages(schedule))
    return messages


def _messages(schedule: Schedule) -> list[CheckMessage]:
    where = f"schedule {schedule.name!r}"
    definition = table.get(schedule.task)
    if definition is None:
        return [
            _error(
                "E015",
                f"{where}: task {schedule.task!r} is not registered.",
                "Fix the task name, or add its module to HORSIES['TASK_MODULES'] (or an "
                "installed app's tasks.py).",
            )
        ]
    messages = []
    prepared = sending.prepare(definition, schedule.kwargs)
    if prepared.is_err():
        messages.append(
            _error(
                "E016",
                f"{where}: its kwargs do not fit {schedule.task}: {prepared.err_value.message}",
                "Give the schedule's kwargs exactly the task's parameters, with valid values.",
            )
        )
    try:
        zone = schedule.zone()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return [
            *messages,
            _error(
                "E017",
                f"{where}: timezone {schedule.timezone_name!r} is unknown.",
                "Use an IANA name such as 'Europe/Berlin' or 'UTC'.",
            ),
        ]
    try:
        schedule.pattern.next_after(datetime.now(UTC), zone)
    except UnsatisfiableError as exc:
        messages.append(
            _error("E014", f"{where}: {exc}.", "Fix the pattern so that it has a slot.")
        )
    return messages
