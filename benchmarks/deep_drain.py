"""Drain rate of a sample of pending tasks, and the claim's plan, on one database.

Both work on any depth of table: completions are counted among the tasks sent since a given
time (`status = 'COMPLETED' AND sent_at >= ...`, a range of horsies_task_status_idx that grows
with the sample, not with the finished rows before it).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.deep_cpu import OtherCpu, postmaster_pid
from benchmarks.horsies_queue import HorsiesQueue
from horsies_django.db.claim import CLAIM_STATEMENTS, QueueSlot, claim_request
from horsies_django.db.outbox import numbered

DONE_SINCE = "SELECT count(*) FROM horsies_task WHERE status = 'COMPLETED' AND sent_at >= %s"
# Failures other than WORKER_CRASHED: a worker stopped mid-backlog that outlives the grace
# period is killed, and the rescuer records its RUNNING tasks crashed (reported, not an error
# of the drain).
NOT_DONE_SINCE = """
SELECT count(*) FILTER (WHERE error_code IS DISTINCT FROM 'WORKER_CRASHED'),
       count(*) FILTER (WHERE error_code = 'WORKER_CRASHED')
FROM horsies_task WHERE status IN ('FAILED', 'CANCELLED', 'EXPIRED') AND sent_at >= %s
"""
RUNNING = "SELECT count(*) FROM horsies_task WHERE status = 'RUNNING'"
# The worker records outcomes in batches, one statement per batch: the rows one statement
# completed share their xmin. Counted afterwards (nothing runs during the drain), over the
# tasks sent since the backlog was that finished after the worker started.
FINISH_BATCHES = """
SELECT count(*), coalesce(max(n), 0), coalesce(sum(n), 0)
FROM (
    SELECT count(*) AS n FROM horsies_task
    WHERE status = 'COMPLETED' AND sent_at >= %s AND finished_at >= %s
    GROUP BY xmin::text
) AS batch
"""
# Polls wait 20x as long as the previous count took, at least MIN_POLL_S (the count's share of
# one core stays under 5 %); the end time is interpolated between the last two counts.
MIN_POLL_S = 0.02
POLL_COST_FACTOR = 20
TIMEOUT_S = 900.0


@dataclass(frozen=True)
class DrainSample:
    sample: int
    first_completion_s: float
    per_s_incl_startup: float
    steady_per_s: float
    needed_kill: bool  # the worker outlived the 20 s grace after SIGTERM
    left_running: int  # tasks still RUNNING right after the worker stopped
    crashed_so_far: int  # tasks sent since `since` recorded WORKER_CRASHED, up to now
    # Outcome statements of the drain (from the worker's start until it stopped), and the
    # completed rows per statement, mean and largest.
    finish_statements: int
    rows_per_finish: float
    rows_per_finish_max: int
    # Cores used on average by processes other than the server, harness and worker, from the
    # worker's start until the sample was done (benchmarks/deep_cpu.py); None with a remote
    # server.
    other_cores: float | None


def _count(conn: psycopg.Connection[Any], since: datetime) -> int:
    row = conn.execute(DONE_SINCE, (since,)).fetchone()
    assert row is not None
    return int(row[0])


def drain_sample(
    url: str, processes: int, sample: int, since: datetime, log_path: Path
) -> DrainSample:
    """Start a worker, time `sample` more completions of tasks sent since `since`, stop it."""
    with psycopg.connect(url, autocommit=True) as conn:
        # As benchmarks/workloads.py's drain: no dirty pages of the fill or a VACUUM left for
        # the checkpointer to write while the drain's commits wait for their fsyncs.
        conn.execute("CHECKPOINT")
        done0 = _count(conn, since)
        target = done0 + sample
        started_at = conn.execute("SELECT clock_timestamp()").fetchone()
        assert started_at is not None
        workers = HorsiesQueue(url).worker_group(processes, log_path)
        cpu = OtherCpu(postmaster_pid(conn.info.backend_pid))
        cpu_start = cpu.mark()
        t0 = time.perf_counter()
        workers.start()
        try:
            while True:
                t_first = time.perf_counter()
                if _count(conn, since) > done0:
                    break
                _check(workers, t0)
                time.sleep(0.005)
            t_counted = t_first_count = time.perf_counter()
            done = done_first = _count(conn, since)
            t_prev, done_prev, poll_s = t_counted, done, MIN_POLL_S
            while done < target:
                t_prev, done_prev = t_counted, done
                _check(workers, t0)
                time.sleep(poll_s)
                t_counted = time.perf_counter()
                done = _count(conn, since)
                poll_s = max(MIN_POLL_S, POLL_COST_FACTOR * (time.perf_counter() - t_counted))
            t_end = t_prev + (t_counted - t_prev) * (target - done_prev) / max(1, done - done_prev)
            cpu_end = cpu.mark()  # while the worker's processes still run
        finally:
            workers.stop()
        running = conn.execute(RUNNING).fetchone()
        row = conn.execute(NOT_DONE_SINCE, (since,)).fetchone()
        batches = conn.execute(FINISH_BATCHES, (since, started_at[0])).fetchone()
        assert row is not None
        assert running is not None
        assert batches is not None
        if row[0]:
            raise RuntimeError(f"{row[0]} sampled tasks failed; see {log_path}")
    return DrainSample(
        sample=sample,
        first_completion_s=t_first - t0,
        per_s_incl_startup=sample / (t_end - t0),
        steady_per_s=(target - done_first) / (t_end - t_first_count),
        needed_kill=workers.needed_kill,
        left_running=int(running[0]),
        crashed_so_far=int(row[1]),
        finish_statements=int(batches[0]),
        rows_per_finish=int(batches[2]) / max(1, int(batches[0])),
        rows_per_finish_max=int(batches[1]),
        other_cores=OtherCpu.cores(cpu_start, cpu_end),
    )


def _check(workers: Any, t0: float) -> None:
    if time.perf_counter() - t0 > TIMEOUT_S:
        raise RuntimeError(f"drain timeout after {TIMEOUT_S:.0f}s")
    workers.check_alive()


@dataclass(frozen=True)
class ClaimPlan:
    mode: str
    text: str
    shared_hit: int
    shared_read: int
    execution_ms: float
    uses_claim_index: bool
    claim_index_node: str | None  # how the claim index is read: "Index Scan" (FOR UPDATE: heap)
    seq_scan: bool
    claim_index_buffers: int  # of the scan of horsies_task_claim_idx alone
    estimated_cost: float

    @property
    def buffers(self) -> int:
        return self.shared_hit + self.shared_read


def explain_claim(url: str, limit: int, mode: str, lease_s: float = 60.0) -> ClaimPlan:
    """EXPLAIN (ANALYZE, BUFFERS) of the worker's claim from one queue, as it sends it.

    The worker prepares `CLAIM_STATEMENTS[name]` with `$n` placeholders and untyped text
    parameters (db/outbox.py); this does the same with PREPARE / EXECUTE under `mode` (the
    `plan_cache_mode`: force_custom_plan or force_generic_plan), in a transaction rolled back
    so nothing stays claimed.
    """
    name, params = claim_request(uuid.uuid4(), [QueueSlot("default", 0, limit)], limit, lease_s)
    text = numbered(CLAIM_STATEMENTS[name])
    args = ", ".join("'" + p.replace("'", "''") + "'" for p in params)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"PREPARE {name} AS {text}".encode())
        conn.execute(f"SET plan_cache_mode = {mode}".encode())
        plans: dict[str, Any] = {}
        for fmt in ("JSON", "TEXT"):
            conn.execute("BEGIN")
            rows = conn.execute(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT {fmt}) EXECUTE {name}({args})".encode()
            ).fetchall()
            conn.execute("ROLLBACK")
            plans[fmt] = rows
    doc = plans["JSON"][0][0]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    top = doc[0]["Plan"]
    text_plan = "\n".join(str(r[0]) for r in plans["TEXT"])
    return ClaimPlan(
        mode=mode,
        text=text_plan,
        shared_hit=int(top.get("Shared Hit Blocks", 0)),
        shared_read=int(top.get("Shared Read Blocks", 0)),
        execution_ms=float(doc[0]["Execution Time"]),
        uses_claim_index="horsies_task_claim_idx" in text_plan,
        claim_index_node=next(
            (
                str(n["Node Type"])
                for n in _nodes(top)
                if n.get("Index Name") == "horsies_task_claim_idx"
            ),
            None,
        ),
        seq_scan="Seq Scan on horsies_task" in text_plan,
        claim_index_buffers=sum(
            int(n.get("Shared Hit Blocks", 0)) + int(n.get("Shared Read Blocks", 0))
            for n in _nodes(top)
            if n.get("Index Name") == "horsies_task_claim_idx"
        ),
        estimated_cost=float(top["Total Cost"]),
    )


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = [node]
    for child in node.get("Plans", []):
        out.extend(_nodes(child))
    return out


PLAN_COUNTS = "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = %s"


def plan_cache_choice(
    url: str, limit: int, runs: int = 10, lease_s: float = 60.0
) -> dict[str, int]:
    """How PostgreSQL's plan cache plans the worker's claim after `runs` executions under the
    default `plan_cache_mode` (auto): the prepared statement's generic and custom plan counts.
    Each execution is rolled back."""
    name, params = claim_request(uuid.uuid4(), [QueueSlot("default", 0, limit)], limit, lease_s)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.pgconn.prepare(name.encode(), numbered(CLAIM_STATEMENTS[name]).encode())
        for _ in range(runs):
            conn.execute("BEGIN")
            conn.pgconn.exec_prepared(name.encode(), [p.encode() for p in params])
            conn.execute("ROLLBACK")
        row = conn.execute(PLAN_COUNTS, (name,)).fetchone()
    assert row is not None
    return {"executions": runs, "generic_plans": int(row[0]), "custom_plans": int(row[1])}
