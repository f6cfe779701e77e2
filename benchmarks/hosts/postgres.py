"""The harness's own PostgreSQL, listening on loopback and on every host's link (root only).

It lives in `DIRECTORY`, a fixed path, so that a run can stop and remove the server a crashed
run left behind. Settings are those of `./dev bench`'s throwaway server (fsync on,
shared_buffers 128MB, max_connections 200); the binaries are those `./dev` finds (the system's
PostgreSQL first), and the server runs as the `postgres` OS user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg

from benchmarks.hosts.naming import Host, database_url, hba_lines, listen_addresses
from horsies_django.embedded_pg.binaries import require_pg_bindir

DIRECTORY: Final = Path("/tmp/horsies-hosts-pg")
OS_USER: Final = "postgres"
SUPERUSER: Final = "horsies"
DBNAME: Final = "hosts"
START_TIMEOUT_S: Final = 60.0


@dataclass
class Server:
    port: int

    @property
    def datadir(self) -> Path:
        return DIRECTORY / "data"

    def url(self, address: str = "127.0.0.1") -> str:
        return database_url(address, self.port, SUPERUSER, DBNAME)

    def postmaster_pid(self) -> int | None:
        try:
            first = (self.datadir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
        except OSError:
            return None
        return int(first) if first.isdigit() else None


def _as_postgres(argv: list[str], timeout: float = 120) -> None:
    subprocess.run(
        ["runuser", "-u", OS_USER, "--", *argv], check=True, capture_output=True, timeout=timeout
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(all_hosts: list[Host]) -> Server:
    """initdb, pg_hba for loopback and the hosts, start, create the database."""
    account = pwd.getpwnam(OS_USER)
    DIRECTORY.mkdir(mode=0o700)
    os.chown(DIRECTORY, account.pw_uid, account.pw_gid)
    server = Server(port=_free_port())
    bindir = require_pg_bindir()
    _as_postgres(
        [str(bindir / "initdb"), "-D", str(server.datadir), "-U", SUPERUSER, "--auth=trust",
         "--encoding=UTF8", "--locale=C", "--no-sync"]
    )  # fmt: skip
    hba = ["local all all trust", *hba_lines(all_hosts, SUPERUSER)]
    (server.datadir / "pg_hba.conf").write_text("\n".join(hba) + "\n")
    options = (
        f"-p {server.port} -k {DIRECTORY} -c listen_addresses={listen_addresses(all_hosts)} "
        "-c max_connections=200 -c shared_buffers=128MB -c logging_collector=off"
    )
    _as_postgres(
        [str(bindir / "pg_ctl"), "-D", str(server.datadir), "-l", str(DIRECTORY / "log"),
         "-o", options, "-w", "-t", str(int(START_TIMEOUT_S)), "start"],
        timeout=START_TIMEOUT_S + 10,
    )  # fmt: skip
    with psycopg.connect(server.url().replace(f"/{DBNAME}", "/postgres"), autocommit=True) as c:
        c.execute(f"CREATE DATABASE {DBNAME}".encode())
    return server


def stop() -> bool:
    """Stop the server in `DIRECTORY` (ours or a crashed run's) and remove it; True if found."""
    if not DIRECTORY.exists():
        return False
    datadir = DIRECTORY / "data"
    if (datadir / "postmaster.pid").exists():
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _as_postgres(
                [
                    str(require_pg_bindir() / "pg_ctl"),
                    "-D",
                    str(datadir),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                timeout=60,
            )
    deadline = time.monotonic() + 30
    while (datadir / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    shutil.rmtree(DIRECTORY, ignore_errors=True)
    return True
