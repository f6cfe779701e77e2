"""`manage.py horsies_status`: queue depths, running and failed tasks, and worker liveness.

Read-only. `--json` prints one object for scripts; `--watch [SECONDS]` redraws until Ctrl-C.
A worker is "live" while its heartbeat is younger than WORKER_STALE_AFTER_MS, "stale" after
that (the rescuer will recover its tasks), "stopped" or "dead" once its row says so.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import IO, Any, Final, cast

from django.core.management.base import BaseCommand, CommandParser, OutputWrapper
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from horsies_django.conf import HorsiesSettings, horsies_settings
from horsies_django.db import maintenance_queries as q
from horsies_django.management.argtypes import seconds_between

DEFAULT_WATCH_S: Final = 2.0
RECENT_WORKERS_S: Final = 3_600.0
MAX_WORKERS: Final = 100


watch_seconds = seconds_between(0.1, 3_600)


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    id: str
    name: str
    hostname: str
    pid: int
    processes: int
    queues: list[str]
    state: str
    running_tasks: int
    started_at: str
    last_heartbeat_at: str
    heartbeat_age_s: float
    stopped_at: str | None
    stop_reason: str | None


def liveness(row: q.WorkerRow, stale_after_s: float) -> str:
    if row.state == "DEAD":
        return "dead"
    if row.state == "STOPPED":
        return "stopped"
    return "stale" if row.silent_s >= stale_after_s else "live"


def snapshot(settings: HorsiesSettings) -> dict[str, Any]:
    """Everything the command shows, as JSON-ready data."""
    alias = settings.DATABASE_ALIAS
    stats = {s.name: s for s in q.queue_stats(alias)}
    names = [queue.name for queue in settings.queues]
    names += sorted(set(stats) - set(names))  # queues no longer configured but still holding rows
    queues = [asdict(stats.get(n) or q.QueueStats(n, 0, 0, 0, 0, None)) for n in names]
    for entry in queues:
        entry["configured"] = settings.queue(entry["name"]) is not None
    rows = q.workers(alias, finished_within_s=RECENT_WORKERS_S, limit=MAX_WORKERS)
    stale_s = settings.WORKER_STALE_AFTER_MS / 1000
    workers = [asdict(_worker(row, stale_s)) for row in rows]
    totals = {
        key: sum(entry[key] for entry in queues)
        for key in ("pending", "scheduled", "running", "failed_last_hour")
    }
    return {
        "at": q.server_now(alias).isoformat(),
        "queues": queues,
        "totals": totals,
        "workers": workers,
        "workers_by_state": {
            state: sum(1 for w in workers if w["state"] == state)
            for state in ("live", "stale", "stopped", "dead")
        },
    }


def _worker(row: q.WorkerRow, stale_s: float) -> WorkerStatus:
    return WorkerStatus(
        id=row.id,
        name=row.name,
        hostname=row.hostname,
        pid=row.pid,
        processes=row.processes,
        queues=list(json.loads(row.queues_json or "[]")),
        state=liveness(row, stale_s),
        running_tasks=int(row.holding),
        started_at=row.started_at.isoformat(),
        last_heartbeat_at=row.heartbeat_at.isoformat(),
        heartbeat_age_s=round(max(row.silent_s, 0.0), 3),
        stopped_at=None if row.stopped_at is None else row.stopped_at.isoformat(),
        stop_reason=row.stop_reason,
    )


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


STATE_STYLES: Final = {"live": "green", "stale": "bold red", "stopped": "dim", "dead": "red"}


def render(data: dict[str, Any]) -> Group:
    queues = Table(title=f"horsies queues at {_hms(data['at'])}", title_justify="left")
    for column in ("queue", "pending", "scheduled", "running", "failed 1h", "oldest pending"):
        queues.add_column(column, justify="left" if column == "queue" else "right")
    for entry in data["queues"]:
        name = entry["name"] if entry["configured"] else f"{entry['name']} (unconfigured)"
        queues.add_row(
            name,
            str(entry["pending"]),
            str(entry["scheduled"]),
            str(entry["running"]),
            str(entry["failed_last_hour"]),
            age(entry["oldest_pending_s"]),
        )
    by_state = ", ".join(f"{n} {s}" for s, n in data["workers_by_state"].items())
    workers = Table(title=f"workers: {by_state}", title_justify="left")
    for column in ("name", "state", "running", "processes", "queues", "last heartbeat"):
        workers.add_column(column)
    workers.add_column("stopped because", overflow="fold")
    for w in data["workers"]:
        workers.add_row(
            w["name"],
            f"[{STATE_STYLES[w['state']]}]{w['state']}[/]",
            str(w["running_tasks"]),
            str(w["processes"]),
            ",".join(w["queues"]),
            f"{age(w['heartbeat_age_s'])} ago",
            _first_line(w["stop_reason"]),
        )
    return Group(queues, workers)


def _first_line(text: str | None) -> str:
    """A stop reason's first line (a traceback follows it in the admin and the JSON)."""
    return "" if not text else text.splitlines()[0]


def _hms(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S %Z")


class _Verbatim(io.TextIOBase):
    """The command's stdout without Django's added line endings (they break live redraws)."""

    def __init__(self, out: OutputWrapper) -> None:
        self.out = out

    def write(self, text: str) -> int:
        self.out.write(text, ending="")
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def isatty(self) -> bool:
        return self.out.isatty()


class Command(BaseCommand):
    help = "Show queue depths, running and failed tasks, and worker liveness."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="print one JSON object (per refresh with --watch)"
        )
        parser.add_argument(
            "--watch",
            nargs="?",
            type=watch_seconds,
            const=DEFAULT_WATCH_S,
            default=None,
            metavar="SECONDS",
            help=f"refresh every SECONDS (default {DEFAULT_WATCH_S:g}) until Ctrl-C",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settings = horsies_settings()
        interval: float | None = options["watch"]
        as_json = bool(options["json"])
        try:
            if interval is None:
                self._show_once(settings, as_json)
            elif as_json:
                while True:
                    self._show_once(settings, as_json=True)
                    time.sleep(interval)  # the refresh period the user asked for
            else:
                self._watch(settings, interval)
        except KeyboardInterrupt:
            return

    def _console(self) -> Console:
        width = None if self.stdout.isatty() else 120
        return Console(file=cast(IO[str], _Verbatim(self.stdout)), width=width)

    def _show_once(self, settings: HorsiesSettings, as_json: bool) -> None:
        data = snapshot(settings)
        if as_json:
            self.stdout.write(json.dumps(data))
            self.stdout.flush()
        else:
            self._console().print(render(data))

    def _watch(self, settings: HorsiesSettings, interval: float) -> None:
        console = self._console()
        with Live(render(snapshot(settings)), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)  # the refresh period the user asked for
                live.update(render(snapshot(settings)), refresh=True)
