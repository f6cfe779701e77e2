"""Heartbeats and maintenance, on the worker's `main` connection.

Invariant: every `HEARTBEAT_INTERVAL_MS` the worker row and the lease of every task this worker
holds (running or held ready) are renewed in one statement, so a live worker's tasks are never
recovered by the rescuer; a claim this worker does not know of is not renewed. Every
`RESCUER_INTERVAL_MS`, if this worker leads (a session advisory lock), the rescuer and the
expirer run once; with `--scheduler`, the leader also fires due schedules when they are due.
Database errors are raised to the caller.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import psycopg

from horsies_django.conf import HorsiesSettings
from horsies_django.db import connections, worker_queries
from horsies_django.maintenance import expirer, rescuer
from horsies_django.maintenance.leader import Leadership
from horsies_django.maintenance.scheduler import Scheduler


class Heartbeat:
    def __init__(
        self, settings: HorsiesSettings, worker_id: uuid.UUID, *, scheduler: bool = False
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.leadership = Leadership()
        self.scheduler = Scheduler(settings) if scheduler else None
        self.next_beat = 0.0
        self.next_maintenance = 0.0
        self.next_schedule = 0.0

    def registered(self) -> None:
        """The worker row was just written with a heartbeat: the first beat and the first
        maintenance come one heartbeat interval later, so that neither holds up the first task."""
        self.next_beat = self.next_maintenance = (
            time.monotonic() + self.settings.HEARTBEAT_INTERVAL_MS / 1000
        )

    def beat_due(self, now: float) -> bool:
        return now >= self.next_beat

    def maintenance_due(self, now: float) -> bool:
        return now >= self.next_maintenance

    def beat(
        self, conn: psycopg.Connection[connections.Row], held: Sequence[str], *, stopping: bool
    ) -> None:
        self.next_beat = time.monotonic() + self.settings.HEARTBEAT_INTERVAL_MS / 1000
        worker_queries.heartbeat(
            conn,
            self.worker_id,
            held=list(held),
            lease_s=self.settings.CLAIM_LEASE_MS / 1000,
            state="STOPPING" if stopping else "RUNNING",
        )

    def schedule_due(self, now: float) -> bool:
        return self.scheduler is not None and now >= self.next_schedule

    def schedule(self, conn: psycopg.Connection[connections.Row]) -> None:
        """If this worker leads, fire the schedules that are due."""
        assert self.scheduler is not None
        wait = Scheduler.IDLE_S
        if self.leadership.held_on(conn):
            wait = self.scheduler.tick(conn)
        self.next_schedule = time.monotonic() + wait

    def skip_schedule(self) -> None:
        self.next_schedule = time.monotonic() + Scheduler.IDLE_S

    def maintain(self, conn: psycopg.Connection[connections.Row]) -> None:
        """If this worker leads, run the rescuer and the expirer once."""
        self.next_maintenance = time.monotonic() + self.settings.RESCUER_INTERVAL_MS / 1000
        if self.leadership.held_on(conn):
            rescuer.run_once(conn, self.settings)
            expirer.run_once(conn)

    def skip_beat(self) -> None:
        """No connection to beat on: try again an interval later (or when it is back)."""
        self.next_beat = time.monotonic() + self.settings.HEARTBEAT_INTERVAL_MS / 1000

    def skip_maintenance(self) -> None:
        self.next_maintenance = time.monotonic() + self.settings.RESCUER_INTERVAL_MS / 1000

    def connection_lost(self) -> None:
        """The maintenance lock went with the connection."""
        self.leadership.lost()
        self.next_schedule = 0.0

    def reconnected(self) -> None:
        """Renew leases at once on the new connection."""
        self.next_beat = 0.0

    def wakes(self) -> list[float]:
        wakes = [self.next_beat, self.next_maintenance]
        if self.scheduler is not None:
            wakes.append(self.next_schedule)
        return wakes
