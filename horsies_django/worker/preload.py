"""Imported once by the worker's fork server, so each child starts with Django already set up.

Children are forked from this server process, not from the worker parent: they inherit no
database connection and no state of the parent's. The server opens no connection itself (any
that app loading opened are closed here), so no socket is ever shared with a child.
"""

import logging

import django
from django.db import connections

try:
    django.setup()
    connections.close_all()
except Exception:  # children then run django.setup() themselves and report the error
    logging.getLogger("horsies_django.worker").exception("could not preload Django")
