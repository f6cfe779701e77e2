"""Run a command with PgBouncer (transaction pooling) in front of the server in DATABASE_URL.

    python -m tests.pooler -- python -m pytest tests/test_worker.py ...

The command gets HORSIES_POOLER_URL, the same database through PgBouncer; tests/settings.py
then makes the `default` alias go through it (DISABLE_SERVER_SIDE_CURSORS, as Django asks for
transaction pooling) and LISTEN use a direct `direct` alias. PgBouncer is Debian's `pgbouncer`
(`./dev test` installs it); it runs as `postgres` when started by root, as it refuses root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

READY_TIMEOUT_S = 30.0
POOL_SIZE = 40  # server connections per database and user; PostgreSQL allows 200 in all
MIN_SERVERS = 4  # opened before the command starts, so that transactions go round them
POOLER_URL_VARIABLE = "HORSIES_POOLER_URL"


def find_pgbouncer() -> str:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin")
    if not found:
        sys.exit(
            "pgbouncer is not installed: apt-get install pgbouncer (./dev test does it as root)"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(server_host: str, server_port: int, port: int, folder: Path, user: str) -> str:
    return f"""\
[databases]
* = host={server_host} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
; Each transaction takes the next server connection in turn (not the last one used), so that
; anything that relies on a session (a prepared statement, a SET) fails at once: there are
; always several server connections to go round (opened by `wait_ready`, never closed idle).
server_round_robin = 1
server_idle_timeout = 0
default_pool_size = {POOL_SIZE}
max_client_conn = 1000
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
admin_users = {user}
"""


def pooled_url(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def admin_url(url: str) -> str:
    """PgBouncer's admin console (its `pgbouncer` database) at the same address."""
    return urlunsplit(urlsplit(url)._replace(path="/pgbouncer"))


def server_connections(url: str) -> int:
    """How many server connections PgBouncer holds (SHOW SERVERS on its admin console)."""
    with psycopg.connect(admin_url(url), autocommit=True, prepare_threshold=None) as conn:
        return len(conn.execute("SHOW SERVERS").fetchall())


def open_server_connections(url: str) -> None:
    """MIN_SERVERS transactions at once through PgBouncer: one server connection each."""
    with contextlib.ExitStack() as stack:
        for _ in range(MIN_SERVERS):
            conn = stack.enter_context(psycopg.connect(url, prepare_threshold=None))
            conn.execute("SELECT 1")  # opens a transaction, which holds a server connection


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until a query goes through PgBouncer and its MIN_SERVERS server connections are open
    (bounded; fails with its log)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            sys.exit(f"pgbouncer exited ({proc.returncode}):\n{_read(log)}")
        try:
            open_server_connections(url)
            if server_connections(url) >= MIN_SERVERS:
                return
            problem = f"fewer than {MIN_SERVERS} server connections"
        except psycopg.OperationalError as exc:
            problem = str(exc)
        if time.monotonic() > deadline:
            sys.exit(f"pgbouncer not ready in {READY_TIMEOUT_S}s ({problem}):\n{_read(log)}")
        time.sleep(0.05)  # polling interval of a bounded wait for the server to be ready


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else "(no log)"


@contextlib.contextmanager
def pgbouncer(database_url: str) -> Iterator[str]:
    """PgBouncer in transaction mode in front of `database_url`; yields the pooled URL."""
    parts = urlsplit(database_url)
    user = parts.username or "postgres"
    folder = Path(tempfile.mkdtemp(prefix="horsies-pgbouncer-"))
    runas = "postgres" if os.geteuid() == 0 else None
    try:
        port = free_port()
        (folder / "users.txt").write_text(f'"{user}" ""\n')
        (folder / "pgbouncer.ini").write_text(
            config(parts.hostname or "127.0.0.1", parts.port or 5432, port, folder, user)
        )
        command = [find_pgbouncer(), str(folder / "pgbouncer.ini")]
        if runas is not None:
            entry = pwd.getpwnam(runas)
            for path in [folder, *folder.iterdir()]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
            command[1:1] = ["-u", runas]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            url = pooled_url(database_url, port)
            wait_ready(url, proc, folder / "pgbouncer.log")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit("usage: python -m tests.pooler -- COMMAND [ARGS...]")
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        sys.exit("DATABASE_URL is not set: run it under ./dev test (or export one)")
    with pgbouncer(database_url) as url:
        print(f"[pooler] PgBouncer (transaction pooling) at {url}", file=sys.stderr)
        return subprocess.call(argv, env={**os.environ, POOLER_URL_VARIABLE: url})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
