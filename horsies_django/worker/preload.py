"""Imported once by the worker's fork server, so each child starts with Django already set up.

Children are forked from this server process, not from the worker parent: they inherit no
database connection and no state of the parent's. The server opens no connection itself (any
that app loading opened are closed here), so no socket is ever shared with a child.

It first takes the parent's import path (see `inheritance`). If Django cannot be set up here,
the traceback is kept in `SETUP_ERROR`: every child reports it to the parent instead of
starting, and the worker stops with it (retrying in each child would fail the same way).
"""

import signal
import traceback

from horsies_django.worker import inheritance

inheritance.apply()
# A SIGTERM sent to the worker's whole process group must not end the fork server: the
# parent may still need a child while it stops. It exits when the parent does.
signal.signal(signal.SIGTERM, signal.SIG_IGN)

SETUP_ERROR: str | None = None

try:
    import django
    from django.db import connections

    django.setup()
    connections.close_all()
except Exception:
    SETUP_ERROR = traceback.format_exc()
