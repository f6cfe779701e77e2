"""``python -m horsies_django.embedded_pg run -- CMD``: run one command against a throwaway server.

With ``DATABASE_URL`` already set, CMD is exec'd as is. Otherwise CMD runs with the server's
variables exported, receives the SIGINT/SIGTERM/SIGHUP we get, and its exit code is ours
(``128 + N`` when signal N ended it) once the server is gone.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
from collections.abc import Sequence
from types import FrameType

from horsies_django.embedded_pg.errors import EmbeddedPostgresError, log
from horsies_django.embedded_pg.server import SUPERUSER, ThrowawayServer
from horsies_django.embedded_pg.termination import FORWARDED_SIGNALS
from horsies_django.embedded_pg.throwaway import running_postgres


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
        log(f"cannot run {cmd[0]!r}: {exc}")
        return 127

    def forward(signum: int, frame: FrameType | None) -> None:
        if child.poll() is not None:
            return
        if signum == signal.SIGINT and _tty_delivers_sigint():
            return
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - returncode if returncode < 0 else returncode


def _parser() -> argparse.ArgumentParser:
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``run [--keep-env] [--dbname NAME] -- CMD ARGS...``, run CMD, return its code."""
    parser = _parser()
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
            log(f"cannot run {cmd[0]!r}: {exc}")
            return 127

    try:
        with running_postgres(args.dbname) as server:
            return _run_command(cmd, _child_env(server, args.keep_env))
    except EmbeddedPostgresError as exc:
        log(f"error: {exc}")
        return 1
