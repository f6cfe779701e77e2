"""The worker parent's database connections, and getting them back after a loss.

Three connections, each with one job, so that no statement waits on another's reply:
- `main`: registration, heartbeats, maintenance, reconciling, the next due time. If this
  process freezes (SIGSTOP, a stuck VM), PostgreSQL ends its idle session, which releases the
  maintenance lock it may hold.
- `claims`: claims only, sent without waiting for their reply (see `db.outbox`); durable
  commits unless `ASYNC_CLAIM_COMMIT`.
- `listener`: LISTEN for new tasks.
(Outcomes are recorded on a fourth, the completer's.) Invariant: `main` and `claims` are up
together or down together; the listener may be down alone, and polling covers for it.

`claims` and the completer's connection use `DATABASE_ALIAS`, which may go through a
transaction pooler; `main` (a session advisory lock, idle-session fencing) and `listener`
need a session of their own and use `LISTEN_DATABASE_ALIAS` (by default the same alias).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Final

import psycopg

from horsies_django.conf import HorsiesSettings, behind_transaction_pooler
from horsies_django.db import connections, notify, worker_queries
from horsies_django.db.notify import open_listener, pending_notifications

logger = logging.getLogger("horsies_django.worker")

DB_ERRORS: Final = (psycopg.OperationalError, psycopg.InterfaceError)
MIN_RECONNECT_BACKOFF_S: Final = 0.2
MAX_RECONNECT_BACKOFF_S: Final = 10.0

type Connection = psycopg.Connection[connections.Row]


class ConnectionKeeper:
    def __init__(self, settings: HorsiesSettings, *, hear_finished: bool = False) -> None:
        self.settings = settings
        # Also LISTEN for finished tasks (a worker of capped queues: a task finishing anywhere
        # may free the room its last claim lacked).
        self.channels = [notify.TASK_NEW_CHANNEL] + (
            [notify.TASK_DONE_CHANNEL] if hear_finished else []
        )
        self.alias = settings.DATABASE_ALIAS
        self.pooled = behind_transaction_pooler(self.alias)
        self.params: dict[str, Any] = connections.connection_params(self.alias)
        self.session_alias = settings.listen_alias
        self.session_params: dict[str, Any] = connections.connection_params(self.session_alias)
        self.main: Connection | None = None
        self.claims: Connection | None = None
        self.listener: Connection | None = None
        self.next_reconnect = 0.0
        self.backoff = MIN_RECONNECT_BACKOFF_S

    @property
    def up(self) -> bool:
        return self.main is not None and self.claims is not None

    def connect(self) -> None:
        """Open `main` and `claims` (raises the database error if either fails)."""
        main = connections.connect_worker(
            self.session_params, pooled=behind_transaction_pooler(self.session_alias)
        )
        try:
            worker_queries.set_idle_session_timeout(main, self.settings.WORKER_STALE_AFTER_MS)
            claims = connections.connect_worker(self.params, pooled=self.pooled)
            if self.settings.ASYNC_CLAIM_COMMIT:  # opt-in: a server crash can undo claims
                worker_queries.commit_asynchronously(main)
                if not self.pooled:  # a session setting; check W004 says so
                    worker_queries.commit_asynchronously(claims)
        except BaseException:
            main.close()
            raise
        self.main, self.claims = main, claims

    def lost(self, exc: BaseException) -> None:
        """Close everything after a failure; `reconnect()` is due after the backoff."""
        logger.warning("database connection lost (%s); reconnecting", exc)
        for conn in (self.main, self.claims):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        self.main = self.claims = None
        self.drop_listener()

    def reconnect(self) -> bool:
        """Try to open `main` and `claims` again; True once they are up."""
        try:
            self.connect()
        except DB_ERRORS as exc:
            self.backoff = min(self.backoff * 2, MAX_RECONNECT_BACKOFF_S)
            self.next_reconnect = time.monotonic() + self.backoff
            logger.warning("reconnect failed (%s); next try in %.1fs", exc, self.backoff)
            return False
        logger.info("reconnected to the database")
        self.backoff = MIN_RECONNECT_BACKOFF_S
        return True

    def open_listener(self) -> bool:
        """LISTEN for new (and finished) tasks; False (and polling meanwhile) if it cannot."""
        try:
            self.listener = open_listener(self.session_alias, self.channels)
        except DB_ERRORS as exc:
            logger.warning("could not LISTEN (%s); polling meanwhile", exc)
            self.listener = None
            self.next_reconnect = time.monotonic() + self.backoff
            return False
        return True

    def drop_listener(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(Exception):  # it may already be broken
                self.listener.close()
        self.listener = None
        self.next_reconnect = time.monotonic() + self.backoff

    def notifications(self) -> tuple[list[str], bool]:
        """Payloads of the new-task notifications received, and whether tasks finished (the
        listener is dropped if lost)."""
        assert self.listener is not None
        try:
            notes = pending_notifications(self.listener)
        except DB_ERRORS as exc:
            logger.warning("LISTEN connection lost (%s); polling until it is back", exc)
            self.drop_listener()
            return [], False
        new = [payload for channel, payload in notes if channel == notify.TASK_NEW_CHANNEL]
        return new, any(channel == notify.TASK_DONE_CHANNEL for channel, _ in notes)

    def wake(self) -> float | None:
        """When to try reconnecting, if anything is down."""
        return self.next_reconnect if not self.up or self.listener is None else None

    def close(self) -> None:
        for conn in (self.main, self.claims, self.listener):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        self.main = self.claims = self.listener = None
