"""One statement at a time on a non-blocking connection, driven by the caller's event loop.

The worker records outcomes without a thread and without waiting for the commit's WAL flush:
it sends a prepared statement, goes on dispatching, and collects the reply when the socket
becomes readable. Meanwhile new outcomes queue up and go in the next statement, so a durable
commit is shared by everything that finished while the previous one was being flushed.
"""

from __future__ import annotations

import re
import select
from collections.abc import Sequence

import psycopg
from psycopg import pq

from horsies_django.db.connections import Row

type Rows = list[tuple[str | None, ...]]


def numbered(query: str) -> str:
    """psycopg's `%s` placeholders as the protocol's `$1, $2, ...`."""
    counter = iter(range(1, 1000))
    return re.sub(r"%s", lambda _: f"${next(counter)}", query)


class Outbox:
    """Sends named statements without blocking and hands back their rows as text.

    The statements are prepared on the server, unless the connection must never prepare
    (`prepare_threshold` None: a connection through a transaction pooler, where the next
    statement may reach another server connection): then each is sent with its text.
    """

    def __init__(self, conn: psycopg.Connection[Row], statements: dict[str, str]) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self.texts = {name.encode(): numbered(query).encode() for name, query in statements.items()}
        self.prepared = prepared = conn.prepare_threshold is not None
        if prepared:
            for name, text in self.texts.items():
                self._check(self.pgconn.prepare(name, text))
        self.pgconn.nonblocking = 1
        self.busy = False

    def fileno(self) -> int:
        return self.pgconn.socket

    def send(self, name: str, params: Sequence[str | None]) -> None:
        """Start one statement; its rows come from `poll()` once the reply has arrived."""
        assert not self.busy, "one statement at a time"
        values = [None if p is None else p.encode() for p in params]
        if self.prepared:
            self.pgconn.send_query_prepared(name.encode(), values)
        else:
            self.pgconn.send_query_params(self.texts[name.encode()], values)
        while self.pgconn.flush():  # only a large batch fills the socket buffer
            select.select([], [self.fileno()], [], 1.0)
        self.busy = True

    def poll(self) -> Rows | None:
        """The rows of the statement in flight, or None while its reply is incomplete."""
        self.pgconn.consume_input()
        if self.pgconn.is_busy():
            return None
        rows: Rows = []
        error: psycopg.Error | None = None
        while (result := self.pgconn.get_result()) is not None:
            if result.status == pq.ExecStatus.TUPLES_OK:
                rows.extend(
                    tuple(_text(result.get_value(r, c)) for c in range(result.nfields))
                    for r in range(result.ntuples)
                )
            elif result.status != pq.ExecStatus.COMMAND_OK:
                error = _error(result, self.pgconn)
        self.busy = False
        if error is not None:
            raise error
        return rows

    def wait(self, timeout_s: float) -> Rows | None:
        """Block up to `timeout_s` for the reply of the statement in flight."""
        readable, _, _ = select.select([self.fileno()], [], [], timeout_s)
        return self.poll() if readable else None

    def close(self) -> None:
        self.conn.close()

    def _check(self, result: pq.abc.PGresult) -> None:
        if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            raise _error(result, self.pgconn)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


# SQLSTATE classes worth retrying on a new connection: connection exception, insufficient
# resources, operator intervention (e.g. the backend was terminated), transaction rollback.
TRANSIENT_CLASSES = (b"08", b"53", b"57", b"40")


def _error(result: pq.abc.PGresult, pgconn: pq.abc.PGconn) -> psycopg.Error:
    """OperationalError when retrying on a new connection may succeed, else DatabaseError."""
    message = result.error_message.decode(errors="replace").strip()
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE) or b""
    if pgconn.status != pq.ConnStatus.OK or sqlstate[:2] in TRANSIENT_CLASSES or not sqlstate:
        return psycopg.OperationalError(message)
    return psycopg.DatabaseError(message)
