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

It is a tool beside the queue, not part of it: no module of the queue imports this package, and
it imports nothing of the queue. Modules, one job each: ``errors`` (its exception and log
lines), ``binaries`` (finding initdb, postgres, pg_ctl), ``runas`` (the OS user the server runs
as, its temp dir), ``server`` (the :class:`ThrowawayServer` record), ``postmaster`` (initdb,
start, wait, stop), ``termination`` (signals during a server's life), ``throwaway`` (the context
managers), ``cli`` (``main``).
"""

from __future__ import annotations

from horsies_django.embedded_pg.binaries import find_pg_bindir, require_pg_bindir
from horsies_django.embedded_pg.cli import main
from horsies_django.embedded_pg.errors import EmbeddedPostgresError
from horsies_django.embedded_pg.server import ThrowawayServer
from horsies_django.embedded_pg.throwaway import running_postgres, throwaway_postgres

__all__ = [
    "EmbeddedPostgresError",
    "ThrowawayServer",
    "find_pg_bindir",
    "main",
    "require_pg_bindir",
    "running_postgres",
    "throwaway_postgres",
]
