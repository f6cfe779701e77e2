"""Tasks of the many-hosts harness, one queue each (see `benchmarks.hosts.settings.QUEUES`)."""

import os
import time

from django.db import connection

from benchmarks.hosts import records
from horsies_django import RetryPolicy, TaskError, TaskResult, app


@app.task("hosts.noop", queue_name="drain")
def noop(*, i: int) -> TaskResult[None, TaskError]:
    return TaskResult(ok=None)


@app.task("hosts.capped_a", queue_name="cap_a")
def capped_a(*, i: int, ms: int) -> TaskResult[None, TaskError]:
    time.sleep(ms / 1000)
    return TaskResult(ok=None)


@app.task("hosts.capped_b", queue_name="cap_b")
def capped_b(*, i: int, ms: int) -> TaskResult[None, TaskError]:
    time.sleep(ms / 1000)
    return TaskResult(ok=None)


# A run whose worker is cut off is recorded WORKER_CRASHED by the rescuer: retried, so that
# another host completes it.
@app.task(
    "hosts.recorded",
    queue_name="recover",
    retry_policy=RetryPolicy.fixed([1, 1, 1], auto_retry_for=["WORKER_CRASHED"]),
)
def recorded(*, i: int, ms: int) -> TaskResult[None, TaskError]:
    """Work for `ms`, then record this execution (which host, which process)."""
    time.sleep(ms / 1000)
    with connection.cursor() as cur:
        records.record_run(cur, i, os.environ.get("HOSTS_HOST_NAME", "?"), os.getpid())
    return TaskResult(ok=None)
