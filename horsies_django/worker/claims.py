"""What a worker may claim: its queues in priority order, within every concurrency cap.

With no caps configured a claim is one statement. With caps, claimers serialise on one
advisory transaction lock, count what runs cluster-wide, and claim only the remaining room.
"""

from __future__ import annotations

import uuid
import zlib
from collections import Counter
from collections.abc import Sequence
from typing import Final

import psycopg

from horsies_django.conf import HorsiesSettings, QueueSpec
from horsies_django.db import connections, worker_queries
from horsies_django.db.claim import Claimed, QueueSlot
from horsies_django.db.claim import claim as claim_tasks
from horsies_django.exceptions import ConfigurationError

CAP_LOCK_KEY: Final = zlib.crc32(b"horsies_django.caps")


class ClaimPlanner:
    def __init__(self, settings: HorsiesSettings, only: Sequence[str] | None) -> None:
        self.settings = settings
        self.queues = self._select(settings, only)
        self.queue_names = [q.name for q in self.queues]
        self.capped = settings.CLUSTER_WIDE_CAP is not None or any(
            q.max_concurrency is not None for q in self.queues
        )
        # The last capped claim took all a cap let it (a full cap included): a task finishing
        # anywhere may free room for the next one.
        self.held_back_by_cap = False

    @staticmethod
    def _select(settings: HorsiesSettings, only: Sequence[str] | None) -> list[QueueSpec]:
        known = {q.name: q for q in settings.queues}
        if not only:
            return list(settings.queues)
        unknown = [name for name in only if name not in known]
        if unknown:
            raise ConfigurationError(
                f"--queues names unknown queue(s) {unknown}; configured queues: {list(known)}"
            )
        return [q for q in settings.queues if q.name in only]

    def claim(
        self, conn: psycopg.Connection[connections.Row], worker_id: uuid.UUID, free: int
    ) -> list[Claimed]:
        """Claim up to `free` tasks: one statement, or one transaction under the cap lock."""
        if not self.capped:
            return self._claim(conn, worker_id, {q.name: free for q in self.queues}, free)
        with conn.transaction():
            worker_queries.lock_caps(conn, CAP_LOCK_KEY)
            limits, total = self._room(conn, {q.name: free for q in self.queues}, free)
            claimed = self._claim(conn, worker_id, limits, total)
        self.held_back_by_cap = self._cap_binding(claimed, limits, total, free)
        return claimed

    def uncapped(self, free: int) -> list[QueueSlot]:
        """Every queue of this worker with room for `free` tasks (no cap applies)."""
        return [QueueSlot(q.name, q.priority, free) for q in self.queues]

    @property
    def lease_s(self) -> float:
        return self.settings.CLAIM_LEASE_MS / 1000

    def _claim(
        self,
        conn: psycopg.Connection[connections.Row],
        worker_id: uuid.UUID,
        limits: dict[str, int],
        total: int,
    ) -> list[Claimed]:
        slots = [
            QueueSlot(q.name, q.priority, limits[q.name]) for q in self.queues if limits[q.name] > 0
        ]
        if not slots or total <= 0:
            return []
        return claim_tasks(
            conn, worker_id=worker_id, slots=slots, limit=total, lease_s=self.lease_s
        )

    def _cap_binding(
        self, claimed: list[Claimed], limits: dict[str, int], total: int, free: int
    ) -> bool:
        """Whether a cap, not the backlog, ended this claim: a capped limit was used up."""
        if total < free and len(claimed) >= total:
            return True
        counts = Counter(c.queue_name for c in claimed)
        return any(
            limits[q.name] < free and counts[q.name] >= limits[q.name]
            for q in self.queues
            if q.max_concurrency is not None
        )

    def _room(
        self, conn: psycopg.Connection[connections.Row], limits: dict[str, int], total: int
    ) -> tuple[dict[str, int], int]:
        capped = [q for q in self.queues if q.max_concurrency is not None]
        if capped:
            active = worker_queries.active_counts(conn, [q.name for q in capped])
            for q in capped:
                assert q.max_concurrency is not None
                limits[q.name] = min(limits[q.name], q.max_concurrency - active.get(q.name, 0))
        cap = self.settings.CLUSTER_WIDE_CAP
        if cap is not None:
            total = min(total, cap - worker_queries.active_total(conn))
        return limits, total
