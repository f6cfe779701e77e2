"""One `horsies_worker` per host, started inside the host's namespace, each in its own
process group (stopped by SIGTERM, then SIGKILL to that group: see `benchmarks.measure`)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.hosts import netns
from benchmarks.hosts.naming import Host
from benchmarks.measure import WorkerGroup

SETTINGS = "benchmarks.hosts.settings"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class HostWorker:
    host: Host
    group: WorkerGroup

    @property
    def pid(self) -> int:
        return self.group.pids[0]


def start(
    host: Host,
    url: str,
    processes: int,
    horsies: dict[str, Any],
    log_dir: Path,
    label: str,
    tcp_timeouts: bool = True,
) -> HostWorker:
    """Start the host's worker; `url` must be an address reachable from inside the host."""
    argv = netns.exec_argv(
        host,
        [sys.executable, "-m", "django", "horsies_worker", "--settings", SETTINGS,
         f"--processes={processes}", f"--worker-name={host.name}", "--shutdown-timeout=10",
         "--verbosity=0"],
    )  # fmt: skip
    env = {
        "HOSTS_DATABASE_URL": url,
        "HOSTS_HORSIES": json.dumps(horsies),
        "HOSTS_HOST_NAME": host.name,
        "HOSTS_TCP_TIMEOUTS": "1" if tcp_timeouts else "0",
        "PYTHONPATH": str(REPO_ROOT),
    }
    group = WorkerGroup([argv], env, REPO_ROOT, log_dir / f"{label}-{host.name}.log")
    group.start()
    return HostWorker(host, group)


def stop_all(workers: list[HostWorker], grace_s: float = 20.0) -> None:
    for worker in workers:
        worker.group.stop(grace_s=grace_s)
