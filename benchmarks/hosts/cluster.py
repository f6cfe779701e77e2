"""The simulated cluster's life: leftovers cleaned, hosts and PostgreSQL up, tear-down always.

`running_cluster()` first removes whatever a crashed run left (namespaces, links, processes
inside them, the server in `postgres.DIRECTORY`), then builds the hosts, starts PostgreSQL on
their links, migrates and sets Django up in this process (over loopback). Tear-down (workers,
namespaces and links, PostgreSQL) runs on leaving the block, on SIGTERM, SIGHUP or SIGINT
(turned into exceptions so that the block unwinds) and, should all that be skipped, at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

import psycopg

from benchmarks.hosts import netns, postgres, records, workers
from benchmarks.hosts.naming import Host, hosts
from benchmarks.hosts.workers import HostWorker

RESET: Final = "TRUNCATE horsies_task_attempt, horsies_task, horsies_worker, hosts_run CASCADE"


def log(message: str) -> None:
    print(f"[hosts] {message}", file=sys.stderr, flush=True)


@dataclass
class Cluster:
    server: postgres.Server
    hosts: list[Host]
    log_dir: Path
    conn: psycopg.Connection[Any]
    workers: list[HostWorker] = field(default_factory=list)

    def url_from(self, host: Host) -> str:
        return self.server.url(host.outside_address)

    @property
    def local_url(self) -> str:
        return self.server.url()

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []

    def reset(self) -> None:
        """Empty the queue's tables and the run records; CHECKPOINT so no phase pays for the
        previous one's writes."""
        self.sql("SET lock_timeout = '20s'")
        self.sql(RESET)
        self.sql("CHECKPOINT")

    def start_workers(
        self,
        count: int,
        processes: int,
        horsies: dict[str, Any],
        label: str,
        tcp_timeouts: bool = True,
    ) -> list[HostWorker]:
        started = [
            workers.start(
                h, self.url_from(h), processes, horsies, self.log_dir, label, tcp_timeouts
            )
            for h in self.hosts[:count]
        ]
        self.workers.extend(started)
        return started

    def stop_workers(self, grace_s: float = 20.0) -> None:
        workers.stop_all(self.workers, grace_s)
        self.workers.clear()


def clean_leftovers() -> None:
    removed = netns.clean()
    if postgres.stop():
        removed.append(str(postgres.DIRECTORY))
    if removed:
        log(f"removed leftovers of an earlier run: {', '.join(removed)}")


class _Teardown:
    """Idempotent: stops workers, deletes namespaces and links, stops PostgreSQL."""

    def __init__(self) -> None:
        self.cluster: Cluster | None = None
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        if self.cluster is not None:
            for worker in self.cluster.workers:  # links up, so that stopping is graceful
                with contextlib.suppress(Exception):
                    netns.set_link(worker.host, up=True)
            with contextlib.suppress(Exception):
                self.cluster.stop_workers(grace_s=10.0)
            with contextlib.suppress(Exception):
                self.cluster.conn.close()
        netns.clean()
        postgres.stop()
        log("torn down: workers stopped, namespaces and links deleted, PostgreSQL removed")


def _raise_on(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def running_cluster(host_count: int, log_dir: Path) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        raise SystemExit("the many-hosts harness needs root (network namespaces)")
    teardown = _Teardown()
    atexit.register(teardown)
    previous = {s: signal.signal(s, _raise_on) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        clean_leftovers()
        all_hosts = hosts(host_count)
        for host in all_hosts:
            netns.create(host)
        server = postgres.start(all_hosts)
        log(f"PostgreSQL on port {server.port}, hosts {', '.join(h.name for h in all_hosts)}")
        _setup_django(server.url())
        conn = psycopg.connect(server.url(), autocommit=True)
        teardown.cluster = Cluster(server, all_hosts, log_dir, conn)
        yield teardown.cluster
    finally:
        teardown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _setup_django(url: str) -> None:
    os.environ["HOSTS_DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = workers.SETTINGS
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cur:
        records.create_runs_table(cur)


def wait_until(
    what: str, done: Callable[[], bool], timeout_s: float, interval_s: float = 0.02
) -> float:
    """Poll `done()` until true; the time it took. Raises after `timeout_s`."""
    start = time.perf_counter()
    while not done():
        if time.perf_counter() - start > timeout_s:
            raise RuntimeError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)
    return time.perf_counter() - start
