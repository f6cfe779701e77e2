"""The postmaster's life: initdb, start on a free port, wait until it answers, stop for sure.

Starting is bounded (``START_TIMEOUT`` per attempt, a few attempts when the port was taken);
stopping never raises and escalates from ``pg_ctl stop -m fast`` to killing the process tree,
so no server outlives its temp dir.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped, unused-ignore]
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from horsies_django.embedded_pg.errors import EmbeddedPostgresError, log
from horsies_django.embedded_pg.runas import RunAs, pg_env, popen_kwargs, run_pg
from horsies_django.embedded_pg.server import SUPERUSER, ThrowawayServer, read_postmaster_pid

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_START_ATTEMPTS = 3


def initdb(server: ThrowawayServer, runas: RunAs | None) -> None:
    """Create the data directory: trust auth for ``SUPERUSER``, UTF8, C locale, no fsync."""
    log(f"initdb {server.datadir} (binaries: {server.bindir})")
    run_pg(
        [server.bindir / "initdb", "-D", server.datadir, "--auth=trust", "-U", SUPERUSER,
         "--encoding=UTF8", "--locale=C", "--no-sync"],
        cwd=server.tmpdir, runas=runas, timeout=120,
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def _spawn(server: ThrowawayServer, runas: RunAs | None) -> subprocess.Popen[bytes]:
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
    with open(server.logfile, "ab") as log_file:
        return subprocess.Popen(
            cmd,
            cwd=server.tmpdir,
            env=pg_env(),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C must not kill it before the child
            **popen_kwargs(runas),
        )


def start(server: ThrowawayServer, runas: RunAs | None) -> None:
    """Start the postmaster and wait (bounded) until it accepts connections."""
    for attempt in range(1, _START_ATTEMPTS + 1):
        server.port = _free_port()
        server.process = _spawn(server, runas)
        if _wait_ready(server):
            return
        if server.process.poll() is None:  # hung rather than failed: don't leave it behind
            _kill_tree(server.process.pid)
            server.process.wait()
        log_tail = _tail(server.logfile)
        if "could not bind" in log_tail or "already in use" in log_tail:
            log(f"port {server.port} was taken (attempt {attempt}); retrying")
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


def create_database(server: ThrowawayServer, dbname: str) -> None:
    """Create ``dbname`` on the running server."""
    with psycopg.connect(_conninfo(server, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def stop(server: ThrowawayServer, runas: RunAs | None) -> None:
    """Stop the server (fast shutdown), escalating to SIGKILL; never raises."""
    if (server.datadir / "postmaster.pid").exists():
        try:
            proc = run_pg(
                [server.pg_ctl, "stop", "-D", server.datadir, "-m", "fast", "-w",
                 "-t", str(int(STOP_TIMEOUT))],
                cwd=server.tmpdir, runas=runas, timeout=STOP_TIMEOUT + 10, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                log(f"pg_ctl stop exited {proc.returncode}: {proc.stderr.strip()}")
        except (OSError, subprocess.SubprocessError) as exc:
            log(f"pg_ctl stop failed: {exc}")
    pids = {read_postmaster_pid(server.datadir)}
    if server.process is not None:
        pids.add(server.process.pid)
    for pid in pids:
        if pid is not None and psutil.pid_exists(pid):
            with contextlib.suppress(psutil.Error):
                proc_status = psutil.Process(pid).status()
                if proc_status != psutil.STATUS_ZOMBIE:
                    log(f"postmaster {pid} still running; killing it")
                    _kill_tree(pid)
    if server.process is not None:
        try:
            server.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
