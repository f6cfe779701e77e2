"""What describes one running throwaway server, and the variables it hands to a command.

A :class:`ThrowawayServer` is a plain record: creating one starts nothing. The postmaster's PID
is read from ``postmaster.pid`` each time, because a test may restart the server under us.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

SUPERUSER = "horsies"


def read_postmaster_pid(datadir: Path) -> int | None:
    """The PID in ``datadir/postmaster.pid``, or None when there is no running server."""
    try:
        first = (datadir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


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
        return read_postmaster_pid(self.datadir)

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
