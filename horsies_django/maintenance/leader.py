"""Leadership for maintenance: one worker at a time holds a PostgreSQL session advisory lock.

The lock lives as long as the leader's connection: if the leader dies or loses its connection,
PostgreSQL releases it and the next worker that asks becomes leader.
"""

from __future__ import annotations

import zlib
from typing import Final

import psycopg

from horsies_django.db import connections, maintenance_queries

LEADER_LOCK_KEY: Final = zlib.crc32(b"horsies_django.maintenance")


class Leadership:
    def __init__(self) -> None:
        self.conn_id: int | None = None

    def held_on(self, conn: psycopg.Connection[connections.Row]) -> bool:
        """True if this worker leads (trying to take the lock if it does not yet)."""
        if self.conn_id == id(conn):
            return True
        if maintenance_queries.try_leadership(conn, LEADER_LOCK_KEY):
            self.conn_id = id(conn)
            return True
        return False

    def lost(self) -> None:
        """The connection holding the lock is gone (so is the lock)."""
        self.conn_id = None
