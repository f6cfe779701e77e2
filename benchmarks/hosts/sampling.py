"""What the harness watches during a phase, from the machine side (over loopback).

- `Sampler`: a thread running one query every `interval_s` on its own connection and
  folding each answer into counters (wait events of active sessions, running tasks per queue).
- `CpuMeter`: CPU seconds of PostgreSQL (postmaster and every backend, including exited
  ones), of the worker process trees, and of the whole machine, between two readings.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psutil
import psycopg

from benchmarks.measure import tree_cpu_seconds

# Active client sessions by what they wait on; no wait event means on CPU (or runnable).
WAIT_EVENTS: Final = """
SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), count(*)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()
GROUP BY 1
"""
# Heavyweight locks on database objects (not relations), held or awaited: a committing NOTIFY
# takes one on pg_database (objid 0) and keeps it until its commit is flushed.
OBJECT_LOCKS: Final = """
SELECT l.classid::regclass::text || ' ' || l.objid || ' ' || l.mode
       || CASE WHEN l.granted THEN ' held' ELSE ' awaited' END, count(*)
FROM pg_locks l WHERE l.locktype = 'object' AND l.pid <> pg_backend_pid()
GROUP BY 1
"""
# What the caps count: tasks CLAIMED or RUNNING, per queue (one snapshot per statement).
RUNNING_PER_QUEUE: Final = """
SELECT queue_name, count(*) FROM horsies_task WHERE status IN ('CLAIMED', 'RUNNING')
GROUP BY 1
"""
# Connections from each host's inside address (the harness itself comes over loopback).
CONNECTIONS_BY_HOST: Final = """
SELECT host(client_addr), count(*) FROM pg_stat_activity
WHERE client_addr << inet '10.77.0.0/16' GROUP BY 1 ORDER BY 1
"""


@dataclass
class Sampler:
    """Runs `query` every `interval_s` until stopped; `samples` holds each answer as a dict."""

    url: str
    query: str
    interval_s: float
    samples: list[dict[str, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self._stop.is_set():
                    rows = conn.execute(self.query.encode()).fetchall()
                    self.samples.append({str(key): int(n) for key, n in rows})
                    self._stop.wait(self.interval_s)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.error is not None:
            raise RuntimeError(f"sampler failed: {self.error!r}") from self.error


def wait_event_shares(samples: Sequence[dict[str, int]]) -> dict[str, float]:
    """Each wait event's share of all active-session observations, largest first."""
    totals: Counter[str] = Counter()
    for sample in samples:
        totals.update(sample)
    seen = sum(totals.values())
    return {name: round(n / seen, 4) for name, n in totals.most_common()} if seen else {}


def mean_active_sessions(samples: Sequence[dict[str, int]]) -> float:
    return sum(sum(s.values()) for s in samples) / len(samples) if samples else 0.0


def running_maxima(samples: Sequence[dict[str, int]]) -> dict[str, int]:
    """The most tasks seen CLAIMED or RUNNING at once, per queue and in total ('*')."""
    maxima: dict[str, int] = {"*": 0}
    for sample in samples:
        for queue, n in sample.items():
            maxima[queue] = max(maxima.get(queue, 0), n)
        maxima["*"] = max(maxima["*"], sum(sample.values()))
    return maxima


def _postgres_cpu(postmaster_pid: int | None) -> float:
    return tree_cpu_seconds([postmaster_pid]) if postmaster_pid else 0.0


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq + t.steal)


@dataclass
class CpuMeter:
    """CPU seconds between `start()` and `stop()`; workers are read when they stop."""

    postmaster_pid: Callable[[], int | None]
    worker_pids: Callable[[], list[int]]
    started: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self.started = {
            "wall": time.perf_counter(),
            "postgres": _postgres_cpu(self.postmaster_pid()),
            "machine": _machine_busy(),
        }

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.started["wall"]
        postgres = _postgres_cpu(self.postmaster_pid()) - self.started["postgres"]
        machine = _machine_busy() - self.started["machine"]
        workers = tree_cpu_seconds(self.worker_pids())  # started with the phase: no baseline
        cores = psutil.cpu_count() or 1
        return {
            "wall_s": round(wall, 3),
            "postgres_cpu_s": round(postgres, 3),
            "workers_cpu_s": round(workers, 3),
            "postgres_cores": round(postgres / wall, 3),
            "workers_cores": round(workers / wall, 3),
            "machine_busy_cores": round(machine / wall, 3),
            "machine_cores": cores,
        }
