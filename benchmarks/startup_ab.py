"""Time to first completion of two source trees, in alternating pairs (before/after a change).

    DATABASE_URL=... python benchmarks/startup_ab.py BEFORE_DIR AFTER_DIR [--pairs 12]

Each directory holds a `horsies_django/` package (e.g. `git archive <commit> | tar -x -C DIR`);
it is put first on the worker's `PYTHONPATH`, so the interpreter and every other package are
the same for both. For each pair and each tree in turn: 2,000 no-op tasks are sent with the
benchmark adapter's project (`benchmarks/peer_adapter/horsies_django`), a `horsies_worker
--processes 4` is spawned, and the time from just before the spawn to the first COMPLETED row
(polled every 5 ms, as the shared harness does) is taken; the worker is then stopped. Prints
each tree's median and times, the median of the per-pair ratios (after / before), and the
median of each step of the worker's start-up trace (ms since its process started). Use a
database of its own: its tables are truncated. Run it under the benchmark lock.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

PROJECT = Path(__file__).resolve().parent / "peer_adapter" / "horsies_django"
SEND = (
    "import django; django.setup(); from benchtasks.tasks import noop; "
    "noop.send_many([{'i': i} for i in range(2000)])"
)


def project_env(tree: str | None, trace: Path) -> dict[str, str]:
    path = [tree] if tree else []
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*path, str(PROJECT)]),
        "DJANGO_SETTINGS_MODULE": "benchproj.settings",
        "HORSIES_WORKER_STARTUP_TRACE": str(trace),
    }


def first_completion(conn: psycopg.Connection[tuple[object, ...]], env: dict[str, str]) -> float:
    """Send the backlog, spawn a worker, return the seconds to its first completion."""
    conn.execute("TRUNCATE horsies_task_attempt, horsies_task, horsies_worker CASCADE")
    subprocess.run([sys.executable, "-c", SEND], cwd=PROJECT, env=env, check=True)
    argv = [sys.executable, "manage.py", "horsies_worker", "--processes=4", "--verbosity=0"]
    started = time.perf_counter()
    worker = subprocess.Popen(argv, cwd=PROJECT, env=env)
    try:
        query = "SELECT 1 FROM horsies_task WHERE status = 'COMPLETED' LIMIT 1"
        while conn.execute(query).fetchone() is None:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}")
            time.sleep(0.005)
        return time.perf_counter() - started
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="directory holding the 'before' horsies_django/")
    parser.add_argument("after", help="directory holding the 'after' horsies_django/")
    parser.add_argument("--pairs", type=int, default=12)
    args = parser.parse_args(argv)
    trees = {"before": str(Path(args.before).resolve()), "after": str(Path(args.after).resolve())}
    times: dict[str, list[float]] = {name: [] for name in trees}
    steps: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp, "startup.json")
        migrate = [sys.executable, "manage.py", "migrate", "-v0"]
        subprocess.run(migrate, cwd=PROJECT, env=project_env(trees["after"], trace), check=True)
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            for _ in range(args.pairs):
                for name, tree in trees.items():
                    times[name].append(first_completion(conn, project_env(tree, trace)))
                    steps[name].append(json.loads(trace.read_text())["since_start_ms"])
    for name in trees:
        listed = " ".join(f"{t:.3f}" for t in times[name])
        print(f"{name}: median {statistics.median(times[name]):.3f} s ({listed})")
        keys = list(steps[name][0])
        medians = {k: statistics.median(s.get(k, 0.0) for s in steps[name]) for k in keys}
        print("  steps (ms since start): " + ", ".join(f"{k} {v:.0f}" for k, v in medians.items()))
    ratios = [a / b for b, a in zip(times["before"], times["after"], strict=True)]
    print(f"after / before, median of {len(ratios)} pairs: {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
