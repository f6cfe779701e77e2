"""End to end in headless Chromium: find a workflow in the list, open it, follow its graph.

Same setup as tests/test_admin_browser.py (Debian's /usr/bin/chromium, the `playwright`
package). With HORSIES_UPDATE_SCREENSHOTS=1 it rewrites docs/img/admin-workflow.png, shown by
docs/admin.md; otherwise the screenshot goes to a temporary folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from horsies_django import app, from_node
from horsies_django.models import Task, WorkflowNode
from horsies_django.testing import run_pending
from tests.browser import BROWSER_MARKS, SHOTS, chromium_page, log_in
from tests.testapp.tasks import add
from tests.testapp.workflow_tasks import fail_int, fetch, total

pytestmark = BROWSER_MARKS


@pytest.fixture
def checkout() -> str:
    """An operator account and a workflow caught mid-way: completed, failed, skipped, running,
    enqueued and pending nodes. All ORM work happens here, before Playwright's event loop."""
    User.objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    load = fetch.node(node_id="load_order")(order_id=4)
    price = total.node(node_id="price")(amount=from_node(load), extra=2)
    stock = fail_int.node(node_id="reserve_stock")(code="OUT_OF_STOCK")
    ship = add.node(waits_for=[stock], node_id="ship")(a=1, b=1)
    charge = add.node(waits_for=[price], node_id="charge_card")(a=2, b=2)
    email = add.node(waits_for=[load], node_id="send_email")(a=3, b=3)
    audit = add.node(waits_for=[charge, email], node_id="audit")(a=4, b=4)
    spec = app.workflow(
        "shop.checkout", tasks=[load, price, stock, ship, charge, email, audit], output=audit
    )
    workflow_id = str(spec.start().ok_value.workflow_id)
    run_pending(task_names=["tests.wf.fetch", "tests.wf.total", "tests.wf.fail_int"])
    running = WorkflowNode.objects.get(workflow_id=workflow_id, node_id="charge_card")
    assert running.task_id is not None
    Task.objects.filter(pk=running.task_id).update(status="RUNNING", started_at=timezone.now())
    return workflow_id


@pytest.fixture
def page(live_server: Any, checkout: str) -> Iterator[Any]:
    with chromium_page() as page:
        yield page


def test_operator_opens_a_workflow_and_follows_a_node_to_its_task(
    live_server: Any, checkout: str, page: Any
) -> None:
    base = live_server.url
    log_in(page, base, "/admin/horsies_django/workflow/")
    page.wait_for_selector("#result_list")
    row = page.locator("#result_list tbody tr")
    assert row.count() == 1
    assert "Running" in row.locator(".hz-badge").inner_text()
    # done: 2 completed, 1 failed, 1 skipped
    assert "4/7" in row.locator(".hz-progress-text").inner_text()

    row.locator(f"a[href*='{checkout}']").first.click()
    page.wait_for_selector("svg.hz-dag")
    shapes = page.locator("svg.hz-dag g.hz-dag-node")
    assert shapes.count() == 7
    statuses = {
        shapes.nth(i).get_attribute("data-node-id"): shapes.nth(i).get_attribute("data-status")
        for i in range(7)
    }
    assert statuses == {
        "load_order": "COMPLETED",
        "price": "COMPLETED",
        "reserve_stock": "FAILED",
        "ship": "SKIPPED",
        "charge_card": "RUNNING",
        "send_email": "ENQUEUED",
        "audit": "PENDING",
    }

    # The graph is laid out in columns: each node sits right of what it waits for.
    def left(node_id: str) -> float:
        box = page.locator(f"g.hz-dag-node[data-node-id='{node_id}'] rect").bounding_box()
        assert box is not None
        return float(box["x"])

    assert left("load_order") < left("price") < left("charge_card") < left("audit")
    assert left("send_email") == left("price")
    assert page.locator("table.hz-nodes tbody tr").count() == 7
    page.locator("svg.hz-dag").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "admin-workflow.png"), full_page=True)

    page.locator("a.hz-dag-link:has(g[data-node-id='reserve_stock'])").click()
    page.wait_for_selector(".field-status_badge")
    assert "Failed" in page.locator(".field-status_badge").inner_text()
    assert "tests.wf.fail_int" in page.locator(".field-task_name").inner_text()
    assert page.locator("#attempts-group .hz-badge.hz-failed").count() == 1
