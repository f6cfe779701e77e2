"""Tasks this worker has claimed (and so started, in the database) but not yet handed to a
child, in claim order, each with the moment it was claimed.

Claim order is dispatch order (queue priority, task priority, FIFO), and times never decrease
from the front to the back, so the oldest claim is always the first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

from horsies_django.db.claim import Claimed


class HeldTasks:
    def __init__(self) -> None:
        self._items: deque[tuple[float, Claimed]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[Claimed]:
        return (claimed for _, claimed in self._items)

    def add(self, claimed: Iterable[Claimed], now: float) -> None:
        self._items.extend((now, c) for c in claimed)

    def next(self) -> Claimed:
        """The first task in claim order (the one to run next)."""
        return self._items.popleft()[1]

    def last(self) -> Claimed:
        """The last task in claim order (the one to give up first)."""
        return self._items.pop()[1]

    def oldest_age(self, now: float) -> float:
        """Seconds the first task has been held (0 when nothing is)."""
        return now - self._items[0][0] if self._items else 0.0

    def keep(self, wanted: Callable[[Claimed], bool]) -> None:
        self._items = deque(item for item in self._items if wanted(item[1]))
