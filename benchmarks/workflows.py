"""Workflows against plain tasks, in the same run: a 1,000-node fan-out/fan-in, 1,000
three-node chains, and the same number of plain no-op tasks, each drained by one worker of
`--processes` children. Reports tasks (nodes) per second and the ratio to plain tasks.

Advancing a node adds no round trip: the trigger that decides and enqueues its dependants
runs inside the statement that records its task's outcome.

    ./dev bench-workflows [--processes 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.horsies_queue import HorsiesQueue  # noqa: E402

FAN = 1_000
CHAINS = 1_000


def plain(q: HorsiesQueue) -> tuple[int, Callable[[], bool]]:
    for result in q.noop.send_many([{"i": i} for i in range(FAN)]):
        assert result.is_ok(), result
    return (
        FAN,
        lambda: _count("SELECT count(*) FROM horsies_task WHERE status = 'COMPLETED'") >= FAN,
    )


def fan_out_fan_in(q: HorsiesQueue) -> tuple[int, Callable[[], bool]]:
    from benchmarks.benchtasks.tasks import step
    from horsies_django import app

    root = step.node(node_id="root")(i=0)
    leaves = [step.node(waits_for=[root], node_id=f"leaf{k}")(i=k) for k in range(FAN - 2)]
    join = step.node(waits_for=[root, *leaves], node_id="join")(i=FAN)
    handle = app.workflow("fan", tasks=[root, *leaves, join], output=join).start().ok_value
    return FAN, lambda: handle.status().ok_value == "COMPLETED"


def chains(q: HorsiesQueue) -> tuple[int, Callable[[], bool]]:
    from benchmarks.benchtasks.tasks import step
    from horsies_django import app, from_node

    count = CHAINS
    for c in range(count):
        a = step.node(node_id="a")(i=c)
        b = step.node(node_id="b")(i=c, previous=from_node(a))
        last = step.node(node_id="c")(i=c, previous=from_node(b))
        assert app.workflow("chain", tasks=[a, b, last], output=last).start().is_ok()
    done = "SELECT count(*) FROM horsies_workflow WHERE status = 'COMPLETED'"
    return 3 * count, lambda: _count(done) >= count


def _count(query: str) -> int:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(query)
        return int(cur.fetchone()[0])


def drain(q: HorsiesQueue, load: Callable[[HorsiesQueue], Any], processes: int) -> float:
    """Tasks per second from the worker's start to the last completion."""
    q.clear()
    with connection_cursor() as cur:
        cur.execute("TRUNCATE horsies_workflow_node, horsies_workflow CASCADE")
    n, done = load(q)
    with tempfile.TemporaryDirectory() as logs:
        group = q.worker_group(processes, Path(logs) / "worker.log")
        start = time.perf_counter()
        group.start()
        while not done():
            time.sleep(0.01)  # polling interval of the measurement, outside the workers
        elapsed = time.perf_counter() - start
        group.stop()
    return float(n / elapsed)


def connection_cursor() -> Any:
    from django.db import connection

    return connection.cursor()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    import os

    q = HorsiesQueue(os.environ["DATABASE_URL"])
    q.prepare()
    loads = {
        "plain tasks": plain,
        "fan-out/fan-in, 1,000 nodes": fan_out_fan_in,
        "1,000 three-node chains": chains,
    }
    rates: dict[str, list[float]] = {name: [] for name in loads}
    for _ in range(args.repeats):
        for name, load in loads.items():
            rates[name].append(drain(q, load, args.processes))
    plain_rate = statistics.median(rates["plain tasks"])
    print(f"\nworkflows vs plain tasks, {args.processes} processes, median of {args.repeats}\n")
    print("| workload | tasks/s incl. start-up | x plain tasks |")
    print("|---|---:|---:|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} | {median / plain_rate:.2f} |")
    q.clear()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
