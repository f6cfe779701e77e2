"""Process, CPU, memory and statistics helpers shared by every workload.

Only processes started here are ever stopped, and only by their own PID / process group:
a worker group gets SIGTERM (a graceful stop for both systems), then SIGKILL to the group
it was started in if it outlives the grace period.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil


def tree_cpu_seconds(pids: Sequence[int]) -> float:
    """user+sys of each process, its live descendants and the children it has reaped."""
    total = 0.0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def tree_rss_bytes(pids: Sequence[int]) -> int:
    """Resident memory of each process and its live descendants (parent + children)."""
    total = 0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            try:
                total += int(proc.memory_info().rss)
            except psutil.Error:
                continue
    return total


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default 'linear')."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac


@dataclass
class WorkerGroup:
    """The OS processes that make up one system's workers, each in its own session."""

    argvs: list[list[str]]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    needed_kill: bool = False
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        env = {**os.environ, **self.env}
        for argv in self.argvs:
            self.procs.append(
                subprocess.Popen(
                    argv,
                    env=env,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: pgid == pid
                )
            )

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"worker {proc.args!r} exited early with code "
                    f"{proc.returncode}; see {self.log_path}"
                )

    def stop(self, grace_s: float = 20.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.needed_kill = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for proc in self.procs:
            self._reap_group(proc.pid)
        if self._log is not None:
            self._log.close()

    def _reap_group(self, pgid: int) -> None:
        """Give leftovers of our own process group (e.g. a resource tracker) 10 s, then kill."""
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.1)
        if _group_alive(pgid):
            self.needed_kill = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False
