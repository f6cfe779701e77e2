"""What a benchmark task does, the same for horsies_django and the raw-SQL baseline.

- `noop`: nothing (the default: the figures measure the queue alone);
- `orm`: one INSERT of a user model row (`benchmarks.benchproject.items.Item`): through the ORM
  in a horsies_django task, as plain SQL in the baseline's worker, each in its own autocommit
  transaction right before the task is marked done;
- `io`: 10 ms of waiting (`time.sleep(0.01)` stands for I/O);
- `mixed`: 1 ms, except every 20th task (5 %, by task index) 1 s.
"""

from __future__ import annotations

import time
from typing import Final

WORKS: Final = ("noop", "orm", "io", "mixed")
ITEM_TABLE: Final = "items_item"
INSERT_ITEM: Final = f"INSERT INTO {ITEM_TABLE} (i, created_at) VALUES (%s, now())"
COUNT_ITEMS: Final = f"SELECT count(*) FROM {ITEM_TABLE}"


def pause_s(work: str, i: int) -> float:
    """Seconds task number `i` of `work` waits."""
    if work == "io":
        return 0.01
    if work == "mixed":
        return 1.0 if i % 20 == 19 else 0.001
    return 0.0


def wait(work: str, i: int) -> None:
    seconds = pause_s(work, i)
    if seconds:
        time.sleep(seconds)


def ceiling_per_s(work: str, n: int, processes: int) -> float | None:
    """Tasks/s if every process were busy with the work all the time (None: no waiting)."""
    total = sum(pause_s(work, i) for i in range(n))
    return n * processes / total if total else None
