"""The worker loop's persistent epoll set: what changed between turns is what gets registered."""

from __future__ import annotations

import os
from dataclasses import dataclass

from horsies_django.worker.readiness import Readiness


@dataclass(eq=False)
class End:
    """The read end of a pipe, as an object (like a child's pipe or sentinel in the worker)."""

    fd: int

    def fileno(self) -> int:
        return self.fd


def test_a_descriptor_number_reused_by_a_new_object_is_registered_again() -> None:
    readiness = Readiness()
    r1, w1 = os.pipe()
    first = End(r1)
    assert readiness.wait([first], timeout=0) == []
    os.close(r1)  # the kernel drops it from the epoll set
    os.close(w1)
    r2, w2 = os.pipe()
    if r2 != r1:  # make the new pipe reuse the old number, as a replaced child's pipe may
        os.dup2(r2, r1)
        os.close(r2)
    second = End(r1)
    os.write(w2, b"x")
    assert readiness.wait([second], timeout=1.0) == [second]
    os.close(r1)
    os.close(w2)
    readiness.close()


def test_objects_no_longer_waited_on_are_dropped() -> None:
    readiness = Readiness()
    ra, wa = os.pipe()
    rb, wb = os.pipe()
    a, b = End(ra), End(rb)
    os.write(wa, b"x")
    os.write(wb, b"x")
    assert set(map(id, readiness.wait([a, b], timeout=1.0))) == {id(a), id(b)}
    assert readiness.wait([b], timeout=1.0) == [b]  # a is still readable but not asked for
    for fd in (ra, wa, rb, wb):
        os.close(fd)
    readiness.close()
