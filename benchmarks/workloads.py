"""The workloads, identical for horsies_django and the raw-SQL baseline.

A system is anything satisfying `BenchQueue`; the functions here own all timing, polling and
CPU accounting, so both systems are measured by the same code in the same run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil
import psycopg

from benchmarks.measure import WorkerGroup, percentile, tree_cpu_seconds, tree_rss_bytes
from benchmarks.work import COUNT_ITEMS, ITEM_TABLE, ceiling_per_s

MB = 1024 * 1024


class BenchQueue(Protocol):
    name: str
    any_done_sql: str
    count_done_sql: str
    count_failed_sql: str
    count_total_sql: str

    def prepare(self) -> None: ...
    def clear(self) -> None: ...
    def send_one(self, i: int) -> None: ...
    def send_bulk(self, items: list[int]) -> None: ...
    def send_and_wait(self, i: int, timeout_s: float) -> None: ...
    def use_work(self, work: str) -> None: ...
    def worker_group(self, processes: int, log_path: Path) -> WorkerGroup: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Params:
    n: int
    processes: int
    n_latency: int
    warmup: int
    bulk_chunk: int
    drain_timeout_s: float
    log_dir: Path


class Monitor:
    """The harness's own autocommit connection: counts, CHECKPOINT, server CPU."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        row = self.conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        self.postmaster_pid = psutil.Process(int(row[0])).ppid()

    def count(self, query: str) -> int:
        row = self.conn.execute(query.encode()).fetchone()
        assert row is not None
        return int(row[0])

    def pg_cpu(self) -> float:
        return tree_cpu_seconds([self.postmaster_pid])

    def checkpoint(self) -> None:
        self.conn.execute("CHECKPOINT")

    def close(self) -> None:
        self.conn.close()


# The harness polls the server it measures: each count of completed tasks is a scan that grows
# with the table (3 ms on 10,000 rows, 25 ms on 100,000), so a fixed poll interval loads a deep
# backlog's server more than a short one's. Instead, a poll waits at least POLL_COST_FACTOR times
# as long as the previous count took (its share of one core stays under 5 %), never less than
# MIN_POLL_S, and the end time is interpolated between the last two counts.
FIRST_POLL_S = 0.005
MIN_POLL_S = 0.02
POLL_COST_FACTOR = 20


def log(*parts: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


# --------------------------------------------------------------------------- sending


def send_single(q: BenchQueue, mon: Monitor, p: Params) -> dict[str, float]:
    """N tasks, one public send call each; verified by counting rows."""
    q.clear()
    t0 = time.perf_counter()
    for i in range(p.n):
        q.send_one(i)
    dt = time.perf_counter() - t0
    _expect_rows(q, mon, p.n, "single send")
    log(f"{q.name}: send {p.n} in {dt:.2f}s = {p.n / dt:,.0f}/s")
    return {"send_per_s": p.n / dt}


INTERLEAVE_CHUNK = 250


def send_interleaved(systems: list[BenchQueue], mon: Monitor, p: Params) -> dict[str, float]:
    """N single sends per system, alternating chunks of 250 between the systems.

    An fsync on a shared virtual disk can take twice as long for a minute and then recover; when
    each system sends for ten seconds on its own, one may land in a slow minute and the other
    not. Alternating small chunks gives both the same disk, so their ratio is comparable.
    """
    for q in systems:
        q.clear()
    spent = {q.name: 0.0 for q in systems}
    for r, start in enumerate(range(0, p.n, INTERLEAVE_CHUNK)):
        order = systems if r % 2 == 0 else list(reversed(systems))
        for q in order:
            t0 = time.perf_counter()
            for i in range(start, min(start + INTERLEAVE_CHUNK, p.n)):
                q.send_one(i)
            spent[q.name] += time.perf_counter() - t0
    rates = {}
    for q in systems:
        _expect_rows(q, mon, p.n, "interleaved send")
        rates[q.name] = p.n / spent[q.name]
        q.clear()
    log("interleaved send: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items()))
    return rates


def send_bulk(q: BenchQueue, mon: Monitor, p: Params) -> dict[str, float]:
    """N tasks in chunks of `bulk_chunk` per call."""
    q.clear()
    t0 = time.perf_counter()
    for start in range(0, p.n, p.bulk_chunk):
        q.send_bulk(list(range(start, min(start + p.bulk_chunk, p.n))))
    dt = time.perf_counter() - t0
    _expect_rows(q, mon, p.n, "bulk send")
    log(f"{q.name}: bulk send {p.n} in {dt:.2f}s = {p.n / dt:,.0f}/s")
    return {"bulk_send_per_s": p.n / dt}


def _expect_rows(q: BenchQueue, mon: Monitor, n: int, what: str) -> None:
    got = mon.count(q.count_total_sql)
    if got != n:
        raise RuntimeError(f"{q.name} {what}: expected {n} rows, found {got}")


def enqueue_backlog(q: BenchQueue, n: int, chunk: int = 1000) -> None:
    """Untimed: fill the queue with n pending tasks using the bulk path."""
    q.clear()
    for start in range(0, n, chunk):
        q.send_bulk(list(range(start, min(start + chunk, n))))


# --------------------------------------------------------------------------- draining


def drain(
    q: BenchQueue, mon: Monitor, p: Params, n: int, tag: str, memory_marks: tuple[int, ...] = ()
) -> dict[str, Any]:
    """Start the workers on a backlog of n pending tasks and time until all are completed.

    CPU: the worker trees (incl. reaped children) sampled the moment all n are seen, and the
    PostgreSQL server tree as the difference of two samples around the drain.
    `memory_marks`: completed counts at which the worker tree's RSS is recorded.
    """
    pending = mon.count(q.count_total_sql) - mon.count(q.count_done_sql)
    if pending != n:
        raise RuntimeError(f"{q.name} drain expects {n} pending tasks, found {pending}")
    mon.checkpoint()
    workers = q.worker_group(p.processes, p.log_dir / f"{q.name}.{tag}.log")
    rss: dict[str, int] = {}
    marks = sorted(memory_marks)
    pg0 = mon.pg_cpu()
    t0 = time.perf_counter()
    workers.start()
    try:
        # Start-up: a cheap "any completed yet?" probe every 5 ms.
        while True:
            t_first = time.perf_counter()
            if mon.count(q.any_done_sql):
                break
            _check_drain(q, workers, t0, p, 0, n)
            time.sleep(FIRST_POLL_S)
        # Steady state: each count is timed when its query started; (t_prev, done_prev) is the
        # count before the latest one.
        t_counted = t_first_count = time.perf_counter()
        done = done_first = mon.count(q.count_done_sql)
        t_prev, done_prev, poll_s = t_counted, done, MIN_POLL_S
        while True:
            while marks and done >= marks[0]:
                rss[str(marks.pop(0))] = tree_rss_bytes(workers.pids)
            if done >= n:  # the last task finished between the last two counts
                t_end = t_prev + (t_counted - t_prev) * (n - done_prev) / max(1, done - done_prev)
                break
            t_prev, done_prev = t_counted, done
            _check_drain(q, workers, t0, p, done, n)
            time.sleep(poll_s)
            t_counted = time.perf_counter()
            done = mon.count(q.count_done_sql)
            poll_s = max(MIN_POLL_S, POLL_COST_FACTOR * (time.perf_counter() - t_counted))
        worker_cpu = tree_cpu_seconds(workers.pids)
        pg_cpu = mon.pg_cpu() - pg0
        rss_end = tree_rss_bytes(workers.pids)
    finally:
        workers.stop()
    failed = mon.count(q.count_failed_sql)
    if failed:
        raise RuntimeError(f"{q.name} drain: {failed} tasks failed")
    wall = t_end - t0
    steady_dt = t_end - t_first_count
    res: dict[str, Any] = {
        "drain_per_s": n / wall,
        "drain_wall_s": wall,
        "first_completion_s": t_first - t0,
        "steady_per_s": (n - done_first) / steady_dt if steady_dt > 0 else None,
        "worker_cpu_s_per_1k": worker_cpu / n * 1000,
        "pg_cpu_s_per_1k": pg_cpu / n * 1000,
        "total_cpu_s_per_1k": (worker_cpu + pg_cpu) / n * 1000,
        "worker_rss_mb_end": rss_end / MB,
        "worker_rss_mb_at": {k: v / MB for k, v in rss.items()},
        "needed_kill": workers.needed_kill,
    }
    log(
        f"{q.name}: drain {n} in {wall:.2f}s = {n / wall:,.0f}/s; first after "
        f"{res['first_completion_s']:.2f}s; steady {res['steady_per_s'] or 0:,.0f}/s; "
        f"CPU/1k worker {res['worker_cpu_s_per_1k']:.2f}s + pg {res['pg_cpu_s_per_1k']:.2f}s; "
        f"RSS {rss_end / MB:.0f} MB"
    )
    return res


def _check_drain(
    q: BenchQueue, workers: WorkerGroup, t0: float, p: Params, done: int, n: int
) -> None:
    if time.perf_counter() - t0 > p.drain_timeout_s:
        raise RuntimeError(f"{q.name} drain timeout: {done}/{n} after {p.drain_timeout_s:.0f}s")
    workers.check_alive()


def work_drain(q: BenchQueue, mon: Monitor, p: Params, work: str, n: int) -> dict[str, Any]:
    """A backlog of n tasks doing `work` (benchmarks/work.py, enqueued untimed), drained.

    The `orm` work is checked afterwards: one item row per task."""
    q.use_work(work)
    try:
        mon.conn.execute(f"TRUNCATE {ITEM_TABLE}".encode())
        enqueue_backlog(q, n)
        res = drain(q, mon, p, n, f"work-{work}")
        if work == "orm" and (items := mon.count(COUNT_ITEMS)) != n:
            raise RuntimeError(f"{q.name} orm drain: {items} item rows for {n} tasks")
        ceiling = ceiling_per_s(work, n, p.processes)
        res["ceiling_per_s"] = ceiling
        res["share_of_ceiling"] = res["drain_per_s"] / ceiling if ceiling else None
    finally:
        q.use_work("noop")
        q.clear()
    return res


# --------------------------------------------------------------------------- latency


def latency(q: BenchQueue, p: Params, timeout_s: float = 30.0) -> dict[str, float]:
    """Sequential send + wait-for-result round trips against idle workers."""
    q.clear()
    workers = q.worker_group(p.processes, p.log_dir / f"{q.name}.latency.log")
    workers.start()
    samples: list[float] = []
    try:
        for k in range(p.warmup):  # the first one doubles as the readiness probe
            q.send_and_wait(10_000_000 + k, 120.0 if k == 0 else timeout_s)
        time.sleep(0.5)  # let every worker settle back into its idle wait
        workers.check_alive()
        for i in range(p.n_latency):
            t0 = time.perf_counter()
            q.send_and_wait(i, timeout_s)
            samples.append((time.perf_counter() - t0) * 1000.0)
    finally:
        workers.stop()
    s = sorted(samples)
    res = {
        "latency_p50_ms": percentile(s, 0.50),
        "latency_p95_ms": percentile(s, 0.95),
        "latency_p99_ms": percentile(s, 0.99),
        "latency_max_ms": s[-1],
        "latency_mean_ms": statistics.fmean(s),
    }
    log(
        f"{q.name}: latency p50 {res['latency_p50_ms']:.2f} p95 {res['latency_p95_ms']:.2f} "
        f"p99 {res['latency_p99_ms']:.2f} max {res['latency_max_ms']:.2f} ms"
    )
    return res
