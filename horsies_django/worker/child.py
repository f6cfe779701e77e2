"""A pool child: set up Django once, then run jobs received over a pipe.

Children never write task rows and hold no database connection of the parent's: each job is
answered with its `Outcome`, and the parent records everything. When user code is about to
start, the child stamps the job's number and the time into memory shared with the parent, so
after a crash the parent knows whether the job had started without a message per task.
"""

from __future__ import annotations

import os
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from horsies_django.execution import Outcome

# A job is (number, task name, kwargs JSON); None asks the child to exit.
type Job = tuple[int, str, str]

# The shared start stamp: [number of the job that started, its start time in epoch seconds].
STAMP_JOB, STAMP_TIME = 0, 1

# Messages child -> parent: ("ready", pid) once, then one Outcome per job.


def child_main(conn: Connection, stamp: Any, settings_module: str | None) -> None:
    """Entry point of a pool child (Django is normally set up already, by the fork server)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if settings_module:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()
    from horsies_django.execution import run_task
    from horsies_django.registry import app

    conn.send(("ready", os.getpid()))
    while True:
        try:
            job: Job | None = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        number, task_name, kwargs_json = job
        stamp[STAMP_TIME] = time.time()
        stamp[STAMP_JOB] = number  # written last: the time is valid once the number matches
        outcome: Outcome = run_task(app.get(task_name), task_name, kwargs_json)
        _close_django_connections()
        conn.send(outcome)


def _close_django_connections() -> None:
    """Tasks may use the ORM; don't let a broken or idle-in-transaction connection linger."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()
