"""The numbers above the task list, each a link to the list filtered to what it counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from django.utils import timezone
from django.utils.http import urlencode

from horsies_django.admin.common import changelist_url, human_duration
from horsies_django.conf import horsies_settings
from horsies_django.db import admin_queries
from horsies_django.types import TaskStatus

CAP: Final = 10_000


@dataclass(frozen=True, slots=True)
class Tile:
    label: str
    value: str
    url: str
    css: str = ""


def _count(n: int, estimate: int | None = None) -> str:
    if n < CAP:
        return f"{n:,}"
    return f"≈ {max(n, estimate or 0):,}" if estimate else f"{CAP:,}+"


def build(oldest_first: str) -> dict[str, list[Tile]]:
    """Status counts, queue depths, oldest PENDING age, failures in the last hour, workers.

    `oldest_first` is the list's `o` parameter that sorts by sent time, oldest first.
    """
    conf = horsies_settings()
    statuses = [s.value for s in TaskStatus]
    queues = [q.name for q in conf.queues]
    now = timezone.now()
    data = admin_queries.summary(
        conf.DATABASE_ALIAS,
        statuses=statuses,
        queues=queues,
        since=now - timedelta(hours=1),
        stale_s=conf.WORKER_STALE_AFTER_MS / 1000,
        cap=CAP,
    )
    estimates = (
        admin_queries.status_estimates(conf.DATABASE_ALIAS)
        if any(n >= CAP for n in data.status_counts.values())
        else {}
    )
    tasks = [
        Tile(
            s.title(),
            _count(data.status_counts.get(s, 0), estimates.get(s)),
            changelist_url("task", urlencode({"status__exact": s})),
            f"hz-{s.lower()}",
        )
        for s in statuses
    ]
    queue_tiles = [
        Tile(
            q,
            _count(data.queue_depths.get(q, 0)),
            changelist_url(
                "task", urlencode({"status__exact": TaskStatus.PENDING.value, "queue_name": q})
            ),
        )
        for q in queues
    ]
    oldest = data.oldest_pending_sent_at
    health = [
        Tile(
            "Oldest pending",
            human_duration(now - oldest) if oldest else "-",
            changelist_url(
                "task", urlencode({"status__exact": TaskStatus.PENDING.value, "o": oldest_first})
            ),
        ),
        Tile(
            "Failed, last hour",
            _count(data.failed_recently),
            changelist_url(
                "task", urlencode({"status__exact": TaskStatus.FAILED.value, "finished": "1h"})
            ),
            "hz-failed" if data.failed_recently else "",
        ),
        Tile(
            "Live workers",
            str(data.live_workers),
            changelist_url("worker", urlencode({"liveness": "alive"})),
        ),
        Tile(
            "Stale workers",
            str(data.stale_workers),
            changelist_url("worker", urlencode({"liveness": "stale"})),
            "hz-stale" if data.stale_workers else "",
        ),
    ]
    return {"Tasks by status": tasks, "Pending per queue": queue_tiles, "Health": health}
