"""The rescuer: recover tasks whose worker died or went silent, and repair workflows.

Stale workers are marked DEAD. Their CLAIMED tasks go back to PENDING (user code never ran);
their RUNNING tasks get a WORKER_CRASHED attempt and retry if their policy lists it. Every
write is fenced by the claim generation it read, so a worker that comes back cannot collide.
Workflows advance in the transaction of their tasks' outcomes; what a bug or a hand edit could
still leave half-advanced is repaired by the database's `horsies_wf_repair()` (migration 0008),
and workflows paused for longer than `WORKFLOW_PAUSE_EXPIRES_AFTER_MS` end EXPIRED.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import psycopg

from horsies_django.conf import HorsiesSettings
from horsies_django.db import connections, maintenance_queries, worker_queries
from horsies_django.execution import failure
from horsies_django.outcomes import decide
from horsies_django.types import AttemptOutcome, OperationalErrorCode

logger = logging.getLogger("horsies_django.maintenance")

BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class RescueCounts:
    dead_workers: int = 0
    requeued: int = 0
    crashed: int = 0
    workflows_repaired: int = 0
    workflows_expired: int = 0

    def __bool__(self) -> bool:
        return any(
            (
                self.dead_workers,
                self.requeued,
                self.crashed,
                self.workflows_repaired,
                self.workflows_expired,
            )
        )


def run_once(conn: psycopg.Connection[connections.Row], settings: HorsiesSettings) -> RescueCounts:
    with conn.transaction():
        dead = maintenance_queries.mark_stale_workers_dead(
            conn, settings.WORKER_STALE_AFTER_MS / 1000
        )
        requeued = maintenance_queries.requeue_orphan_claims(conn)
        crashed = _crash_orphan_runs(conn)
    with conn.transaction():
        repaired = maintenance_queries.repair_workflows(conn)
    expired = 0
    if settings.WORKFLOW_PAUSE_EXPIRES_AFTER_MS is not None:
        with conn.transaction():
            expired = maintenance_queries.expire_paused_workflows(
                conn, settings.WORKFLOW_PAUSE_EXPIRES_AFTER_MS / 1000
            )
    counts = RescueCounts(dead, requeued, crashed, repaired, expired)
    if counts:
        logger.warning(
            "rescuer: %d worker(s) marked dead, %d claim(s) requeued, %d run(s) recorded "
            "crashed, %d workflow(s) repaired, %d paused workflow(s) expired",
            dead,
            requeued,
            crashed,
            repaired,
            expired,
        )
    return counts


def _crash_orphan_runs(conn: psycopg.Connection[connections.Row]) -> int:
    orphans = maintenance_queries.lock_orphan_runs(conn, BATCH)
    if not orphans:
        return 0
    finishes = []
    for orphan in orphans:
        outcome = failure(
            OperationalErrorCode.WORKER_CRASHED,
            "the worker running this task died or stopped renewing its lease",
            started_at=orphan.started_at,
            outcome=AttemptOutcome.CRASHED,
        )
        finishes.append(decide(orphan.claimed, outcome, None, orphan.worker_id))
    return len(worker_queries.finish(conn, finishes))
