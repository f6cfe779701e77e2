"""Aggregate drain rate with H hosts: the same backlog of no-op tasks, sent in bulk first.

Progress is the number of unfinished tasks (PENDING, and CLAIMED or RUNNING), counted through
the two partial indexes that hold exactly those rows, so a poll costs little however far the
drain has gone; each poll waits at least 20 times as long as the previous one took (50 ms at
least). Meanwhile samplers read the wait events of active sessions and the locks on database
objects (the NOTIFY lock) every 50 ms, and the CPU of PostgreSQL, of the workers and of the
machine is measured over the drain.
"""

from __future__ import annotations

import time
from typing import Any, Final

from benchmarks.hosts.cluster import Cluster
from benchmarks.hosts.sampling import (
    CONNECTIONS_BY_HOST,
    OBJECT_LOCKS,
    WAIT_EVENTS,
    CpuMeter,
    Sampler,
    mean_active_sessions,
    wait_event_shares,
)

UNFINISHED: Final = """
SELECT (SELECT count(*) FROM horsies_task WHERE status = 'PENDING')
     + (SELECT count(*) FROM horsies_task WHERE status IN ('CLAIMED', 'RUNNING'))
"""
COMPLETED: Final = "SELECT count(*) FROM horsies_task WHERE status = 'COMPLETED'"
# Diagnostic only: the statement trigger that NOTIFYs horsies_task_done for `get()` waiters.
DONE_TRIGGER: Final = "ALTER TABLE horsies_task {} TRIGGER horsies_task_done_update"
SEND_CHUNK: Final = 1_000
TIMEOUT_S: Final = 600.0


def send_backlog(n: int) -> None:
    from benchmarks.hosts.benchapp.tasks import noop

    for start in range(0, n, SEND_CHUNK):
        batch = [{"i": i} for i in range(start, min(n, start + SEND_CHUNK))]
        for result in noop.send_many(batch):
            if result.is_err():
                raise RuntimeError(f"send_many failed: {result.err_value}")


def crossing(series: list[tuple[float, int]], level: float) -> float:
    """When the unfinished count first fell to `level`, interpolated between two polls."""
    previous = series[0]
    for point in series:
        if point[1] <= level:
            (t0, u0), (t1, u1) = previous, point
            return t1 if u0 == u1 else t0 + (t1 - t0) * (u0 - level) / (u0 - u1)
        previous = point
    raise ValueError(f"the series never reaches {level}")


def rates(series: list[tuple[float, int]], n: int) -> dict[str, float]:
    """Rates from the (seconds since the workers started, unfinished) series of one drain."""
    end = crossing(series, 0)
    middle = crossing(series, 0.1 * n) - crossing(series, 0.9 * n)
    return {
        "drain_incl_startup_per_s": round(n / end, 1),
        "drain_10_90_per_s": round(0.8 * n / middle, 1),
        "first_completion_s": round(crossing(series, n - 1), 3),
        "all_done_s": round(end, 3),
    }


def run(
    cluster: Cluster, host_count: int, processes: int, n: int, done_notify: bool = True
) -> dict[str, Any]:
    """One drain. `done_notify=False` disables the trigger that notifies `get()` waiters of
    outcomes for this drain (a diagnostic: it shows what that NOTIFY costs)."""
    cluster.reset()
    send_backlog(n)
    cluster.sql(DONE_TRIGGER.format("ENABLE" if done_notify else "DISABLE"))
    cluster.sql("CHECKPOINT")
    waits = Sampler(cluster.local_url, WAIT_EVENTS, 0.05)
    locks = Sampler(cluster.local_url, OBJECT_LOCKS, 0.05)
    started: list[Any] = []
    meter = CpuMeter(cluster.server.postmaster_pid, lambda: [w.pid for w in started])
    meter.start()
    t0 = time.perf_counter()
    started.extend(cluster.start_workers(host_count, processes, {}, f"drain{host_count}"))
    waits.start()
    locks.start()
    series: list[tuple[float, int]] = [(0.0, n)]
    while series[-1][1] > 0:
        before = time.perf_counter()
        unfinished = int(cluster.sql(UNFINISHED)[0][0])
        took = time.perf_counter() - before
        series.append((time.perf_counter() - t0, unfinished))
        if series[-1][0] > TIMEOUT_S:
            raise RuntimeError(f"drain with {host_count} hosts: {unfinished} left after timeout")
        for worker in started:
            worker.group.check_alive()
        if unfinished:
            time.sleep(max(0.05, 20 * took))
    cpu = meter.stop()
    waits.stop()
    locks.stop()
    connections = dict(cluster.sql(CONNECTIONS_BY_HOST))
    cluster.stop_workers()
    cluster.sql(DONE_TRIGGER.format("ENABLE"))
    completed = int(cluster.sql(COMPLETED)[0][0])
    if completed != n:
        raise RuntimeError(f"drain with {host_count} hosts: {completed} of {n} COMPLETED")
    return {
        "hosts": host_count,
        "processes_per_host": processes,
        "n": n,
        "done_notify": done_notify,
        **rates(series, n),
        "polls": len(series) - 1,
        "connections_by_host": connections,
        "cpu": cpu,
        "wait_samples": len(waits.samples),
        "mean_active_sessions": round(mean_active_sessions(waits.samples), 2),
        "wait_events": wait_event_shares(waits.samples),
        "object_locks_per_sample": {
            name: round(sum(s.get(name, 0) for s in locks.samples) / len(locks.samples), 3)
            for name in wait_event_shares(locks.samples)
        }
        if locks.samples
        else {},
    }
