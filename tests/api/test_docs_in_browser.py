"""The API reference page in a real Chromium under the portal's Content-Security-Policy:
Swagger UI renders the document, with no CSP violation and no request leaving the
portal."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_reference_page_renders_under_the_csp(live_server, monkeypatch):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    # Django's documented opt-out while Playwright's loop runs in this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    portal = urlsplit(live_server.url).netloc
    violations: list[str] = []
    hosts: set[str] = set()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", lambda message: violations.append(message.text))
        page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
        page.goto(f"{live_server.url}/api/v1/docs")
        expect(page.locator(".opblock-summary-path").first).to_be_visible()
        expect(page.get_by_text("/api/v1/connect-sessions", exact=True)).to_be_visible()
        browser.close()
    assert not [text for text in violations if "Content Security Policy" in text]
    assert hosts <= {portal, ""}  # data: URLs have no host
