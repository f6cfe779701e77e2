"""LISTEN connections: one per worker for new tasks, one per process for finished tasks.

Notifications only shorten waits. Anything that waits also polls, and a listener that loses
its connection reports `on_reconnect` so waiters re-check the database for what they missed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Final

import psycopg
from psycopg import sql as pgsql

from horsies_django.db.connections import Row, connect

logger = logging.getLogger("horsies_django.notify")

MAX_BACKOFF_S = 5.0

# The channels the database notifies (triggers of migrations 0002-0005): a task became due or
# was sent; tasks finished (payload: their ids).
TASK_NEW_CHANNEL: Final = "horsies_task_new"
TASK_DONE_CHANNEL: Final = "horsies_task_done"
WORKFLOW_DONE_CHANNEL: Final = "horsies_workflow_done"  # payload: the workflow id (migration 0008)


type Notes = list[tuple[str, str]]  # (channel, payload) of the notifications received together


def open_listener(alias: str, channels: Iterable[str]) -> psycopg.Connection[Row]:
    """A new autocommit connection that LISTENs on `channels`."""
    conn = connect(alias)
    for channel in channels:
        conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(channel)))
    return conn


def pending_notifications(conn: psycopg.Connection[Row]) -> Notes:
    """(channel, payload) of notifications already received, without blocking.

    Read from libpq directly, on the path from a send to its claim (psycopg's `notifies()`
    generator costs 7 µs a call against 1.3 in a loop, more in a round trip). What psycopg kept
    aside while a statement ran on `conn` is not seen here: a worker's listener runs none after
    its LISTENs, and the worker claims after every (re)connect of it anyway.
    """
    pgconn = conn.pgconn
    pgconn.consume_input()
    encoding = conn.info.encoding
    notes: Notes = []
    while (n := pgconn.notifies()) is not None:
        notes.append((n.relname.decode(encoding), n.extra.decode(encoding)))
    return notes


class BackgroundListener:
    """A daemon thread that LISTENs on `channels` and calls `on_notify(conn, notes)` with the
    notifications received together and its connection, free for a query meanwhile.

    Reconnects with capped exponential backoff; after each (re)connection it calls
    `on_reconnect()`, because notifications sent while it was away are lost.
    """

    def __init__(
        self,
        alias: str,
        channels: Iterable[str],
        on_notify: Callable[[psycopg.Connection[Row], Notes], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self.alias = alias
        self.channels = tuple(channels)
        self.on_notify = on_notify
        self.on_reconnect = on_reconnect
        self.pid = os.getpid()
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="horsies-listener", daemon=True)
        self._thread.start()

    def stop(self, wait_s: float = 0.0) -> None:
        """Ask the thread to end (it closes its connection); wait up to `wait_s` for it."""
        self._stop.set()
        if wait_s:
            self._thread.join(wait_s)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with open_listener(self.alias, self.channels) as conn:
                    backoff = 0.1
                    self.connected.set()
                    self.on_reconnect()
                    while not self._stop.is_set():
                        # Ends after the first batch, so that `on_notify` may use `conn`; what
                        # arrives meanwhile is kept by psycopg for the next turn.
                        notes = [
                            (n.channel, n.payload) for n in conn.notifies(timeout=1.0, stop_after=1)
                        ]
                        if notes:
                            self.on_notify(conn, notes)
            except Exception as exc:  # connection lost or refused: retry with backoff
                self.connected.clear()
                logger.warning("listener connection lost (%s); reconnecting in %.1fs", exc, backoff)
                self.on_reconnect()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
