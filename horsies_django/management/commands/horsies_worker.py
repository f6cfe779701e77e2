"""`manage.py horsies_worker`: run a worker (thin: parse, validate, start the supervisor)."""

from __future__ import annotations

import argparse
import logging
import os
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections

from horsies_django import catalogue, checks, logs
from horsies_django.conf import horsies_settings
from horsies_django.exceptions import ConfigurationError
from horsies_django.management.argtypes import int_between, non_negative_int, positive_seconds
from horsies_django.registry import app
from horsies_django.worker import fork_server
from horsies_django.worker.options import WorkerOptions
from horsies_django.worker.startup import Timeline
from horsies_django.worker.supervisor import Supervisor

logger = logging.getLogger("horsies_django.worker")

MAX_PROCESSES = 256
MAX_NAME_LENGTH = 255  # horsies_worker.name


positive_int = int_between(1, MAX_PROCESSES)


def queue_list(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names or any(not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", n) for n in names):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a comma-separated list of queue names, "
            "e.g. --queues critical,default"
        )
    return names


def worker_name(value: str) -> str:
    name = value.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise argparse.ArgumentTypeError(
            f"must be 1 to {MAX_NAME_LENGTH} characters, got {len(name)}"
        )
    return name


class Command(BaseCommand):
    help = "Run a horsies worker: claim tasks and run them in a pool of child processes."
    # horsies_django's own checks only (settings, task modules, schedules, pooler): they refuse
    # a worker that would run with a bad configuration. Django's checks of the rest of the
    # project (URLs, templates, admin, every model) belong in `manage.py check` at deploy.
    requires_system_checks = [checks.TAG]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeline = Timeline()
        self.timeline.mark("django_ready")  # Django loads commands once it is set up

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--processes",
            type=positive_int,
            default=os.cpu_count() or 1,
            help="child processes, i.e. tasks run at once (default: CPU count)",
        )
        parser.add_argument(
            "--queues",
            type=queue_list,
            default=None,
            help="only claim from these comma-separated queues (default: all configured)",
        )
        parser.add_argument(
            "--max-tasks-per-child",
            type=non_negative_int,
            default=0,
            help="replace a child after this many tasks (default 0: never)",
        )
        parser.add_argument(
            "--max-memory-per-child",
            type=non_negative_int,
            default=0,
            metavar="MB",
            help="replace a child whose resident memory exceeds this many MB (default 0: off)",
        )
        parser.add_argument(
            "--worker-name",
            type=worker_name,
            default=None,
            help="a name shown in the admin and logs (default: hostname:pid)",
        )
        parser.add_argument(
            "--log-format",
            choices=["text", "json"],
            default="text",
            help="text lines (default) or one JSON object per line, for log collectors",
        )
        parser.add_argument(
            "--scheduler",
            action="store_true",
            help="also fire periodic schedules (only while this worker leads maintenance)",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=positive_seconds,
            default=30.0,
            metavar="SECONDS",
            help="on SIGTERM/SIGINT, how long running tasks may finish before being killed "
            "(default 30)",
        )
        parser.add_argument(
            "--fork-server",
            choices=fork_server.HOW_CHOICES,
            default="fork",
            help="how the children's fork server starts: fork (default) forks this process, "
            "Django already set up; spawn starts a fresh interpreter that sets Django up again",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        timeline = self.timeline
        timeline.mark("checks_done")
        # First, while this process holds no connection and runs no other thread.
        timeline.fork_server = fork_server.start(
            os.environ.get("DJANGO_SETTINGS_MODULE"), options["fork_server"]
        )
        timeline.mark("fork_server")
        logs.configure(int(options["verbosity"]), options["log_format"])
        try:
            settings = horsies_settings()
            worker = Supervisor(
                WorkerOptions(
                    processes=options["processes"],
                    queues=options["queues"],
                    max_tasks_per_child=options["max_tasks_per_child"],
                    max_memory_per_child_mb=options["max_memory_per_child"],
                    worker_name=options["worker_name"],
                    shutdown_timeout_s=options["shutdown_timeout"],
                    settings_module=os.environ.get("DJANGO_SETTINGS_MODULE"),
                    scheduler=options["scheduler"],
                ),
                settings,
                timeline,
            )
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        _log_registered_tasks()
        code = worker.run(publish=lambda: _refresh_catalogue(settings.DATABASE_ALIAS))
        if code:
            raise SystemExit(code)


def _refresh_catalogue(alias: str) -> None:
    """Publish this worker's tasks to `horsies_task_catalogue` for senders in other languages.
    A database that is not up yet does not stop the worker: it connects when it can, and the
    catalogue is refreshed at the next start or `migrate`."""
    try:
        changed = catalogue.refresh(alias)
    except DatabaseError as exc:
        logger.warning("could not refresh horsies_task_catalogue (%s); continuing", exc)
        return
    finally:
        connections[alias].close()  # the worker runs on its own connections
    if changed:
        logger.info("horsies_task_catalogue updated: %s", ", ".join(changed))


def _log_registered_tasks() -> None:
    """At start-up, what this worker can run: a task missing here fails with
    WORKER_RESOLUTION_ERROR on this worker."""
    definitions = sorted(app.definitions.values(), key=lambda d: d.name)
    listed = ", ".join(f"{d.name} [{d.queue_name}]" for d in definitions) or "none"
    logger.info("%d task(s) registered: %s", len(definitions), listed)
