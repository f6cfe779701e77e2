"""Starting the pool's fork server: forked from the worker parent, or a fresh interpreter.

multiprocessing starts its fork server as a fresh interpreter that imports the project and sets
Django up a second time, after the parent already did: on a small project that doubles the
worker's start-up. Started with `how="fork"`, the server is instead a fork of the parent, taken
right after `django.setup()` and before the parent opens a connection or starts a thread: it
runs the very code multiprocessing would run in the new interpreter (its server loop, then the
preload module), only it starts with Django already set up. Children are still forked from a
process that holds none of the parent's connections, threads or later state.

A fresh interpreter is used when asked (`how="spawn"`), when the parent runs other threads
(forking them is unsafe: a lock held by another thread stays held in the fork), and whenever
multiprocessing starts the server again later (the parent holds connections by then).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from multiprocessing import forkserver, util
from typing import Any, Final, Literal

from django.db import connections

from horsies_django.worker import inheritance
from horsies_django.worker.child import PRELOAD

type How = Literal["fork", "spawn"]
HOW_CHOICES: Final = ("fork", "spawn")


def prepare(settings_module: str | None) -> None:
    """What every start of the fork server needs: the settings module and the preload."""
    if settings_module:  # the fork server inherits the environment when it starts
        os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    forkserver.set_forkserver_preload([PRELOAD])


def start(settings_module: str | None, how: How = "fork") -> How:
    """Start the fork server now (children started later use it); returns how it started."""
    prepare(settings_module)
    if how == "fork" and not _single_threaded():
        how = "spawn"
    with inheritance.handed_over():
        if how == "spawn":
            forkserver.ensure_running()
            return how
        connections.close_all()  # a Django connection must not be shared with the fork
        with _forked_not_spawned():
            forkserver.ensure_running()
    return how


def _single_threaded() -> bool:
    """True when this process runs one thread (False where /proc cannot tell: then spawn)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1 and threading.active_count() == 1
    except OSError:
        return False


@contextlib.contextmanager
def _forked_not_spawned() -> Iterator[None]:
    """Within this block, multiprocessing's fork server is started by forking this process."""
    open_before = _open_fds()
    spawn = util.spawnv_passfds

    def fork_and_run(path: bytes, args: Sequence[Any], passfds: Sequence[int]) -> int:
        # multiprocessing starts the server as `python -c CODE` with `passfds` open (and its
        # resource tracker the same way: that one is left to spawn as usual).
        code = args[-1]
        if not isinstance(code, str) or "multiprocessing.forkserver" not in code:
            return spawn(path, args, passfds)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run_server(code, keep=open_before | set(passfds))
        return pid

    util.spawnv_passfds = fork_and_run
    try:
        yield
    finally:
        util.spawnv_passfds = spawn


def _run_server(code: str, keep: set[int]) -> None:
    """In the fork: close what the start opened and was not passed on, run the server, exit."""
    status = 1
    try:
        for fd in _open_fds() - keep:  # e.g. the parent's end of the server's "alive" pipe
            with contextlib.suppress(OSError):
                os.close(fd)
        exec(compile(code, "<fork server>", "exec"), {"__name__": "__mp_forkserver__"})
        status = 0
    except SystemExit as exc:  # the server loop ends this way once the parent is gone
        status = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(status)


def _open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}
