"""CPU time of processes other than the drain's own, over a drain, on this machine.

The drain's own are the PostgreSQL server (its postmaster and every backend, also those that
exited: the postmaster reaps them into its children's times) and the harness with every
process under it (the worker, its fork server and pool), marked while they still run.
Everything else busy on the machine (other users' tests,
builds) is the rest of /proc/stat's busy time: it tells a drain slowed by the machine from one
slowed by the table. The server must run on this machine; otherwise nothing is measured.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _busy_s() -> float:
    """Seconds of CPU busy (all but idle and iowait) since boot, over every core."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICKS_PER_S  # user..steal; guest is within user


def _tree_s(proc: psutil.Process) -> float:
    """CPU seconds of `proc` and every process under it, live or reaped by one of them."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue  # exited between the listing and the read: counted once reaped
        total += t.user + t.system + t.children_user + t.children_system
    return total


@dataclass
class CpuMark:
    wall: float
    busy_s: float
    ours_s: float


class OtherCpu:
    """Marks before and after a drain; `cores()` is the other processes' average use."""

    def __init__(self, postmaster_pid: int | None) -> None:
        self.server = psutil.Process(postmaster_pid) if postmaster_pid else None
        self.harness = psutil.Process()

    def mark(self) -> CpuMark | None:
        if self.server is None:
            return None
        ours = _tree_s(self.server) + _tree_s(self.harness)
        return CpuMark(time.perf_counter(), _busy_s(), ours)

    @staticmethod
    def cores(start: CpuMark | None, end: CpuMark | None) -> float | None:
        """Cores used on average by other processes between two marks (None: not measured)."""
        if start is None or end is None:
            return None
        other = (end.busy_s - start.busy_s) - (end.ours_s - start.ours_s)
        return max(0.0, other) / (end.wall - start.wall)


def postmaster_pid(backend_pid: int) -> int | None:
    """The postmaster of a backend running on this machine, or None."""
    try:
        parent = psutil.Process(backend_pid).parent()
    except psutil.Error:
        return None
    return parent.pid if parent is not None and "postgres" in parent.name() else None
