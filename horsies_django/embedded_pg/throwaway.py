"""The context managers that own a throwaway server from ``initdb`` to deleting its directory.

Whatever happens inside the block (normal exit, an exception, SIGINT, SIGTERM or SIGHUP in the
main thread), the server is stopped and its temp dir removed before the block is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

from horsies_django.embedded_pg import postmaster
from horsies_django.embedded_pg.binaries import require_pg_bindir
from horsies_django.embedded_pg.errors import log
from horsies_django.embedded_pg.runas import accessible_bindir, make_tempdir, pick_runas
from horsies_django.embedded_pg.server import SUPERUSER, ThrowawayServer
from horsies_django.embedded_pg.termination import deferred_signals, exit_on_termination


@contextlib.contextmanager
def running_postgres(dbname: str = "horsies") -> Iterator[ThrowawayServer]:
    """Start a throwaway server, yield its :class:`ThrowawayServer`, then destroy it.

    The server and its temp dir are removed on normal exit, on exceptions, and when the
    process gets SIGINT, SIGTERM or SIGHUP while inside the block (from the main thread).
    """
    bindir = require_pg_bindir()
    runas = pick_runas()
    with exit_on_termination():
        tmp = make_tempdir(runas)
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
            server.bindir = accessible_bindir(bindir, tmp, runas)
            server.logfile.touch()
            if runas is not None:
                os.chown(server.logfile, runas.uid, runas.gid)
            postmaster.initdb(server, runas)
            postmaster.start(server, runas)
            if dbname != "postgres":
                postmaster.create_database(server, dbname)
            server.url = f"postgresql://{SUPERUSER}@127.0.0.1:{server.port}/{dbname}"
            log(f"PostgreSQL ready at {server.url} (data: {server.datadir})")
            yield server
        finally:
            with deferred_signals():
                postmaster.stop(server, runas)
                shutil.rmtree(tmp, ignore_errors=True)
                if tmp.exists():
                    log(f"warning: could not remove {tmp}")
                else:
                    log("PostgreSQL stopped and removed")


@contextlib.contextmanager
def throwaway_postgres(dbname: str = "horsies") -> Iterator[str]:
    """Start a private PostgreSQL server and yield its DATABASE_URL; destroy it afterwards."""
    with running_postgres(dbname) as server:
        yield server.url
