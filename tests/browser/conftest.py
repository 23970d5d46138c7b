"""Browser fixtures: Playwright (sync API) driving Debian's Chromium.

The browser is session-scoped and each test gets its own context (fresh cookies), so
tests never see each other's portal or sandbox sessions. The real sandbox authorization
server and the live portal come from ``tests.e2e.conftest``. No browser is downloaded:
Playwright launches the system Chromium (``apt-get install chromium``).

Every step's full-page screenshot goes to ``var/screenshots/`` (git-ignored); a failed
test also leaves ``FAILED-<test>.png`` there showing where it stopped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.browser.steps import Portal, Screenshots, portal_data
from tests.e2e.conftest import (
    REPO_DIR,
    SandboxServer,
    portal_callback_url,
    sandbox_server,
)

__all__ = ["portal_callback_url", "sandbox_server"]  # fixtures re-used from tests/e2e

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = REPO_DIR / "var" / "screenshots"
TIMEOUT_MS = 20_000  # Playwright's actions, navigations and expect(); all within 30 s
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=TIMEOUT_MS)

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


# Package scope: one Playwright and one Chromium for every browser test of the session
# (they all live in this package), stopped after the last one, so the asyncio loop that
# Playwright's sync API keeps running in the main thread never reaches the other tests.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright, with Django's documented opt-out of its async-safety check while it
    runs: Django sees Playwright's loop in the test thread and would raise
    SynchronousOnlyOperation for every ORM call (the tests' and pytest-django's)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as running:
            yield running


@pytest.fixture(scope="package")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium for all browser tests (the system's, not a download)."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: apt-get install chromium (or set CHROMIUM_PATH)",
        )
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


def _context(chromium: Browser, **options: Any) -> BrowserContext:
    context = chromium.new_context(locale="en-US", timezone_id="UTC", **options)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    return context


def _screenshot_on_failure(request: pytest.FixtureRequest, page: Page, folder: Path) -> None:
    report = request.node.stash.get(_REPORTS, {}).get("call")
    if report is not None and report.failed and not page.is_closed():
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
        page.screenshot(path=folder / f"FAILED-{name}.png", full_page=True)


@pytest.fixture
def page(
    chromium: Browser, request: pytest.FixtureRequest, screenshots_dir: Path
) -> Iterator[Page]:
    """A desktop-sized page in a fresh context (no cookies from other tests)."""
    context = _context(chromium, viewport=DESKTOP)
    tab = context.new_page()
    yield tab
    _screenshot_on_failure(request, tab, screenshots_dir)
    context.close()


@pytest.fixture
def phone_page(
    chromium: Browser, request: pytest.FixtureRequest, screenshots_dir: Path
) -> Iterator[Page]:
    """A phone-sized page (390x844, mobile viewport rules, touch) in a fresh context."""
    context = _context(chromium, viewport=PHONE, is_mobile=True, has_touch=True)
    tab = context.new_page()
    yield tab
    _screenshot_on_failure(request, tab, screenshots_dir)
    context.close()


@pytest.fixture
def portal(transactional_db: None, live_server: Any, sandbox_server: SandboxServer) -> Portal:
    """The live portal with a customer user and the sandbox's Connections."""
    customer, connection = portal_data(sandbox_server)
    return Portal(
        url=live_server.url, sandbox=sandbox_server, customer=customer, connection=connection
    )


@pytest.fixture
def shot(screenshots_dir: Path) -> Screenshots:
    """``shot(page, "01-name")`` saves a full-page ``var/screenshots/01-name.png``."""
    return Screenshots(screenshots_dir)
