"""A pool child: set up Django once, then run jobs received over a pipe.

Children never write task rows and hold no database connection of the parent's: each job is
answered with its `Outcome`, and the parent records everything. When user code is about to
start, the child stamps the job's number and the time into memory shared with the parent, so
after a crash the parent knows whether the job had started without a message per task.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any, Final

from horsies_django.execution import Outcome

# A job is (number, task id, task name, kwargs JSON, attempt); None asks the child to exit.
type Job = tuple[int, str, str, str, int]

# The shared start stamp: [number of the job that started, its start time in epoch seconds].
STAMP_JOB, STAMP_TIME = 0, 1

# Messages child -> parent: ("ready", pid) once, then one Outcome per job; or, instead of
# "ready", ("failed", traceback) when Django cannot be set up, and the child exits.
READY: Final = "ready"
FAILED: Final = "failed"
PRELOAD: Final = "horsies_django.worker.preload"


def child_main(conn: Connection, stamp: Any, settings_module: str | None) -> None:
    """Entry point of a pool child (Django is normally set up already, by the fork server)."""
    # The parent decides when we stop: process managers signal the whole process group
    # (Ctrl-C, dumb-init, tini -g, supervisord stopasgroup, systemd's control-group kill), and
    # the running task must finish as if only the parent had been told. It kills with SIGKILL.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if settings_module:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    error = _set_up_django()
    if error is not None:
        conn.send((FAILED, error))
        return
    from horsies_django.django_tasks import running as django_tasks
    from horsies_django.execution import run_task
    from horsies_django.registered import table as app  # a lookup: no sending, no db

    conn.send((READY, os.getpid()))
    while True:
        try:
            job: Job | None = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        number, task_id, task_name, kwargs_json, attempt = job
        outcome: Outcome
        stamp[STAMP_TIME] = time.time()
        stamp[STAMP_JOB] = number  # written last: the time is valid once the number matches
        if django_tasks.is_django_task(task_name):  # a function of Django's django.tasks API
            outcome = django_tasks.run(task_name, kwargs_json, task_id=task_id, attempt=attempt)
        else:
            outcome = run_task(
                app.get(task_name), task_name, kwargs_json, task_id=task_id, attempt=attempt
            )
        _close_django_connections()
        conn.send(outcome)


def _set_up_django() -> str | None:
    """Set Django up (normally done once by the fork server); the traceback if it failed."""
    preload = sys.modules.get(PRELOAD)
    preload_error: str | None = getattr(preload, "SETUP_ERROR", None)
    if preload_error is not None:
        return preload_error
    try:
        import django

        django.setup()
    except Exception:
        return traceback.format_exc()
    return None


def _close_django_connections() -> None:
    """Tasks may use the ORM; don't let a broken or idle-in-transaction connection linger."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()
