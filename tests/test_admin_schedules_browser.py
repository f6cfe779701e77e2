"""End to end in headless Chromium: an operator finds a schedule, runs it now, and follows the
link to the task it sent.

Same setup as tests/test_admin_browser.py. With HORSIES_UPDATE_SCREENSHOTS=1 it rewrites
docs/img/admin-schedules.png, shown by docs/schedules.md; otherwise the screenshot goes to a
temporary folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import User

from horsies_django.schedules import Cron, Daily, Every, Schedule
from horsies_django.schedules.firing import fire, write_declared
from tests.browser import BROWSER_MARKS, SHOTS, chromium_page, log_in
from tests.conftest import database_url

pytestmark = BROWSER_MARKS

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def schedules() -> None:
    """An operator, three declared schedules, one of which has fired. All database work
    happens here, before Playwright's event loop."""
    User.objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    declared = [
        Schedule(name="nightly-report", task="tests.add", kwargs={"a": 1, "b": 2},
                 pattern=Daily.model_validate({"at": "02:30"}), timezone="Europe/Berlin"),
        Schedule(name="heartbeat", task="tests.noop", pattern=Every(seconds=30)),
        Schedule(name="quarter-hourly", task="tests.noop", enabled=False,
                 pattern=Cron(expression="*/15 * * * *"), timezone="America/New_York"),
    ]  # fmt: skip
    with psycopg.connect(database_url(), autocommit=True) as conn:
        write_declared(conn, {s.name: s for s in declared}, NOW)
        fire(conn, "heartbeat", datetime(2026, 12, 4, 9, 0, 30, tzinfo=UTC))


@pytest.fixture
def page(live_server: Any, schedules: None) -> Iterator[Any]:
    with chromium_page(1560, 640) as page:
        yield page


def test_operator_runs_a_schedule_now_and_opens_its_last_task(live_server: Any, page: Any) -> None:
    log_in(page, live_server.url, "/admin/horsies_django/schedule/")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 3
    heartbeat = rows.filter(has_text="heartbeat")
    assert "every 30s" in heartbeat.inner_text()
    assert "Enabled" in heartbeat.locator(".hz-badge").inner_text()
    assert "Disabled" in rows.filter(has_text="quarter-hourly").locator(".hz-badge").inner_text()
    page.screenshot(path=str(SHOTS / "admin-schedules.png"), full_page=True)

    rows.filter(has_text="nightly-report").locator("input.action-select").check()
    page.select_option("select[name=action]", "run_schedules_now")
    page.click("button[name=index]")
    page.wait_for_selector(".hz-confirm-table")
    assert "Run now: are you sure?" in page.content()
    page.click("form input[type=submit][value*='yes']")
    page.wait_for_selector(".messagelist")
    assert "Sent 1 schedule." in page.locator(".messagelist").inner_text()

    heartbeat = page.locator("#result_list tbody tr").filter(has_text="heartbeat")
    heartbeat.locator("a[href*='/admin/horsies_django/task/']").first.click()
    page.wait_for_selector(".field-status_badge")
    assert "tests.noop" in page.content()
