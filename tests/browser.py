"""What the browser tests share: headless Chromium (Debian's /usr/bin/chromium, driven by the
`playwright` package, no `playwright install`), their marks, a page, the operator's log-in, and
where screenshots go (docs/img/ with HORSIES_UPDATE_SCREENSHOTS=1, else a temporary folder, so a
test run leaves the checkout clean)."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = (
    ROOT / "docs" / "img"
    if os.environ.get("HORSIES_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.mkdtemp(prefix="horsies-screenshots-"))
)
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.usefixtures("clean_tables"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="the playwright package is not installed",
    ),
]


@contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A logged-out Chromium page of that size, light theme. Do the ORM work before entering:
    Playwright runs an event loop, and Django refuses synchronous queries inside one."""
    if "django.contrib.staticfiles" not in settings.INSTALLED_APPS:
        pytest.fail(
            "tests/settings.py needs 'django.contrib.staticfiles' in INSTALLED_APPS and "
            "STATIC_URL = 'static/': without them the live server cannot serve the admin"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        context = browser.new_context(
            viewport={"width": width, "height": height}, color_scheme="light"
        )
        context.set_default_timeout(20_000)
        yield context.new_page()
        browser.close()


def log_in(page: Any, base: str, next_path: str) -> None:
    """Log in as the tests' operator (password s3cret-pass) and go to `next_path`."""
    page.goto(f"{base}/admin/login/?next={next_path}")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "s3cret-pass")
    page.click("input[type=submit]")
