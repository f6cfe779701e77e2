"""`manage.py horsies_scheduler`: fire periodic schedules until SIGTERM or SIGINT.

Thin: the service is `horsies_django.maintenance.scheduler`. Any number may run (each slot fires
once); when the database goes away the scheduler reconnects and fires what became due then.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any, Final

import psycopg
from django.core.management.base import BaseCommand, CommandParser

from horsies_django.conf import HorsiesSettings, horsies_settings
from horsies_django.db import connections
from horsies_django.maintenance.scheduler import Scheduler
from horsies_django.schedules.declared import SettingsScheduleError, declared_schedules

logger = logging.getLogger("horsies_django.scheduler")

RECONNECT_DELAY_S: Final = 2.0
APP_NAME: Final = "horsies_scheduler"
DB_ERRORS: Final = (psycopg.OperationalError, psycopg.InterfaceError)


class Command(BaseCommand):
    help = "Fire periodic schedules (declared in code or HORSIES['SCHEDULES']) until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Fire what is due now, then exit (cron-style)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settings = horsies_settings()
        try:
            count = len(declared_schedules(settings.SCHEDULES))
        except SettingsScheduleError as exc:
            raise SystemExit(f"horsies_scheduler: {exc}") from exc
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            logger.info("scheduler: %s received, stopping", signal.Signals(signum).name)
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._run(settings, count, stop, once=bool(options["once"]))
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _run(
        self, settings: HorsiesSettings, count: int, stop: threading.Event, *, once: bool
    ) -> None:
        scheduler = Scheduler(settings)
        self.stdout.write(f"horsies_scheduler started: {count} schedule(s)")
        self.stdout.flush()
        conn: psycopg.Connection[connections.Row] | None = None
        while not stop.is_set():
            try:
                if conn is None or conn.closed:
                    params = connections.connection_params(settings.DATABASE_ALIAS)
                    conn = connections.connect_with({**params, "application_name": APP_NAME})
                wait = scheduler.tick(conn)
            except DB_ERRORS as exc:
                logger.warning("scheduler: database unreachable (%s); retrying", exc)
                conn = None
                wait = RECONNECT_DELAY_S
            if once:
                break
            stop.wait(wait)
        if conn is not None:
            conn.close()
