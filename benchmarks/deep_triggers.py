"""The outcome triggers' cost against the rows of one UPDATE, first in a session or after an
empty one, as migrated and with a candidate SQL file.

    python benchmarks/deep_triggers.py [--rows 100,300,1000,2000] [--repeats 3]
        [--candidate-sql reverse:0012_linear_outcome_triggers]

On the database of DATABASE_URL (migrated here; use a throwaway one: its tasks are replaced),
10,000 PENDING tasks are sent; then, per row count N, an `UPDATE` of N tasks to COMPLETED is
timed in a fresh session, once as the session's first statement and once after an `UPDATE` of
no rows (as the worker's outcome connection starts: its warm-up runs FINISH on an empty batch).
Every UPDATE is rolled back. The statement-level triggers of horsies_task plan their queries
at their first execution in a session; the medians show what a plan made for no rows costs a
statement of N rows. Then the candidate SQL is run and the same is measured again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import psycopg  # noqa: E402

from benchmarks.candidate_sql import read_candidate  # noqa: E402
from benchmarks.deep import _backlog, _migrate, _sql  # noqa: E402

TASKS = 10_000
EMPTY = "UPDATE horsies_task SET status = 'COMPLETED' WHERE false"
SOME = """
UPDATE horsies_task SET status = 'COMPLETED'
WHERE id IN (SELECT id FROM horsies_task WHERE status = 'PENDING' ORDER BY id LIMIT %s)
"""


def _update_ms(url: str, rows: int, after_empty: bool) -> float:
    with psycopg.connect(url) as conn:
        if after_empty:
            conn.execute(EMPTY)
        t0 = time.perf_counter()
        conn.execute(SOME, (rows,))
        elapsed = time.perf_counter() - t0
        conn.rollback()
    return elapsed * 1000


def measure(url: str, rows: list[int], repeats: int) -> list[tuple[int, float, float]]:
    """Per row count: the median ms as a session's first statement and after an empty one."""
    out = []
    for n in rows:
        first = statistics.median(_update_ms(url, n, False) for _ in range(repeats))
        after = statistics.median(_update_ms(url, n, True) for _ in range(repeats))
        out.append((n, first, after))
    return out


def _table(title: str, figures: list[tuple[int, float, float]]) -> str:
    lines = [f"\n{title}", "| rows | first in session (ms) | after an empty UPDATE (ms) | ratio |"]
    lines.append("|---:|---:|---:|---:|")
    lines += [f"| {n:,} | {a:.1f} | {b:.1f} | {b / a:.1f} |" for n, a, b in figures]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="100,300,1000,2000", help="row counts (100,300,1000,2000)")
    p.add_argument("--repeats", type=int, default=3, help="timings per median (3)")
    p.add_argument(
        "--candidate-sql", default=None, metavar="FILE|reverse:MIGRATION",
        help="SQL to compare with",
    )  # fmt: skip
    args = p.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    rows = [int(x) for x in args.rows.split(",")]
    _migrate(url)
    _sql(url, "TRUNCATE horsies_task_attempt, horsies_task, horsies_worker CASCADE")
    _backlog(url, TASKS)
    _sql(url, "VACUUM ANALYZE horsies_task")
    print(_table("as migrated", measure(url, rows, args.repeats)))
    if args.candidate_sql:
        _sql(url, read_candidate(args.candidate_sql))
        print(_table(f"with {args.candidate_sql}", measure(url, rows, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
