from __future__ import annotations

import pytest

from tests.conftest import sql_value
from tests.testapp.tasks import add

pytestmark = pytest.mark.usefixtures("clean_tables")


def test_worker_runs_a_sent_task(start_worker) -> None:
    start_worker()
    handle = add.send(a=2, b=3).ok_value
    assert handle.get(timeout_ms=20_000).ok_value == 5
    assert sql_value("SELECT status FROM horsies_task WHERE id = %s", handle.task_id) == "COMPLETED"
