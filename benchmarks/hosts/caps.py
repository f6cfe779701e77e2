"""Queue caps across hosts: tasks of two capped queues, sampled every 10 ms while they drain.

Every host's worker runs with the same `CUSTOM_QUEUES` (`max_concurrency` per queue) and
`CLUSTER_WIDE_CAP`; the sampler counts the tasks CLAIMED or RUNNING per queue in one
statement (one snapshot) each time. The phase fails if any sample exceeds a cap.
"""

from __future__ import annotations

import time
from typing import Any, Final

from benchmarks.hosts.cluster import Cluster, wait_until
from benchmarks.hosts.drain import UNFINISHED
from benchmarks.hosts.queues import CAPS, CLUSTER_WIDE_CAP, capped
from benchmarks.hosts.sampling import RUNNING_PER_QUEUE, Sampler, running_maxima

TIMEOUT_S: Final = 600.0


def send(per_queue: int, ms: int) -> None:
    from benchmarks.hosts.benchapp.tasks import capped_a, capped_b

    for task in (capped_a, capped_b):
        for result in task.send_many([{"i": i, "ms": ms} for i in range(per_queue)]):
            if result.is_err():
                raise RuntimeError(f"send_many failed: {result.err_value}")


def run(
    cluster: Cluster,
    host_count: int,
    processes: int,
    per_queue: int,
    ms: int,
    poll_ms: int | None = None,
) -> dict[str, Any]:
    """One drain of both capped queues; `poll_ms` sets POLL_INTERVAL_MS (None: default)."""
    cluster.reset()
    send(per_queue, ms)
    running = Sampler(cluster.local_url, RUNNING_PER_QUEUE, 0.01)
    running.start()
    t0 = time.perf_counter()
    horsies = capped() | ({} if poll_ms is None else {"POLL_INTERVAL_MS": poll_ms})
    started = cluster.start_workers(host_count, processes, horsies, f"caps{poll_ms or ''}")

    def finished() -> bool:
        for worker in started:
            worker.group.check_alive()
        return int(cluster.sql(UNFINISHED)[0][0]) == 0

    wait_until("the capped tasks to finish", finished, TIMEOUT_S, interval_s=0.1)
    elapsed = time.perf_counter() - t0
    running.stop()
    cluster.stop_workers()
    maxima = running_maxima(running.samples)
    limits = {**CAPS, "*": CLUSTER_WIDE_CAP}
    exceeded = {q: maxima.get(q, 0) for q, cap in limits.items() if maxima.get(q, 0) > cap}
    totals = [sum(s.values()) for s in running.samples]
    return {
        "hosts": host_count,
        "processes_per_host": processes,
        "tasks": 2 * per_queue,
        "task_ms": ms,
        "poll_interval_ms": poll_ms or "default",
        "caps": limits,
        "samples": len(running.samples),
        "max_running": maxima,
        "mean_running_total": round(sum(totals) / len(totals), 2) if totals else 0.0,
        "samples_at_cluster_cap": sum(1 for t in totals if t == CLUSTER_WIDE_CAP),
        "elapsed_s": round(elapsed, 2),
        "tasks_per_s": round(2 * per_queue / elapsed, 1),
        "exceeded": exceeded,
        "ok": not exceeded,
    }
