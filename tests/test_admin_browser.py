"""End to end in headless Chromium: log in, find a failed task, re-enqueue it, see it complete.

Needs Debian's /usr/bin/chromium and the `playwright` package (no `playwright install`).
With HORSIES_UPDATE_SCREENSHOTS=1 it also rewrites the screenshots used by docs/admin.md
(docs/img/); otherwise they go to a temporary folder, so a test run leaves the checkout clean.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.browser import BROWSER_MARKS, SHOTS, chromium_page, log_in
from tests.conftest import sql_value, wait_until

pytestmark = BROWSER_MARKS


@pytest.fixture
def flaky_failed(start_worker: Callable[..., Any], tmp_path: Path) -> str:
    """An operator account, a running worker, and a `tests.flaky_once` task that has FAILED.

    Everything that uses Django's ORM happens here, before Playwright starts its event loop.
    """
    from tests.testapp import admin_tasks
    from tests.testapp.tasks import add, domain_error

    User.objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    flaky_id = str(admin_tasks.flaky_once.send(marker=str(tmp_path / "marker")).ok_value.task_id)
    for i in range(3):
        add.send(a=i, b=1)
    domain_error.send(reason="out of stock")
    start_worker()
    wait_until(lambda: task_status(flaky_id) == "FAILED", what="the first run to fail")
    wait_until(
        lambda: (
            not sql_value(
                "SELECT count(*) FROM horsies_task WHERE status NOT IN ('COMPLETED', 'FAILED')"
            )
        ),
        what="all tasks done",
    )
    return flaky_id


@pytest.fixture
def page(live_server: Any, flaky_failed: str) -> Iterator[Any]:
    with chromium_page() as page:
        yield page


def task_status(task_id: str) -> str | None:
    value = sql_value("SELECT status FROM horsies_task WHERE id = %s", task_id)
    return None if value is None else str(value)


def test_operator_reenqueues_a_failed_task_and_sees_it_complete(
    live_server: Any, flaky_failed: str, page: Any
) -> None:
    flaky_id = flaky_failed
    base = live_server.url

    log_in(page, base, "/admin/horsies_django/task/")
    page.wait_for_selector(".hz-summary")
    page.screenshot(path=str(SHOTS / "admin-changelist.png"), full_page=True)

    page.click("#changelist-filter a[href*='status__exact=FAILED']")
    page.wait_for_url(re.compile(r"status__exact=FAILED"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2  # the flaky task and the domain error
    page.click(f"#result_list a[href*='{flaky_id}']")
    page.wait_for_selector("#attempts-group")
    inline = page.locator("#attempts-group")
    assert inline.locator(".hz-badge.hz-failed").count() == 1
    assert "first run: created marker" in inline.inner_text()
    assert "RuntimeError" in page.locator(".field-last_traceback pre").inner_text()
    page.screenshot(path=str(SHOTS / "admin-task-detail.png"), full_page=True)

    page.click("button[data-action='reenqueue_tasks']")
    page.wait_for_selector(".hz-confirm-table")
    assert flaky_id in page.locator(".hz-confirm-table").inner_text()
    page.click("input[type=submit][value^='Re-enqueue']")
    message = page.locator("ul.messagelist li.success")
    assert "Re-enqueued 1 task." in message.inner_text()
    new_id = str(sql_value("SELECT id::text FROM horsies_task WHERE origin = %s", flaky_id))
    wait_until(lambda: task_status(new_id) == "COMPLETED", what="the re-enqueued copy to complete")

    message.locator("a").click()
    page.wait_for_selector(".field-status_badge")
    assert "Completed" in page.locator(".field-status_badge").inner_text()
    assert flaky_id in page.locator(".field-origin_link").inner_html()
    assert "second time lucky" in page.locator(".field-result_json").inner_text()
    assert page.locator("#attempts-group .hz-badge.hz-completed").count() == 1

    # Django's dark theme (prefers-color-scheme): the same pages stay readable.
    page.emulate_media(color_scheme="dark")
    page.goto(f"{base}/admin/horsies_django/task/")
    page.wait_for_selector(".hz-summary")
    page.screenshot(path=str(SHOTS / "admin-changelist-dark.png"), full_page=True)
    body_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    tile = page.locator(".hz-tile").first
    tile_fg = tile.evaluate("e => getComputedStyle(e).color")
    assert _luminance(body_bg) < 0.2, body_bg
    assert _luminance(tile_fg) > 0.5, tile_fg


# Where the right edge of a changelist's last column is, against its scrolling box and the window.
MEASURE_LIST = """() => {
  const table = document.querySelector("#result_list");
  const box = table.closest(".results");
  const lastCells = [...table.rows].map((row) => row.cells[row.cells.length - 1]);
  return {
    window: document.documentElement.clientWidth,
    page: document.documentElement.scrollWidth,
    box_right: Math.round(box.getBoundingClientRect().right),
    box_width: box.clientWidth,
    table_width: Math.round(table.getBoundingClientRect().width),
    last_right: Math.round(Math.max(...lastCells.map((c) => c.getBoundingClientRect().right))),
  };
}"""


def test_task_and_attempt_lists_show_every_column_at_1280_and_1400_px(
    live_server: Any, page: Any
) -> None:
    """Nothing to scroll to: each row's last cell ends inside the list's box and the window.

    Beside Django's two sidebars a 1280 px window leaves the list 631 px (1400 px: 751 px).
    """
    log_in(page, live_server.url, "/admin/")
    page.wait_for_selector("#content-main")
    cut: list[str] = []
    for width in (1280, 1400):
        page.set_viewport_size({"width": width, "height": 900})
        for model in ("task", "taskattempt"):
            page.goto(f"{live_server.url}/admin/horsies_django/{model}/")
            page.wait_for_selector("#result_list tbody tr")
            size = page.evaluate(MEASURE_LIST)
            if model == "taskattempt" and width == 1280:
                page.screenshot(path=str(SHOTS / "admin-attempts.png"), full_page=True)
            # The last column ends inside the list's box (nothing to scroll to) and the window.
            if not (
                size["table_width"] <= size["box_width"]
                and size["last_right"] <= min(size["box_right"], size["window"])
                and size["page"] <= size["window"]
            ):
                cut.append(f"{model} list at {width} px: {size}")
    assert not cut, "\n".join(cut)


def test_task_detail_shows_the_task_id_once(live_server: Any, flaky_failed: str, page: Any) -> None:
    """Once, in full, with its copy button; not again as a short form or a prefix elsewhere."""
    task_id = flaky_failed
    log_in(page, live_server.url, f"/admin/horsies_django/task/{task_id}/change/")
    page.wait_for_selector("#attempts-group")
    text = page.locator("body").inner_text()
    mentions = {
        "full": text.count(task_id),
        "short": text.count(f"{task_id[:8]}…{task_id[-4:]}"),
        # the bare 8-digit prefix, as in "tests.flaky_once 01a213be (FAILED)"
        "prefix": len(re.findall(rf"\b{task_id[:8]}\b(?![-…])", text)),
    }
    assert mentions == {"full": 1, "short": 0, "prefix": 0}, mentions
    assert task_id in page.locator(".field-id_full").inner_text()
    copy = page.locator(".field-id_full button.hz-copy")
    assert copy.get_attribute("data-copy") == task_id
    # The attempts table shows its last column (traceback) without scrolling, too.
    table, box = page.evaluate(
        "() => { const t = document.querySelector('#attempts-group table');"
        " return [t.getBoundingClientRect().width, t.parentElement.clientWidth]; }"
    )
    assert table <= box, (table, box)


def _luminance(css_rgb: str) -> float:
    """Relative luminance (0 black .. 1 white) of a CSS `rgb(...)`/`rgba(...)` colour."""
    r, g, b = (int(v) / 255 for v in re.findall(r"[\d.]+", css_rgb)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
