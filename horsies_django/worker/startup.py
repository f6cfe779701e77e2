"""The worker's start-up timeline: logged as one line, and written as JSON when asked.

Each step is stamped once with the wall clock, and durations count from the moment the OS
started the process (so the interpreter's start, imports and `django.setup()` are included; the
kernel records that moment to a clock tick, 10 ms on most Linux systems). When all children are
ready the worker logs, at INFO, `worker ready in X ms (...)` with each step's share, and after the
first task it records, when that task was claimed and completed. With the environment variable
`HORSIES_WORKER_STARTUP_TRACE` set to a file path, the stamps are also written there as JSON
(`benchmarks/run.py` reads them).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Final

logger = logging.getLogger("horsies_django.worker")

TRACE_ENV: Final = "HORSIES_WORKER_STARTUP_TRACE"

# The steps in the order they happen, each with what the time since the previous one was spent on.
STEPS: Final = {
    "django_ready": "python and django.setup",  # the command is loaded
    "checks_done": "system checks",  # the command's handle() starts
    "fork_server": "fork server",  # the pool's fork server is running
    "children_started": "children started",  # the pool's processes are started
    "connected": "connections",  # connections open, worker registered, catalogue refreshed
    "first_child_ready": "first child ready",
    "children_ready": "all children ready",
    "first_claim": "first claim",  # the first claimed task is in hand
    "first_completion": "first outcome recorded",
}
READY_STEPS: Final = tuple(STEPS)[: tuple(STEPS).index("children_ready") + 1]


def process_started_at() -> float | None:
    """When the OS started this process (epoch seconds), or None where it cannot tell."""
    try:
        with open("/proc/self/stat", encoding="utf-8", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # starttime: clock ticks after boot (field 22 of stat)
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, IndexError, ValueError, AttributeError):
        return None
    return time.time() - (since_boot - ticks / os.sysconf("SC_CLK_TCK"))


class Timeline:
    """The stamps of one worker's start-up."""

    def __init__(self) -> None:
        self.process_started = process_started_at()
        self.stamps: dict[str, float] = {}
        self.fork_server = ""  # how the fork server started: "fork" or "spawn"
        self.trace_path = os.environ.get(TRACE_ENV) or None

    @property
    def complete(self) -> bool:
        return "first_completion" in self.stamps

    def mark(self, step: str) -> None:
        """Stamp `step` (once); when the children are ready or the first outcome is recorded,
        write the trace file, then log the summary (a reader of the log finds the file written)."""
        if step in self.stamps:
            return
        assert step in STEPS, step
        self.stamps[step] = time.time()
        if step in ("children_ready", "first_completion"):
            self.write()
        if step == "children_ready":
            logger.info("worker ready in %s", self.summary(READY_STEPS))
        elif step == "first_completion":
            logger.info(
                "first task claimed %s and completed %s after the worker process started",
                self._since_start("first_claim"),
                self._since_start("first_completion"),
            )

    def summary(self, steps: tuple[str, ...]) -> str:
        """`612 ms (python and django.setup 420 ms, ...)`: the total, then the time from each
        step reached to the next, in the order they were reached."""
        parts, previous = [], self.process_started
        for at, step in sorted((self.stamps[s], s) for s in steps if s in self.stamps):
            if previous is not None:
                parts.append(f"{STEPS[step]} {_ms(at - previous)}")
            previous = at
        total = self._since_start(steps[-1])
        how = f"; fork server by {self.fork_server}" if self.fork_server else ""
        return f"{total} ({', '.join(parts)}{how})"

    def as_json(self) -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "process_started": self.process_started,
            "fork_server": self.fork_server,
            "stamps": self.stamps,
            "since_start_ms": {
                step: round((at - self.process_started) * 1000, 1)
                for step, at in self.stamps.items()
                if self.process_started is not None
            },
        }

    def write(self) -> None:
        """Write the stamps to the file `HORSIES_WORKER_STARTUP_TRACE` names, if any."""
        if self.trace_path is None:
            return
        tmp = f"{self.trace_path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(self.as_json(), fh, indent=1)
            os.replace(tmp, self.trace_path)
        except OSError as exc:
            logger.warning("could not write the start-up trace to %s: %s", self.trace_path, exc)

    def _since_start(self, step: str) -> str:
        at, origin = self.stamps.get(step), self.process_started
        return _ms(at - origin) if at is not None and origin is not None else "?"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"
