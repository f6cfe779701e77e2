"""Benchmark horsies_django against a raw-SQL baseline measured in the same run.

    DATABASE_URL=postgresql://... python benchmarks/run.py [--n 10000] [--repeats 3]
        [--processes 4] [--quick] [--big]

Per repeat, for each system (order alternated between repeats): bulk send (send_many, chunks
of 1,000), single send, drain of those N tasks (start-up reported apart, CPU of worker and
PostgreSQL trees), then sequential send→result latency against idle workers. `--big` adds a
100,000-task backlog drain per system and repeat, with the worker tree's RSS after 10k and 100k
tasks. `--workloads noop,orm,io,mixed` adds, per repeat and system, a drain of `--work-n` tasks
doing real work (benchmarks/work.py: one ORM insert, 10 ms of I/O, 95 % 1 ms / 5 % 1 s); the
default, `noop`, is the run above alone.
Prints a table (medians over repeats, ratios to the baseline of the same repeat) and writes
`benchmarks/results/<timestamp>.json`. Use a dedicated PostgreSQL server: its CPU is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import environment, report, startup, work_report  # noqa: E402
from benchmarks.baseline import RawSqlQueue  # noqa: E402
from benchmarks.horsies_queue import SETTINGS, HorsiesQueue  # noqa: E402
from benchmarks.work import WORKS  # noqa: E402
from benchmarks.workloads import (  # noqa: E402
    BenchQueue,
    Monitor,
    Params,
    drain,
    enqueue_backlog,
    latency,
    log,
    send_bulk,
    send_interleaved,
    send_single,
    work_drain,
)

BIG_N = 100_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="tasks per workload (10000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs to take medians of (3)")
    parser.add_argument("--processes", type=int, default=4, help="worker concurrency (4)")
    parser.add_argument("--latency-samples", type=int, default=300, help="round trips (300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed round trips first (20)")
    parser.add_argument("--bulk-chunk", type=int, default=1000, help="send_many size (1000)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: n=1000, 1 repeat, 50 samples"
    )
    parser.add_argument(
        "--big", action="store_true", help=f"add a {BIG_N:,}-task backlog drain per repeat"
    )
    parser.add_argument("--only", choices=["horsies_django", "raw_sql"], help="one system only")
    parser.add_argument(
        "--workloads",
        default="noop",
        help=f"comma-separated, of {', '.join(WORKS)} (noop: the sends, drain and latency "
        "above; the others: a drain of --work-n tasks doing that work; see benchmarks/work.py)",
    )
    parser.add_argument("--work-n", type=int, default=4_000, help="tasks per work drain (4000)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats, args.latency_samples = 1000, 1, 50
    if args.n < 1 or args.repeats < 1 or args.processes < 1:
        parser.error("--n, --repeats and --processes must be at least 1")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if not args.workloads or set(args.workloads) - set(WORKS):
        parser.error(f"--workloads takes a comma-separated list of {', '.join(WORKS)}")
    return args


def one_repeat(q: BenchQueue, mon: Monitor, p: Params) -> dict[str, Any]:
    """Bulk send, single send, drain of the N single-sent tasks, latency."""
    res: dict[str, Any] = {}
    res.update(send_bulk(q, mon, p))
    res.update(send_single(q, mon, p))
    res.update(drain(q, mon, p, p.n, "drain"))
    res.update(latency(q, p))
    return res


def startup_of_drain(q: BenchQueue, p: Params, url: str) -> dict[str, Any]:
    """horsies_django's start-up steps in the drain just run, and the set-up probe's split."""
    if q.name != HorsiesQueue.name:
        return {}
    env = {"DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT), "DJANGO_SETTINGS_MODULE": SETTINGS}
    return {
        "startup": startup.read_trace(p.log_dir / f"{q.name}.drain.log") or {},
        "setup_probe": startup.probe_setup(env, REPO_ROOT),
    }


def big_drain(q: BenchQueue, mon: Monitor, p: Params) -> dict[str, Any]:
    log(f"{q.name}: enqueueing a {BIG_N:,}-task backlog (untimed)")
    enqueue_backlog(q, BIG_N)
    marks = (min(10_000, BIG_N), BIG_N)
    res = drain(q, mon, p, BIG_N, "big", memory_marks=marks)
    q.clear()
    return res


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("DATABASE_URL is not set: point it at a dedicated PostgreSQL database, or run\n"
              "  python -m horsies_django.embedded_pg run -- python benchmarks/run.py",
              file=sys.stderr)  # fmt: skip
        return 2
    log_dir = Path(tempfile.mkdtemp(prefix="horsies-bench-logs-"))
    p = Params(
        n=args.n, processes=args.processes, n_latency=args.latency_samples, warmup=args.warmup,
        bulk_chunk=args.bulk_chunk, drain_timeout_s=900.0, log_dir=log_dir,
    )  # fmt: skip
    systems: list[BenchQueue] = [HorsiesQueue(url), RawSqlQueue(url)]
    if args.only:
        systems = [s for s in systems if s.name == args.only]
    mon = Monitor(url)
    started = time.time()
    source = environment.source_fingerprint(REPO_ROOT)
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in systems}
    big: dict[str, list[dict[str, Any]]] = {}
    works = [w for w in args.workloads if w != "noop"]
    work_runs: dict[str, dict[str, list[dict[str, Any]]]] = {w: {} for w in works}
    try:
        for q in systems:
            q.prepare()
        for r in range(args.repeats):
            order = systems if r % 2 == 0 else list(reversed(systems))
            for q in order if "noop" in args.workloads else []:
                log(f"== repeat {r + 1}/{args.repeats}: {q.name} (worker logs in {log_dir})")
                runs[q.name].append(one_repeat(q, mon, p))
                runs[q.name][-1].update(startup_of_drain(q, p, url))
                q.clear()
            if "noop" in args.workloads:
                for name, rate in send_interleaved(order, mon, p).items():
                    runs[name][-1]["send_interleaved_per_s"] = rate
            for work in works:
                for q in order:
                    log(f"== repeat {r + 1}/{args.repeats}: {q.name}, {work} work")
                    res = work_drain(q, mon, p, work, args.work_n)
                    work_runs[work].setdefault(q.name, []).append(res)
            for q in order if args.big else []:
                big.setdefault(q.name, []).append(big_drain(q, mon, p))
    finally:
        for q in systems:
            q.close()
        pg_settings = environment.postgres_settings(mon.conn)
        mon.close()
    noop = "noop" in args.workloads
    summary = report.summarise(runs, big) if noop else {}
    if noop:
        summary["startup"] = startup.summarise(runs)
    work_summary = work_report.summarise(work_runs)
    result: dict[str, Any] = {
        "timestamp_utc": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started)),
        "duration_s": time.time() - started,
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": environment.machine(),
        "postgres": pg_settings,
        "packages": environment.packages(),
        "source": source,
        "runs": runs,
        "big": big,
        "summary": summary,
        "work_runs": work_runs,
        "work_summary": work_summary,
    }
    m, pg = result["machine"], result["postgres"]
    print(
        f"\nmachine: {m['nproc']} CPU ({m['cpu_model']}), {m['mem_total']} RAM, load "
        f"{', '.join(f'{x:.1f}' for x in m['loadavg'])}; {pg['version'].split(' on ')[0]} "
        f"(fsync={pg['fsync']}, shared_buffers={pg['shared_buffers']}); horsies_django "
        f"{source['git_commit']} sources {source['sources_sha1']}"
    )
    if noop:
        print(report.render(summary, args))
        print("\n" + startup.render(summary["startup"]))
    if works:
        print(work_report.render(work_summary, args.work_n, args.repeats, args.processes))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{result['timestamp_utc']}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
