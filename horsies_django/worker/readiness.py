"""Waiting on many file descriptors at once, with one epoll set kept across loop turns.

The supervisor waits on pipes, process sentinels and database sockets thousands of times a
second; building a new selector each time (as `multiprocessing.connection.wait` does) costs
more than the wait itself. Only what changed since the last turn is (un)registered.

Everything waited on is an object with `fileno()`, one object per open file (a new connection
or child gets a new object), except descriptors that stay open for the whole run: a bare
number closed and reused by another file between two turns would look unchanged and never be
registered for the new file.
"""

from __future__ import annotations

import contextlib
import selectors
from typing import Any


def fd_of(obj: Any) -> int:
    return obj if isinstance(obj, int) else int(obj.fileno())


class Readiness:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._registered: dict[int, Any] = {}

    def wait(self, objs: list[Any], timeout: float) -> list[Any]:
        """The objects of `objs` that are readable within `timeout` seconds."""
        wanted = {fd_of(obj): obj for obj in objs}
        for fd in [fd for fd in self._registered if fd not in wanted]:
            self._forget(fd)
        for fd, obj in wanted.items():
            known = self._registered.get(fd)
            if known is obj:
                continue
            if known is not None:  # the fd number was closed and reused by another object
                self._forget(fd)
            self._selector.register(fd, selectors.EVENT_READ, obj)
            self._registered[fd] = obj
        return [key.data for key, _ in self._selector.select(timeout)]

    def _forget(self, fd: int) -> None:
        del self._registered[fd]
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(fd)

    def close(self) -> None:
        self._selector.close()
        self._registered.clear()
