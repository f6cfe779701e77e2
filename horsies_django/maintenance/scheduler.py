"""The scheduler service: writes the declared schedules when it starts, then fires what is due.

Run by `manage.py horsies_scheduler`, or inside a worker started with `--scheduler` (there,
only by the maintenance leader). Several may run at once: each slot still fires once (see
`horsies_django.schedules.firing`). Time is the database's clock, so hosts agree on it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final

import psycopg

from horsies_django.conf import HorsiesSettings
from horsies_django.db import connections, schedule_queries
from horsies_django.schedules.declared import declared_schedules
from horsies_django.schedules.firing import Fired, fire, write_declared

logger = logging.getLogger("horsies_django.scheduler")

MAX_SLEEP_S: Final = 5.0  # how soon a schedule enabled in the admin is seen

type Connection = psycopg.Connection[connections.Row]


class Scheduler:
    IDLE_S: Final = MAX_SLEEP_S  # a worker that does not lead asks again this much later

    def __init__(self, settings: HorsiesSettings) -> None:
        self.settings = settings
        self.started_on: int | None = None  # id() of the connection the schedules were written on
        self.unknown: set[str] = set()  # schedules this process cannot fire (logged once)

    def tick(self, conn: Connection, now: datetime | None = None) -> float:
        """Fire every due schedule once; seconds until the next one is due (at most
        `MAX_SLEEP_S`). Database errors are raised to the caller."""
        if self.started_on != id(conn):
            schedules = declared_schedules(self.settings.SCHEDULES)
            write_declared(conn, schedules, now or schedule_queries.database_now(conn))
            self.started_on = id(conn)
            logger.info("scheduler: %d schedule(s) declared", len(schedules))
        now = now or schedule_queries.database_now(conn)
        wake = MAX_SLEEP_S
        for name, next_run_at in schedule_queries.enabled(conn):
            if next_run_at is None or next_run_at <= now:
                done = fire(conn, name, now)
                self._note(name, done)
                next_run_at = None if done is None else done.next_run_at
            if next_run_at is not None and name not in self.unknown:
                wake = min(wake, max(0.0, (next_run_at - now).total_seconds()))
        return wake

    def _note(self, name: str, done: Fired | None) -> None:
        if done is None:
            return
        if done.problem is not None:
            if name not in self.unknown:
                self.unknown.add(name)  # logged once; not waited for by this process
                logger.error("schedule %s cannot fire here: %s", name, done.problem)
        elif done.fired:
            logger.info("schedule %s: fired %d task(s)", name, done.fired)
