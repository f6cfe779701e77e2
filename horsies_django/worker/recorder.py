"""How this worker's tasks ended, turned into recorded transitions.

Invariant: every task this worker took ends in exactly one of three ways, each fenced by its
claim generation: an outcome (decided by `outcomes.decide`, then told to operators and signal
receivers), EXPIRED before it started, or handed back to PENDING because it never started.
The completer writes them; nothing here waits for the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from horsies_django.db.claim import Claimed
from horsies_django.execution import Outcome
from horsies_django.outcomes import decide, expired
from horsies_django.worker import reporting
from horsies_django.worker.completer import Completer


class OutcomeRecorder:
    def __init__(
        self,
        completer: Completer,
        worker_id: uuid.UUID,
        retry_due_in: Callable[[float], None],
    ) -> None:
        self.completer = completer
        self.worker_id = worker_id
        self.retry_due_in = retry_due_in  # wakes the producer when a retry becomes due

    def record(self, claimed: Claimed, outcome: Outcome, pid: int | None) -> None:
        outcome = reporting.explain_unresolved(claimed, outcome)
        finish = decide(claimed, outcome, pid, self.worker_id)
        self.completer.submit(finish)
        self.completer.flush()  # at once, unless a batch is in flight: then with the next one
        reporting.report(claimed, outcome, finish, pid)
        if finish.will_retry and finish.retry_delay_s is not None:
            self.retry_due_in(finish.retry_delay_s)

    def expire(self, claimed: Claimed) -> None:
        """A held task whose good_until passed before a child was free: EXPIRED, never run."""
        self.completer.submit(expired(claimed, self.worker_id))
        reporting.report_expired(claimed)

    def hand_back(self, task_id: str, claim_gen: int) -> None:
        """A task whose code never started goes back to PENDING for any worker."""
        self.completer.release(task_id, claim_gen)
