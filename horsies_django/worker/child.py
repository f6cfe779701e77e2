"""A pool child: set up Django once, then run jobs received over a pipe.

Children never write task rows and hold no database connection of the parent's: they report
`started` and `done` messages, and the parent records everything.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection

from horsies_django.execution import Outcome


@dataclass(frozen=True, slots=True)
class Job:
    task_id: str
    claim_gen: int
    task_name: str
    kwargs_json: str

    def __reduce__(self) -> tuple[type[Job], tuple[str, int, str, str]]:
        return (Job, (self.task_id, self.claim_gen, self.task_name, self.kwargs_json))


# Messages child -> parent: ("ready", pid) | ("started", task_id, gen, datetime)
#                           | ("done", task_id, gen, Outcome)


def child_main(conn: Connection, settings_module: str | None) -> None:
    """Entry point of a spawned child process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if settings_module:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()
    from horsies_django.execution import now, run_task
    from horsies_django.registry import app

    conn.send(("ready", os.getpid()))
    while True:
        try:
            job: Job | None = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(("started", job.task_id, job.claim_gen, now()))
        outcome: Outcome = run_task(app.get(job.task_name), job.task_name, job.kwargs_json)
        _close_django_connections()
        conn.send(("done", job.task_id, job.claim_gen, outcome))


def _close_django_connections() -> None:
    """Tasks may use the ORM; don't let a broken or idle-in-transaction connection linger."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()
