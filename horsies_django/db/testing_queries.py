"""The claims of the in-process runners (`horsies_django.testing`, eager mode).

They run the worker's claim statement (`claim.py`) with filters, on the caller's Django
connection, often inside a test's open transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connections

from horsies_django.db.claim import (
    CLAIM_ONE_TASK,
    Claimed,
    QueueSlot,
    claim_request,
    claimed_from_row,
    statement_for,
)
from horsies_django.db.connections import Row


def claim_next(
    alias: str,
    *,
    queues: Sequence[tuple[str, int]],
    task_names: Sequence[str] | None,
    worker_id: uuid.UUID,
    lease_s: float,
) -> Claimed | None:
    """Claim the next due task of these (queue, rank) pairs, or None when none is due: the
    worker's claim, limited to one task (and to `task_names`, when given)."""
    slots = [QueueSlot(name, rank, 1) for name, rank in queues]
    name, params = claim_request(worker_id, slots, 1, lease_s, task_names=task_names)
    return _claim_one(alias, statement_for(name, by_name=task_names is not None), params)


def claim_by_id(
    alias: str, task_id: str, *, worker_id: uuid.UUID, lease_s: float
) -> Claimed | None:
    """Claim this task if it is PENDING (due or not), else None."""
    return _claim_one(alias, CLAIM_ONE_TASK, [str(worker_id), str(lease_s), task_id])


def _claim_one(alias: str, statement: str, params: Sequence[Any]) -> Claimed | None:
    with connections[alias].cursor() as cur:
        cur.execute(statement, params)
        row = cur.fetchone()
    return None if row is None else claimed_from_row(row)


def raw_connection(alias: str) -> psycopg.Connection[Row]:
    """The psycopg connection under Django's (same session, same open transaction)."""
    wrapper = connections[alias]
    wrapper.ensure_connection()
    conn: psycopg.Connection[Row] = wrapper.connection
    return conn


def transaction_failed(alias: str) -> bool:
    """True when the open transaction is aborted (a statement failed inside it)."""
    wrapper = connections[alias]
    if wrapper.connection is None:
        return False
    status = wrapper.connection.info.transaction_status
    return bool(status == psycopg.pq.TransactionStatus.INERROR)
