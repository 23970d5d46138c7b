"""The health dashboard's charts in a real Chromium: with data, live while open, and
with JavaScript off (the charts are plain SVG in the HTML).

Token requests of the last 24 hours and the sweep's status snapshots are made with the
ORM. Screenshots: ``var/screenshots/24-dashboard-charts.png`` and
``var/screenshots/25-dashboard-no-js.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from connections.metrics_history import snapshot_slot
from connections.models import App, ConfigVariable, Connection, Customer, Status, StatusSnapshot
from oauthflow.models import Outcome, TokenRequest, TokenRequestKind
from tests.browser.conftest import DESKTOP, TIMEOUT_MS
from tests.browser.steps import Portal, Screenshots, accessibility_problems
from tests.browser.test_admin_dashboard import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    _connected,
    _fleet,
)

pytestmark = [pytest.mark.browser]

CHARTS = (
    "Renewals and failures per minute",
    "Token-request latency per App",
    "Connections by status over time",
)


def _traffic(app: App, *, hours: int = 24) -> None:
    """Renewals every 20 minutes for ``hours`` hours, slower and failing now and then."""
    now = timezone.now()
    rows = []
    for step in range(hours * 3):
        at = now - timedelta(minutes=20 * step + 1)
        bad = step % 9 == 4
        rows.append(
            TokenRequest(
                app=app,
                kind=TokenRequestKind.REFRESH,
                flavor=1,
                url=app.token_url,
                outcome=Outcome.TRANSIENT if bad else Outcome.SUCCEEDED,
                status_code=503 if bad else 200,
                duration_ms=900 + step * 7 if bad else 80 + (step % 5) * 30,
                created_at=at,
            )
        )
    TokenRequest.objects.bulk_create(rows)


def _history() -> None:
    """Snapshots every 5 minutes over the last 6 hours: a connection broke 2 hours ago."""
    now = timezone.now()
    for step in range(1, 73):
        at = now - timedelta(minutes=5 * step)
        broken = step <= 24
        StatusSnapshot.objects.create(
            slot=snapshot_slot(at),
            taken_at=at,
            counts={
                Status.CONNECTED: 3 if broken else 4,
                Status.FAILING: 1 if broken and step > 12 else 0,
                Status.REAUTHORIZATION_REQUIRED: 1 if step <= 12 else 0,
                Status.ERROR: 1,
                Status.PENDING: 0,
            },
        )


def _charted_fleet(portal: Portal) -> None:
    _fleet(portal)
    _history()
    _traffic(portal.connection.app)
    _traffic(Connection.objects.get(slug="sandbox-service-account").app, hours=3)


def _admin_login(page: Page, portal: Portal) -> None:
    """Sign in to the admin as a superuser (the index's heading is another test's)."""
    get_user_model().objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)
    page.goto(f"{portal.url}/admin/")
    page.get_by_label("Username").fill(ADMIN_USERNAME)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{portal.url}/admin/")


def _csp_violations(page: Page) -> list[str]:
    seen: list[str] = []
    page.on(
        "console",
        lambda message: (
            seen.append(message.text)
            if "Content Security Policy" in message.text or "Refused to" in message.text
            else None
        ),
    )
    return seen


def _expect_charts(page: Page) -> None:
    for heading in CHARTS:
        module = page.locator(".module", has=page.get_by_role("heading", name=heading))
        chart = module.locator("svg[role=img]")
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box is not None
        assert box["width"] > 400
        assert box["height"] > 100


def test_the_dashboard_charts_render_with_data_and_stay_live(
    page: Page, portal: Portal, shot: Screenshots, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connections.admin.DASHBOARD_POLL_SECONDS", 3)
    _charted_fleet(portal)
    failed = TokenRequest.objects.filter(outcome__in=Outcome.failures()).count()
    violations = _csp_violations(page)
    _admin_login(page, portal)
    page.goto(portal.url + reverse("admin:connections_dashboard"))

    _expect_charts(page)
    activity = page.locator("#chart-activity")
    expect(activity.get_by_role("img")).to_have_attribute("aria-label", re.compile("renewal"))
    expect(activity.locator("svg .legends")).to_contain_text("Renewals")
    expect(activity.locator("svg .legends")).to_contain_text("Failures")
    figures = activity.locator("dl.figures")
    expect(figures.locator("dt", has_text="Failures, 24 h").locator("+ dd")).to_have_text(
        str(failed)
    )
    # The numbers beside the chart: hour by hour, opened without JavaScript (details).
    activity.get_by_text("The numbers, hour by hour").click()
    hours = activity.locator("details table tbody tr")
    expect(hours.first).to_be_visible()
    assert hours.count() in (24, 25)  # 144 ten-minute steps span 24 or 25 clock hours

    latency = page.locator("#chart-latency")
    expect(latency.locator("svg")).to_contain_text("Sandbox")
    expect(latency.locator("table.figures tbody tr")).to_have_count(2)
    expect(latency.locator("table.figures").get_by_role("row").nth(1)).to_contain_text(" ms")

    status = page.locator("#chart-status")
    expect(status.locator("svg .legends")).to_contain_text("Connected")
    row = status.get_by_role("row").filter(has_text="Failing (retrying)")
    expect(row.get_by_role("cell").first).to_have_text("Failing (retrying)")
    expect(row.get_by_role("cell").nth(1)).to_have_text("—")  # 24 h ago: no snapshot
    expect(row.get_by_role("cell").last).to_have_text("1")  # now: Initech

    by_app = page.locator(".module", has=page.get_by_role("heading", name="By App"))
    sandbox = by_app.get_by_role("row").filter(
        has=page.get_by_role("cell", name="Sandbox", exact=True)
    )
    expect(sandbox.locator("svg.pygal-sparkline")).to_be_visible()
    expect(sandbox).to_contain_text(re.compile(r"\d\d requests, \d+ failed"))

    # Live: a new failure shows up without a reload (polled every 3 s here), and the
    # reader's <details> stays open across the swaps.
    page.evaluate("window.__sameDocument = true")
    cv = ConfigVariable.objects.filter(status=Status.FAILING).first()
    TokenRequest.objects.create(
        app=cv.connection.app,
        config_variable=cv,
        kind=TokenRequestKind.REFRESH,
        flavor=1,
        url=cv.connection.app.token_url,
        outcome=Outcome.TRANSIENT,
        status_code=503,
        duration_ms=50,
    )
    expect(figures.locator("dt", has_text="Failures, 24 h").locator("+ dd")).to_have_text(
        str(failed + 1)
    )
    assert page.evaluate("window.__sameDocument") is True
    expect(activity.locator("details")).to_have_attribute("open", "")
    activity.get_by_text("The numbers, hour by hour").click()  # closed for the picture

    # Hidden tab: no polling; shown again: one request at once.
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/dashboard/live/" in r.url else None)
    page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {configurable: true, "
        "get: () => 'hidden'}); document.dispatchEvent(new Event('visibilitychange'))"
    )
    page.wait_for_timeout(1000)
    polls.clear()
    page.wait_for_timeout(3000)
    assert polls == []
    page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {configurable: true, "
        "get: () => 'visible'}); document.dispatchEvent(new Event('visibilitychange'))"
    )
    page.wait_for_timeout(500)
    assert polls

    assert accessibility_problems(page) == []
    page.mouse.move(0, 0)
    shot(page, "24-dashboard-charts")
    assert violations == []
    # Stop polling before the test's database goes away: hidden, the last poll done.
    page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {configurable: true, "
        "get: () => 'hidden'})"
    )
    page.wait_for_timeout(1000)  # a poll already sent has its answer
    page.goto("about:blank")


@pytest.fixture
def no_js_page(chromium: Browser) -> Iterator[Page]:
    """A desktop page in a context with JavaScript disabled."""
    context = chromium.new_context(
        locale="en-US", timezone_id="UTC", viewport=DESKTOP, java_script_enabled=False
    )
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


def test_the_dashboard_charts_render_without_javascript(
    no_js_page: Page, portal: Portal, shot: Screenshots
) -> None:
    page = no_js_page
    _charted_fleet(portal)
    _connected(Customer.objects.create(name="Soylent"), portal.connection)
    _admin_login(page, portal)
    page.goto(portal.url + reverse("admin:connections_dashboard"))

    _expect_charts(page)
    expect(page.locator("svg.pygal-sparkline")).to_have_count(2)
    expect(page.locator("#chart-latency table.figures tbody tr")).to_have_count(2)
    as_of = re.compile(r"Figures as of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
    expect(page.get_by_text(as_of)).to_be_visible()
    # The hour-by-hour numbers open without a script (<details>).
    page.get_by_text("The numbers, hour by hour").click()
    hours = page.locator("#chart-activity details table tbody tr")
    expect(hours.first).to_be_visible()
    assert hours.count() in (24, 25)
    shot(page, "25-dashboard-no-js")
