"""`manage.py horsies_prune`: delete old finished tasks, their attempts, and old worker rows.

Thin: parse and validate the ages, then delete batch by batch (each batch its own short
transaction, so a large prune never holds locks for long). `--dry-run` only counts.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, Final

from django.core.management.base import BaseCommand, CommandParser

from horsies_django.conf import horsies_settings
from horsies_django.db import maintenance_queries as q
from horsies_django.management.argtypes import int_between
from horsies_django.states import TaskStatus

UNITS: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
NEVER: Final = "never"
# One age per terminal status (tests/test_states.py checks they are all and only those).
DEFAULT_AGES: Final = {
    TaskStatus.COMPLETED: "7d",
    TaskStatus.FAILED: "30d",
    TaskStatus.CANCELLED: "7d",
    TaskStatus.EXPIRED: "7d",
}
DEFAULT_BATCH: Final = 5_000


def duration(value: str) -> float | None:
    """'90m', '12h', '7d', '2w', '30s' -> seconds; 'never' -> None (keep forever)."""
    if value.strip().lower() == NEVER:
        return None
    match = DURATION.match(value.lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a duration: write a number and a unit s/m/h/d/w "
            "(e.g. 90m, 12h, 7d) or 'never'"
        )
    return float(match[1]) * UNITS[match[2]]


batch_size = int_between(1, 1_000_000)


def describe(seconds: float | None) -> str:
    if seconds is None:
        return NEVER
    for unit in ("d", "h", "m"):
        if seconds >= UNITS[unit] and seconds % UNITS[unit] == 0:
            return f"{int(seconds // UNITS[unit])}{unit}"
    return f"{seconds:g}s"


class Command(BaseCommand):
    help = (
        "Delete finished tasks (with their attempts) older than an age per status, and "
        "stopped/dead worker rows older than the completed age."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        for status, default in DEFAULT_AGES.items():
            parser.add_argument(
                f"--{status.lower()}-older-than",
                type=duration,
                default=duration(default),
                metavar="AGE",
                help=f"delete {status} tasks finished more than AGE ago "
                f"(default {default}; units s/m/h/d/w, or 'never')",
            )
        parser.add_argument(
            "--batch-size",
            type=batch_size,
            default=DEFAULT_BATCH,
            help=f"rows deleted per transaction (default {DEFAULT_BATCH})",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="only count what would be deleted"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = horsies_settings().DATABASE_ALIAS
        dry, batch = bool(options["dry_run"]), int(options["batch_size"])
        verb = "would delete" if dry else "deleted"
        for status in DEFAULT_AGES:
            name = status.lower()
            age = options[f"{name}_older_than"]
            if age is None:
                self.stdout.write(f"{name:<10} kept (never pruned)")
                continue
            pruned = (
                q.count_old_tasks(alias, status.value, age)
                if dry
                else _delete_tasks(alias, status.value, age, batch)
            )
            self.stdout.write(
                f"{name:<10} older than {describe(age)}: {verb} {pruned.tasks} task(s), "
                f"{pruned.attempts} attempt(s)"
            )
        self._prune_workers(alias, options["completed_older_than"], dry, batch, verb)

    def _prune_workers(
        self, alias: str, age: float | None, dry: bool, batch: int, verb: str
    ) -> None:
        if age is None:
            self.stdout.write(f"{'workers':<10} kept (never pruned)")
            return
        count = q.count_old_workers(alias, age) if dry else _delete_workers(alias, age, batch)
        self.stdout.write(
            f"{'workers':<10} stopped/dead more than {describe(age)} ago: {verb} {count} row(s)"
        )


def _delete_tasks(alias: str, status: str, age: float, batch: int) -> q.Pruned:
    tasks = attempts = 0
    while True:
        pruned = q.delete_old_tasks(alias, status, age, batch)
        tasks, attempts = tasks + pruned.tasks, attempts + pruned.attempts
        if pruned.tasks < batch:
            return q.Pruned(tasks, attempts)


def _delete_workers(alias: str, age: float, batch: int) -> int:
    total = 0
    while True:
        deleted = q.delete_old_workers(alias, age, batch)
        total += deleted
        if deleted < batch:
            return total
