"""Fixtures of the fault-injection suite: workers with short leases, stopped afterwards."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.helpers import FaultWorker, StartFaultWorker, start_fault_worker


@pytest.fixture
def fault_worker(tmp_path: Path) -> Iterator[StartFaultWorker]:
    """Factory `fault_worker(*cli_args, url=None, wait=True)`; every worker is reaped after."""
    started: list[FaultWorker] = []

    def start(*args: str, url: str | None = None, wait: bool = True) -> FaultWorker:
        log_path = tmp_path / f"fault-worker-{len(started)}.log"
        worker = start_fault_worker(log_path, args, url=url, wait=False)
        started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.signal(signal.SIGCONT)  # a test may have left it stopped
        worker.stop(timeout_s=20)
        worker.kill()
