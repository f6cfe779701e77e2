"""The child processes of the deep-table bench, each a Django process of the bench project:

    python -m benchmarks.deep_procs backlog N        send N no-op tasks with send_many (1,000
                                                     per call), print the rate
    python -m benchmarks.deep_procs stream RATE      send RATE tasks/s with send_many, one
                                                     call per 50 ms tick, until SIGTERM
    python -m benchmarks.deep_procs prune AGE EVERY  call horsies_prune with every age = AGE
                                                     every EVERY seconds until SIGTERM; one
                                                     JSON line per pass on stdout

DATABASE_URL selects the database. Each prints JSON lines only, for the parent to read.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from types import FrameType

REPO_ROOT = Path(__file__).resolve().parent.parent
TICK_S = 0.05
BACKLOG_CHUNK = 1_000


class Stop:
    """Set by SIGTERM/SIGINT: the loops end after their current step."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def _stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.benchproject.settings")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()


def _send(start: int, count: int) -> None:
    from benchmarks.benchtasks.tasks import noop

    for result in noop.send_many([{"i": i} for i in range(start, start + count)]):
        if result.is_err():
            raise RuntimeError(f"send_many failed: {result.err_value}")


def backlog(n: int) -> None:
    t0 = time.perf_counter()
    for start in range(0, n, BACKLOG_CHUNK):
        _send(start, min(BACKLOG_CHUNK, n - start))
    dt = time.perf_counter() - t0
    print(json.dumps({"sent": n, "seconds": dt, "per_s": n / dt}), flush=True)


def stream(rate: float) -> None:
    """Keep the total sent at rate x elapsed, topping up once per tick (a late tick catches up)."""
    stop = Stop()
    t0 = time.monotonic()
    sent = tick = 0
    while not stop.requested:
        tick += 1
        due = int(rate * (time.monotonic() - t0)) - sent
        if due > 0:
            _send(sent, due)
            sent += due
        pause = t0 + tick * TICK_S - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    dt = time.monotonic() - t0
    print(json.dumps({"sent": sent, "seconds": dt, "per_s": sent / dt}), flush=True)


PRUNED = re.compile(r"^(completed|failed|cancelled|expired)\s.*?(\d+) task\(s\), (\d+) attempt")


def prune(age: str, every_s: float) -> None:
    from django.core.management import call_command

    stop = Stop()
    while not stop.requested:
        out = io.StringIO()
        t0 = time.perf_counter()
        started = time.time()
        call_command(
            "horsies_prune",
            *(f"--{s}-older-than={age}" for s in ("completed", "failed", "cancelled", "expired")),
            stdout=out,
        )
        dt = time.perf_counter() - t0
        tasks = attempts = 0
        for line in out.getvalue().splitlines():
            if m := PRUNED.match(line):
                tasks, attempts = tasks + int(m[2]), attempts + int(m[3])
        pass_ = {"at": started, "seconds": dt, "tasks": tasks, "attempts": attempts}
        print(json.dumps(pass_), flush=True)
        end = time.monotonic() + max(0.0, every_s - dt)
        while not stop.requested and time.monotonic() < end:
            time.sleep(min(0.1, end - time.monotonic()))


def main(argv: list[str]) -> None:
    _setup()
    if argv[0] == "backlog":
        backlog(int(argv[1]))
    elif argv[0] == "stream":
        stream(float(argv[1]))
    elif argv[0] == "prune":
        prune(argv[1], float(argv[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
