"""Where a send's time goes: the Python side per call, and the server side per statement.

    python benchmarks/send_profile.py client            # no database needed
    python benchmarks/send_profile.py server            # DATABASE_URL: a throwaway server

`client`: process CPU per `noop.send(i=i)` and per item of `noop.send_many([...])` (calls of
100, as the shared harness makes them), with the INSERT replaced by a no-op: the Python cost of
validating, encoding, signing and building results, without the round trip. `--repo PATH` times
the horsies_django of another checkout (e.g. a `git archive` of an older commit).

`server`: median `EXPLAIN ANALYZE` execution time of one 100-row `send_many` INSERT and one
single-send INSERT, against the raw-SQL baseline's (benchmarks/baseline.py: the shared harness's
table, index, trigger and statements), then both again without the NOTIFY trigger and without
the admin's three indexes (put back afterwards), and the bulk SELECT alone: what a row costs the
server, part by part. Each statement runs in its own transaction, as the harness's sends do.
Then the backend's CPU time per statement in a tight loop of prepared autocommit INSERTs on one
connection (read from /proc/<pid>/schedstat, so the server must run on this machine), ours and
the baseline's alternating, median of `--runs` rounds: what EXPLAIN leaves out (the protocol,
the commit, the notification queue) but the WAL flush, which is the same for both and whose
system time would swamp the difference (`synchronous_commit = off` for the loop). Uses the
benchmark project's settings and migrates the database.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.benchproject.settings")

CHUNK = 100
ADMIN_INDEXES = ("horsies_task_sent_idx", "horsies_task_status_idx", "horsies_task_name_idx")
RAW_ONE = "INSERT INTO baseline_job (payload) VALUES (%s)"  # the shared harness's raw send


def _median_us(runs: int, once: Callable[[], float]) -> float:
    return statistics.median(once() for _ in range(runs))


def client(runs: int) -> None:
    """Python CPU per send and per send_many item, the INSERT replaced by a no-op."""
    os.environ.setdefault("DATABASE_URL", "postgresql://unused@127.0.0.1:1/unused")
    import django

    django.setup()
    from benchmarks.benchtasks.tasks import noop
    from horsies_django.db import producer_queries

    def no_insert(*args: Any, **kwargs: Any) -> None:
        return None

    producer_queries.insert_task = no_insert
    producer_queries.insert_tasks = no_insert

    def single(n: int = 20_000) -> float:
        start = time.process_time()
        for i in range(n):
            if noop.send(i=i).is_err():
                raise RuntimeError("send failed")
        return (time.process_time() - start) / n * 1e6

    def bulk(n: int = 100_000) -> float:
        start = time.process_time()
        for first in range(0, n, CHUNK):
            for result in noop.send_many([{"i": i} for i in range(first, first + CHUNK)]):
                if result.is_err():
                    raise RuntimeError("send_many failed")
        return (time.process_time() - start) / n * 1e6

    import horsies_django

    print(f"horsies_django from {Path(horsies_django.__file__).parent}")
    print(f"send():                  {_median_us(runs, single):6.2f} us of Python CPU per call")
    print(f"send_many({CHUNK}) per item: {_median_us(runs, bulk):6.2f} us of Python CPU")


def _on_cpu_s(pid: int) -> float:
    """Seconds process `pid` has run on a CPU (the first field of /proc/<pid>/schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def server(runs: int) -> None:
    """EXPLAIN ANALYZE execution times: ours against the harness's raw SQL, and the parts."""
    import django
    import psycopg
    from psycopg.types.json import Jsonb

    django.setup()
    from django.core.management import call_command
    from uuid_utils import uuid7

    from benchmarks.baseline import INSERT_MANY, SCHEMA
    from benchmarks.benchtasks.tasks import noop
    from horsies_django.db import producer_queries as pq

    call_command("migrate", verbosity=0, interactive=False)
    options = noop.definition.options_json
    conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    conn.execute(SCHEMA)
    counter = iter(range(10**9))

    def bulk_params() -> tuple[Any, ...]:
        first = next(counter) * CHUNK
        ids = [str(uuid7()) for _ in range(CHUNK)]
        kwargs = [f'{{"i":{i}}}' for i in range(first, first + CHUNK)]
        shas = [hashlib.sha256(k.encode()).hexdigest() for k in kwargs]
        joined = (",".join(ids), f"[{','.join(kwargs)}]", ",".join(shas))
        return ("bench.noop", "default", 50, None, None, 0, options, *joined)

    def single_params() -> tuple[Any, ...]:
        kwargs = f'{{"i":{next(counter)}}}'
        task_id = str(uuid7())
        return (task_id, "bench.noop", "default", 50, kwargs, 0.0, None, None, 0, options, "0" * 64)

    def executed(sql: str, params: Callable[[], tuple[Any, ...]]) -> float:
        def once() -> float:
            plan = conn.execute("EXPLAIN (ANALYZE, TIMING OFF) " + sql, params()).fetchall()
            found = re.search(r"Execution Time: ([\d.]+)", "\n".join(r[0] for r in plan))
            assert found is not None
            return float(found.group(1)) * 1000

        for _ in range(30):  # warm caches and the plan
            once()
        return _median_us(runs, once)

    def show(label: str, us: float) -> None:
        print(f"{label:66s} {us:7.1f} us")

    def raw_bulk_params() -> tuple[Any, ...]:
        return (list(range(CHUNK)),)

    raw_bulk = executed(INSERT_MANY, raw_bulk_params)
    ours_bulk = executed(pq.INSERT_TASKS_BULK, bulk_params)
    show(f"raw SQL, INSERT ... unnest of {CHUNK} rows", raw_bulk)
    show(f"send_many's INSERT of {CHUNK} rows", ours_bulk)
    show("raw SQL, one-row INSERT", executed(RAW_ONE, lambda: (Jsonb({"i": 1}),)))
    show("send()'s INSERT", executed(pq.INSERT_TASK, single_params))
    conn.execute("ALTER TABLE horsies_task DISABLE TRIGGER horsies_task_new_insert")
    show(
        "send_many's INSERT without the NOTIFY trigger", executed(pq.INSERT_TASKS_BULK, bulk_params)
    )
    show("send()'s INSERT without the NOTIFY trigger", executed(pq.INSERT_TASK, single_params))
    conn.execute("ALTER TABLE horsies_task ENABLE TRIGGER horsies_task_new_insert")
    definitions = [
        row[0]
        for row in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = ANY(%s)", (list(ADMIN_INDEXES),)
        )
    ]
    for index in ADMIN_INDEXES:
        conn.execute(f"DROP INDEX {index}")
    show(
        "send_many's INSERT without the admin's 3 indexes",
        executed(pq.INSERT_TASKS_BULK, bulk_params),
    )
    show("send()'s INSERT without the admin's 3 indexes", executed(pq.INSERT_TASK, single_params))
    for definition in definitions:
        conn.execute(definition)
    select = pq.INSERT_TASKS_BULK[pq.INSERT_TASKS_BULK.index("SELECT") :]
    show("send_many's SELECT alone (no row written)", executed(select, bulk_params))

    def backend_cpu(sql: str, params: Callable[[], tuple[Any, ...]], n: int) -> float:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as own:
            own.execute("SET synchronous_commit = off")  # the WAL flush: the same for both
            batch = [params() for _ in range(n + 50)]
            for p in batch[:50]:  # warm up, and past psycopg's threshold for preparing
                own.execute(sql, p, prepare=True)
            before = _on_cpu_s(own.info.backend_pid)
            for p in batch[50:]:
                own.execute(sql, p, prepare=True)
            return (_on_cpu_s(own.info.backend_pid) - before) / n * 1e6

    rounds = max(1, runs // 40)
    loops: dict[str, list[float]] = {}
    for _ in range(rounds):
        for label, sql, params, n in (
            ("raw SQL, one-row INSERT", RAW_ONE, lambda: (Jsonb({"i": 1}),), 2000),
            ("send()'s INSERT", pq.INSERT_TASK, single_params, 2000),
            (f"raw SQL, INSERT ... unnest of {CHUNK} rows", INSERT_MANY, raw_bulk_params, 200),
            (f"send_many's INSERT of {CHUNK} rows", pq.INSERT_TASKS_BULK, bulk_params, 200),
        ):
            loops.setdefault(label, []).append(backend_cpu(sql, params, n))
    for label, values in loops.items():
        show(f"backend CPU per statement: {label}", statistics.median(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("side", choices=["client", "server"])
    parser.add_argument(
        "--runs",
        type=int,
        default=5,
        help="medians of 5 runs (client), of 5 x 40 plans and 5 CPU loops (server)",
    )
    parser.add_argument("--repo", type=Path, default=REPO_ROOT, help="checkout to import from")
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo))
    if args.side == "client":
        client(args.runs)
    else:
        server(args.runs * 40)


if __name__ == "__main__":
    main()
