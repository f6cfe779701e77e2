"""Subprocesses the demo starts (the worker, the admin server), and their guaranteed cleanup.

Each runs in its own session, so Ctrl-C in the terminal reaches only the demo, which then stops
them in order: SIGTERM, a bounded wait, then SIGKILL to the whole process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"


def manage_py(*args: str) -> list[str]:
    """The command line running `manage.py` of this project with the current interpreter."""
    return [sys.executable, str(MANAGE_PY), *args]


@dataclass
class ManagedProcess:
    """A process group led by `proc`; `stop()` leaves nothing of it behind."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path | None = None

    @classmethod
    def start(
        cls, name: str, cmd: Sequence[str], *, log_path: Path | None = None
    ) -> ManagedProcess:
        """Start `cmd` in a new session; output goes to `log_path`, or to our terminal."""
        log: IO[bytes] | None = None
        try:
            if log_path is not None:
                log = log_path.open("wb")
            proc = subprocess.Popen(
                list(cmd),
                cwd=MANAGE_PY.parent,
                env=os.environ.copy(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT if log is not None else None,
                start_new_session=True,
            )
        finally:
            if log is not None:
                log.close()
        return cls(name, proc, log_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, grace_s: float) -> int | None:
        """SIGTERM the leader, wait up to `grace_s`, then SIGKILL whatever is left of the group."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace_s)
        # The leader is gone (or stuck): anything still in its group (pool children) dies too.
        self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group now, and reap the leader."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def wait_for_port(process: ManagedProcess, host: str, port: int, timeout_s: float) -> bool:
    """Until `host:port` accepts connections (True), the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.running():
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.1)  # polling interval of a bounded wait
    return False
