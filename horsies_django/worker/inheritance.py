"""What the fork server, and so every child, inherits from the worker parent: its import path.

The fork server is a fresh interpreter (`python -c ...`) started in the parent's working
directory, so on its own it sees neither the directory of `manage.py` nor a `--pythonpath`.
Worse, a folder of the working directory can shadow the project's package (`mysite/` above a
startproject layout imports as an empty namespace package). The parent therefore hands its
`sys.path` over in the environment: `PYTHONPATH` lets the fork server import horsies_django
at all, and `apply()` (run first by the preload module) makes the path exactly the parent's and
puts the user's own `PYTHONPATH` back, so tasks see the environment they were started with.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Final

SYS_PATH_VAR: Final = "HORSIES_WORKER_SYS_PATH"
ORIGINAL_PYTHONPATH_VAR: Final = "HORSIES_WORKER_ORIGINAL_PYTHONPATH"


def parent_sys_path() -> list[str]:
    """The parent's `sys.path` with relative entries ('' is the working directory) made absolute."""
    return [os.path.abspath(entry or os.curdir) for entry in sys.path]


@contextlib.contextmanager
def handed_over() -> Iterator[None]:
    """Within this block, a fork server started by this process gets the parent's import path."""
    path = parent_sys_path()
    saved = {var: os.environ.get(var) for var in ("PYTHONPATH", SYS_PATH_VAR)}
    saved[ORIGINAL_PYTHONPATH_VAR] = os.environ.get(ORIGINAL_PYTHONPATH_VAR)
    os.environ[ORIGINAL_PYTHONPATH_VAR] = os.environ.get("PYTHONPATH", "")
    os.environ[SYS_PATH_VAR] = json.dumps(path)
    os.environ["PYTHONPATH"] = os.pathsep.join(path)
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def apply() -> None:
    """In the fork server: take the parent's `sys.path` and restore the user's `PYTHONPATH`."""
    path = os.environ.pop(SYS_PATH_VAR, None)
    if path is not None:
        sys.path[:] = json.loads(path)
    original = os.environ.pop(ORIGINAL_PYTHONPATH_VAR, None)
    if original == "":  # an empty PYTHONPATH is no PYTHONPATH
        os.environ.pop("PYTHONPATH", None)
    elif original is not None:
        os.environ["PYTHONPATH"] = original
