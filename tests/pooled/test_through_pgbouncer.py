"""The queue through PgBouncer in transaction mode, LISTEN on a direct alias.

tests/pooler.py keeps four server connections open and hands them out in turn
(`server_round_robin`), so anything that relied on a session (a prepared statement, a SET)
would reach a server connection that never saw it and fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import urlsplit

import psycopg
import pytest
from django.conf import settings
from django.db import transaction

from horsies_django.conf import behind_transaction_pooler, horsies_settings
from horsies_django.db.connections import connection_params
from tests.conftest import WorkerProcess, database_url, sql_value
from tests.pooler import POOLER_URL_VARIABLE, admin_url
from tests.testapp.tasks import add, noop
from tests.worker_helpers import listen_backends, tcp_ports

pytestmark = pytest.mark.usefixtures("clean_tables")

WORKER_APP = "horsies_worker"


def pooler_url() -> str:
    return os.environ[POOLER_URL_VARIABLE]


def pooler_clients(application_name: str) -> list[int]:
    """Client ports of PgBouncer's clients with this application_name (SHOW CLIENTS)."""
    with psycopg.connect(admin_url(pooler_url()), autocommit=True, prepare_threshold=None) as c:
        cur = c.execute("SHOW CLIENTS")
        names = [d.name for d in cur.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return [
        int(r["port"])
        for r in rows
        if r["application_name"] == application_name and r["database"] != "pgbouncer"
    ]


def test_the_queue_alias_goes_through_pgbouncer_and_listen_does_not() -> None:
    conf = horsies_settings()
    assert conf.DATABASE_ALIAS == "default"
    assert conf.listen_alias == "direct"
    assert behind_transaction_pooler("default")
    assert not behind_transaction_pooler("direct")
    assert int(settings.DATABASES["default"]["PORT"]) == urlsplit(pooler_url()).port
    assert int(settings.DATABASES["direct"]["PORT"]) == urlsplit(database_url()).port
    assert connection_params("default")["prepare_threshold"] is None  # psycopg never prepares
    with psycopg.connect(admin_url(pooler_url()), autocommit=True, prepare_threshold=None) as c:
        assert c.execute("SHOW VERSION").fetchone() is not None  # it is PgBouncer


def test_sends_through_pgbouncer_prepare_nothing_and_all_land() -> None:
    for i in range(40):  # each its own transaction, each on the next server connection
        assert noop.send().is_ok(), i
    results = add.send_many([{"a": i, "b": 1} for i in range(300)])
    assert all(r.is_ok() for r in results)
    with transaction.atomic():  # a send still joins the caller's transaction
        rolled_back = noop.send().ok_value
        transaction.set_rollback(True)
    assert sql_value("SELECT count(*) FROM horsies_task") == 340
    assert sql_value("SELECT count(*) FROM horsies_task WHERE id = %s", rolled_back.task_id) == 0


def test_a_worker_claims_and_records_through_pgbouncer_and_listens_directly(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker()
    handles = [add.send(a=i, b=i).ok_value for i in range(200)]
    assert [h.get(timeout_ms=60_000).ok_value for h in handles] == [2 * i for i in range(200)]
    assert sql_value("SELECT count(*) FROM horsies_task WHERE status = 'COMPLETED'") == 200
    # Claims and outcomes went through PgBouncer: its clients include the worker's sockets.
    ports = tcp_ports(worker.pid)
    assert len(set(pooler_clients(WORKER_APP)) & ports) >= 2  # claims + outcomes
    # LISTEN for new tasks runs on a direct connection of the worker.
    assert listen_backends(worker.pid)
    log = worker.log()
    assert "prepared statement" not in log
    assert "Traceback" not in log


def test_a_new_task_wakes_an_idle_worker_through_the_direct_listener(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker()
    assert listen_backends(worker.pid)
    handle = add.send(a=20, b=22).ok_value
    assert handle.get(timeout_ms=60_000).ok_value == 42
