"""The idle-timeout warning really runs in a browser under our CSP (headless Chromium)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.accounts.conftest import READER_PASSWORD

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def plain_user(transactional_db):
    """Created before the browser starts: code inside Playwright's sync API runs in a greenlet
    with its own context, where Django would open (and leak) a second database connection."""
    return get_user_model().objects.create_user("plain", password=READER_PASSWORD)


@pytest.fixture
def browser_page():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.slow
def test_warning_appears_before_the_idle_timeout_and_stay_signed_in_hides_it(
    live_server, settings, plain_user, browser_page
):
    settings.SESSION_IDLE_TIMEOUT = 123  # the warning shows 120 s before: after ~3 s
    page = browser_page
    problems: list[str] = []

    def on_console(message) -> None:
        # The browser's own favicon probe 404s; everything else is a real problem.
        if message.type == "error" and not message.location.get("url", "").endswith("favicon.ico"):
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "plain")
    page.fill("input[name=password]", READER_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    banner = page.locator("#idle-warning")
    assert banner.is_hidden()
    banner.wait_for(state="visible", timeout=15_000)
    assert "You will be signed out in" in page.inner_text("#idle-warning-text")
    page.click("#idle-stay")
    banner.wait_for(state="hidden", timeout=5_000)
    assert problems == []  # no CSP violation, no script error
