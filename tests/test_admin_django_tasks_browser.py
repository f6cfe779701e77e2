"""End to end in headless Chromium: a `django.tasks` task, enqueued with Django's API and run,
is found in the task list and opened like any other.

Same setup as tests/test_admin_browser.py. With HORSIES_UPDATE_SCREENSHOTS=1 it rewrites
docs/img/admin-django-task.png, shown by docs/django-tasks.md; otherwise the screenshot goes to
a temporary folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from horsies_django.testing import run_pending
from tests.browser import BROWSER_MARKS, SHOTS, chromium_page, log_in
from tests.testapp import django_tasks

pytestmark = BROWSER_MARKS


@pytest.fixture
def declined() -> str:
    """An operator, and a `django.tasks` task that failed; database work before Playwright."""
    User.objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    django_tasks.add.enqueue(2, 3)
    result = django_tasks.decline.enqueue("card expired")
    ran = run_pending()
    assert len(ran) == 2
    return str(result.id)


@pytest.fixture
def page(live_server: Any, declined: str) -> Iterator[Any]:
    with chromium_page(1400, 900) as page:
        yield page


def test_a_django_tasks_task_is_listed_and_opened_like_ours(
    live_server: Any, declined: str, page: Any
) -> None:
    log_in(page, live_server.url, "/admin/horsies_django/task/")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    failed = rows.filter(has_text="decline")
    assert "Failed" in failed.locator(".hz-badge").first.inner_text()
    failed.locator(f"a[href*='{declined}']").first.click()
    page.wait_for_selector(".field-status_badge")
    content = page.content()
    assert "django.tasks:tests.testapp.django_tasks.decline" in content.replace("<wbr>", "")
    assert "PaymentDeclinedError" in content
    assert "card expired" in content
    page.screenshot(path=str(SHOTS / "admin-django-task.png"), full_page=True)
