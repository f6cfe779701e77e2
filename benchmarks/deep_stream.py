"""A steady stream of tasks drained by a worker while horsies_prune deletes finished rows.

One phase: a worker (`--processes` children), a sender of RATE tasks/s (send_many every 50 ms,
benchmarks/deep_procs.py) and, unless disabled, a prune loop deleting finished rows older than
AGE every EVERY seconds, all running for SECONDS on a table emptied first. Once a second the
harness reads, on its own connection:

- the completions of each whole second that has passed (by `finished_at`, read before prune
  can delete them: AGE is longer than the read's lag) and each one's claim latency
  (`claimed_at - enqueued_at`: time from eligible to claimed);
- the finished-row count, the pending count, and dead tuples / autovacuum runs of
  horsies_task and horsies_task_attempt from pg_stat_user_tables.

The first WARMUP_S seconds (worker start-up) and the last second are left out of the figures.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.horsies_queue import HorsiesQueue
from benchmarks.measure import percentile

REPO_ROOT = Path(__file__).resolve().parent.parent
WARMUP_S = 10
TABLES = ("horsies_task", "horsies_task_attempt")

# Completions per whole second in [from, to), with their claim latencies. sent_at bounds the
# scan to recent rows (horsies_task_sent_idx) while the unpruned table grows.
PER_SECOND = """
SELECT floor(extract(epoch FROM finished_at))::bigint AS s, count(*),
       array_agg(extract(epoch FROM claimed_at - enqueued_at)::float8)
FROM horsies_task
WHERE status IN ('COMPLETED', 'FAILED')
  AND finished_at >= to_timestamp(%s) AND finished_at < to_timestamp(%s)
  AND sent_at >= to_timestamp(%s) - interval '10 minutes'
GROUP BY 1
"""
FINISHED = "SELECT count(*) FROM horsies_task WHERE status IN ('COMPLETED', 'FAILED')"
PENDING = "SELECT count(*) FROM horsies_task WHERE status = 'PENDING'"
TABLE_STATS = """
SELECT relname, n_live_tup, n_dead_tup, autovacuum_count, pg_total_relation_size(relid)
FROM pg_stat_user_tables WHERE relname = ANY(%s)
"""

# Per-table storage parameters of the "tuned" phases (docs/operations.md, "Deep tables and
# vacuum"): vacuum after a fixed number of changed rows instead of a share of the table, and
# let each run do more work before it sleeps.
TUNED = {
    "autovacuum_vacuum_scale_factor": "0",
    "autovacuum_vacuum_threshold": "10000",
    "autovacuum_vacuum_insert_scale_factor": "0",
    "autovacuum_vacuum_insert_threshold": "10000",
    "autovacuum_analyze_scale_factor": "0",
    "autovacuum_analyze_threshold": "50000",
    "autovacuum_vacuum_cost_limit": "2000",
}


@dataclass(frozen=True)
class PhaseConfig:
    name: str
    prune: bool
    table_params: dict[str, str] = field(default_factory=dict)
    naptime: str | None = None  # server-wide autovacuum_naptime for the phase


@dataclass
class Samples:
    per_second: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    dead: dict[str, list[int]] = field(default_factory=dict)
    size: dict[str, list[int]] = field(default_factory=dict)
    autovacuums: dict[str, int] = field(default_factory=dict)


def _configure(conn: psycopg.Connection[Any], cfg: PhaseConfig) -> None:
    conn.execute("TRUNCATE horsies_task_attempt, horsies_task, horsies_worker CASCADE")
    for table in TABLES:
        conn.execute(f"ALTER TABLE {table} RESET ({', '.join(TUNED)})".encode())
        if cfg.table_params:
            params = ", ".join(f"{k} = {v}" for k, v in cfg.table_params.items())
            conn.execute(f"ALTER TABLE {table} SET ({params})".encode())
    if cfg.naptime:
        conn.execute(f"ALTER SYSTEM SET autovacuum_naptime = '{cfg.naptime}'".encode())
    else:
        conn.execute("ALTER SYSTEM RESET autovacuum_naptime")
    conn.execute("SELECT pg_reload_conf()")
    conn.execute("VACUUM ANALYZE horsies_task, horsies_task_attempt")


def _child(args: list[str], url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {"DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    import os

    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.deep_procs", *args],
        env={**os.environ, **env}, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def _sample(conn: psycopg.Connection[Any], s: Samples, read_from: float, read_to: float) -> None:
    for sec, count, lat in conn.execute(PER_SECOND, (read_from, read_to, read_from)).fetchall():
        s.per_second[int(sec)] = s.per_second.get(int(sec), 0) + int(count)
        s.latencies.extend(float(x) for x in lat)
    s.finished.append(int(conn.execute(FINISHED).fetchone()[0]))  # type: ignore[index]
    s.pending.append(int(conn.execute(PENDING).fetchone()[0]))  # type: ignore[index]
    for rel, _live, dead, autovacuums, size in conn.execute(TABLE_STATS, (list(TABLES),)):
        s.dead.setdefault(rel, []).append(int(dead))
        s.size.setdefault(rel, []).append(int(size))
        s.autovacuums[rel] = int(autovacuums)


def run_phase(
    url: str, cfg: PhaseConfig, *, seconds: int, rate: float, processes: int, age: str,
    every_s: float, log_dir: Path,
) -> dict[str, Any]:  # fmt: skip
    """One phase of `seconds`; returns its figures (see the module docstring)."""
    with psycopg.connect(url, autocommit=True) as conn:
        _configure(conn, cfg)
        av0 = {r[0]: int(r[3]) for r in conn.execute(TABLE_STATS, (list(TABLES),)).fetchall()}
        tag = cfg.name.replace(" ", "_").replace(",", "")
        workers = HorsiesQueue(url).worker_group(processes, log_dir / f"stream.{tag}.worker.log")
        workers.start()
        sender_log = log_dir / f"stream.{tag}.sender.log"
        prune_log = log_dir / f"stream.{tag}.prune.log"
        sender = _child(["stream", str(rate)], url, sender_log)
        pruner = _child(["prune", age, str(every_s)], url, prune_log) if cfg.prune else None
        s = Samples()
        t_start = time.time()
        read_from = float(int(t_start) + WARMUP_S)
        try:
            while time.time() < t_start + seconds:
                time.sleep(1.0 - time.time() % 1.0)  # the harness's own 1 s sampling tick
                workers.check_alive()
                read_to = float(int(time.time()) - 1)
                if read_to > read_from:
                    _sample(conn, s, read_from, read_to)
                    read_from = read_to
        finally:
            _stop(sender)
            if pruner is not None:
                _stop(pruner)
            workers.stop()
        av1 = {r[0]: int(r[3]) for r in conn.execute(TABLE_STATS, (list(TABLES),)).fetchall()}
    sent = _json_lines(sender_log)
    passes = (
        [p for p in _json_lines(prune_log) if p["at"] >= t_start + WARMUP_S] if cfg.prune else []
    )
    return _figures(cfg, s, sent, passes, {k: av1[k] - av0.get(k, 0) for k in av1}, seconds)


def _figures(
    cfg: PhaseConfig, s: Samples, sent: list[dict[str, Any]], passes: list[dict[str, Any]],
    autovacuums: dict[str, int], seconds: int,
) -> dict[str, Any]:  # fmt: skip
    counts = [s.per_second[k] for k in sorted(s.per_second)]
    if counts:  # every second from the first to the last read, zeros included
        first, last = min(s.per_second), max(s.per_second)
        counts = [s.per_second.get(k, 0) for k in range(first, last + 1)]
    lat = sorted(s.latencies)
    prune_s = sum(p["seconds"] for p in passes)
    span = (passes[-1]["at"] - passes[0]["at"]) if len(passes) > 1 else 0.0
    deleted = sum(p["tasks"] for p in passes[:-1]) if len(passes) > 1 else 0
    fig: dict[str, Any] = {
        "phase": cfg.name,
        "seconds": seconds,
        "table_params": cfg.table_params,
        "naptime": cfg.naptime or "default (1min)",
        "sent_per_s": sent[0]["per_s"] if sent else None,
        "completions_per_s": {
            "seconds": len(counts),
            "min": min(counts, default=0),
            "median": statistics.median(counts) if counts else 0,
            "max": max(counts, default=0),
            "zero_seconds": sum(1 for c in counts if c == 0),
        },
        "claim_latency_ms": {
            "p50": percentile(lat, 0.50) * 1000,
            "p99": percentile(lat, 0.99) * 1000,
            "max": (lat[-1] * 1000) if lat else None,
        },
        "finished_rows": {"last": s.finished[-1] if s.finished else None,
                          "max": max(s.finished, default=0)},
        "pending_max": max(s.pending, default=0),
        "dead_tuples_max": {k: max(v) for k, v in s.dead.items()},
        "dead_tuples_median": {k: statistics.median(v) for k, v in s.dead.items()},
        "total_size_mb_max": {k: max(v) / 2**20 for k, v in s.size.items()},
        "total_size_mb_last": {k: v[-1] / 2**20 for k, v in s.size.items()},
        "autovacuum_runs": autovacuums,
    }  # fmt: skip
    if cfg.prune:
        fig["prune"] = {
            "passes": len(passes),
            "deleted_tasks_per_s": deleted / span if span else None,
            "busy_share": prune_s / span if span else None,
            "pass_s_max": max((p["seconds"] for p in passes), default=None),
        }
    return fig
