"""Django signals of a task's life, for error trackers, metrics and tracing.

Each signal is sent in the process that knows the fact, with the task's name as `sender` and
as the `task_name` argument. To follow one task, compare `task_name` in the receiver: Django
matches `sender=` by identity, and two equal strings need not be the same object.

- `task_sent`: in the sending process, once the task's row is written (it commits with the
  caller's transaction). Arguments: `task_id`, `task_name`, `queue_name`.
- `task_started`: in the process that runs the task (a worker's child, or the sending process
  in eager mode and `testing.run_pending`), just before the task's code. Arguments: `task_id`,
  `task_name`, `attempt` (1 for the first run).
- `task_finished`: in that same process, right after the task's code, whatever the outcome.
  Arguments: `task_id`, `task_name`, `attempt`, `result` (the `TaskResult` to be recorded),
  `exception` (the exception the task raised, or None) and `duration_s`.
- `task_retried`: where the outcome is recorded (the worker parent, or the eager process), when
  a failed attempt schedules another. Arguments: `task_id`, `task_name`, `attempt` (the one that
  failed), `error_code`, `delay_s`.
- `task_crashed`: in the worker parent, when a task's child died or was killed at its timeout
  while running it. Arguments: `task_id`, `task_name`, `attempt`, `error_code`
  (`WORKER_CRASHED` or `TASK_TIMEOUT`), `pid`.

Receivers run synchronously on the task's path: keep them quick. An exception in a receiver is
logged (logger `horsies_django.signals`) and never changes the task's outcome.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("horsies_django.signals")

task_sent = Signal()
task_started = Signal()
task_finished = Signal()
task_retried = Signal()
task_crashed = Signal()


def wanted(signal: Signal, task_name: str) -> bool:
    """Whether any receiver listens (checked first: building arguments costs on the hot path).
    A signal without receivers answers at once (`has_listeners` takes a lock to say so)."""
    return bool(signal.receivers) and signal.has_listeners(task_name)


def emit(signal: Signal, task_name: str, /, **arguments: Any) -> None:
    """Send `signal` for a task (`task_name` is the sender and an argument); receivers'
    exceptions are logged, never raised."""
    for receiver, response in signal.send_robust(task_name, task_name=task_name, **arguments):
        if isinstance(response, Exception):
            logger.warning(
                "a receiver of a horsies signal raised (%s, task %s): %r",
                getattr(receiver, "__qualname__", receiver),
                task_name,
                response,
                exc_info=response,
            )
