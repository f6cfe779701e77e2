"""Connections to the queue's database: Django's own, and the worker's psycopg connections.

Producer-side statements run on the caller's Django connection (so a send joins the caller's
transaction); a worker's statements run on its own autocommit psycopg connections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg
from django.db import connections

from horsies_django.conf import behind_transaction_pooler

# Worker statements are short and run thousands of times a second: compiling them with JIT
# (which a large backlog's row estimates can trigger) costs far more than it saves.
NO_JIT_SESSION: Final = "SELECT set_config('jit', 'off', false)"


type Row = tuple[Any, ...]


NEVER_AUTOMATICALLY = 2**31  # a psycopg prepare_threshold no statement ever reaches


def execute_on_django_connection(
    alias: str, query: str, params: Sequence[Any], *, prepare: bool
) -> None:
    """Run one statement on Django's connection of `alias`, in the caller's transaction.

    The hot single send skips Django's cursor wrapper and client-side binding, and with
    `prepare` runs as a server-side prepared statement (`HORSIES["PREPARED_STATEMENTS"]`),
    unless something observes queries: with query logging (DEBUG, `CaptureQueriesContext`) or
    execute wrappers installed, it goes through Django's cursor like any other query. Behind a
    transaction pooler nothing is prepared (the next transaction may run on another server
    connection, which never saw the statement).
    """
    db = connections[alias]
    if db.queries_logged or db.execute_wrappers:
        with db.cursor() as cur:
            cur.execute(query, params)
        return
    db.ensure_connection()
    db.validate_no_broken_transaction()
    conn = db.connection
    prepare = prepare and not behind_transaction_pooler(alias)
    if prepare and conn.prepare_threshold is None:
        # Django disables preparing by default; allow it for statements asked to prepare
        # explicitly, but never automatically (so nothing else on the connection changes).
        conn.prepare_threshold = NEVER_AUTOMATICALLY
    with db.wrap_database_errors, psycopg.Cursor(conn) as cur:
        cur.execute(query, params, prepare=prepare)


def connection_params(alias: str) -> dict[str, Any]:
    """psycopg connection arguments for the database of `alias` (read on the calling thread).

    psycopg prepares a statement run five times on a connection, unless the alias is behind a
    transaction pooler: then never.
    """
    params = dict(connections[alias].get_connection_params())
    for key in ("cursor_factory", "context"):
        params.pop(key, None)
    if behind_transaction_pooler(alias):
        params["prepare_threshold"] = None
    elif params.get("prepare_threshold", 0) is None:
        params.pop("prepare_threshold")
    params.setdefault("application_name", "horsies_worker")
    return params


def connect(alias: str, *, autocommit: bool = True) -> psycopg.Connection[Row]:
    """A fresh psycopg connection to the database of `alias` (not Django's own)."""
    return connect_with(connection_params(alias), autocommit=autocommit)


def connect_with(params: dict[str, Any], *, autocommit: bool = True) -> psycopg.Connection[Row]:
    return psycopg.connect(autocommit=autocommit, **params)


def connect_worker(params: dict[str, Any], *, pooled: bool = False) -> psycopg.Connection[Row]:
    """An autocommit connection for a worker's own statements (no JIT, unless `pooled`: a
    session setting would stay on a server connection that other clients then get)."""
    conn = connect_with(params)
    if not pooled:
        conn.execute(NO_JIT_SESSION)
    return conn
