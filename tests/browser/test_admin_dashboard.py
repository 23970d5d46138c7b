"""An admin opens the connection health dashboard, in a real Chromium.

Customers' connections in every interesting state (connected, failing, needing
reconnection, failed, about to expire without a refresh token) are made with the ORM;
the admin signs in, goes Config variables → Connection health dashboard and sees who is
broken, since when and why. Screenshot: ``var/screenshots/17-admin-dashboard.png``.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from connections.dashboard import heartbeat_beat
from connections.models import ConfigVariable, Connection, Customer, Status
from connections.services import config_variable_transition
from oauthflow.models import Outcome, TokenRequest, TokenRequestKind
from tests.browser.steps import Portal, Screenshots, accessibility_problems, link

pytestmark = [pytest.mark.browser]

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-password"


def _connected(customer: Customer, connection: Connection, **changes: object) -> ConfigVariable:
    now = timezone.now()
    fields = {
        "status": Status.CONNECTED,
        "access_token": "at-" + customer.name,
        "refresh_token": "rt-" + customer.name,
        "scopes_granted": connection.app.default_scopes,
        "connected_at": now - timedelta(days=3),
        "expires_at": now + timedelta(hours=1),
        "refresh_at": now + timedelta(minutes=50),
        **changes,
    }
    return ConfigVariable.objects.create(customer=customer, connection=connection, **fields)


def _refresh_failure(cv: ConfigVariable, *, status_code: int, error: str, why: str) -> None:
    TokenRequest.objects.create(
        app=cv.connection.app,
        config_variable=cv,
        kind=TokenRequestKind.REFRESH,
        flavor=1,
        url=cv.connection.app.token_url,
        status_code=status_code,
        outcome=Outcome.NEXT_FLAVOR if status_code < 500 else Outcome.TRANSIENT,
        error=error,
        diagnosis=why,
        duration_ms=120,
    )


def _fleet(portal: Portal) -> None:
    """A few customers' connections, some of them broken."""
    widgets = portal.connection
    service = Connection.objects.get(slug="sandbox-service-account")
    _connected(portal.customer, widgets)
    _connected(portal.customer, service, refresh_token=None)
    initech = _connected(Customer.objects.create(name="Initech"), widgets)
    config_variable_transition(
        config_variable=initech,
        to_status=Status.FAILING,
        reason="The token endpoint answered 503 three times.",
        diagnosis="server_error",
    )
    _refresh_failure(initech, status_code=503, error="", why="server_error")
    globex = _connected(Customer.objects.create(name="Globex"), widgets)
    config_variable_transition(
        config_variable=globex,
        to_status=Status.REAUTHORIZATION_REQUIRED,
        reason="The refresh token was refused (invalid_grant).",
        diagnosis="refresh_token_revoked",
        access_token=None,
        refresh_token=None,
    )
    _refresh_failure(globex, status_code=400, error="invalid_grant", why="refresh_token_revoked")
    ConfigVariable.objects.create(
        customer=Customer.objects.create(name="Umbrella"),
        connection=widgets,
        status=Status.ERROR,
        diagnosis="bad_client_credentials",
        last_error="invalid_client",
    )
    _connected(
        Customer.objects.create(name="Hooli"),
        widgets,
        refresh_token=None,
        expires_at=timezone.now() + timedelta(hours=2),
        refresh_at=None,
    )
    _connected(
        Customer.objects.create(name="Pied Piper"),
        widgets,
        refresh_token_expires_at=timezone.now() + timedelta(days=2),
    )
    heartbeat_beat()


def admin_login(page: Page, portal: Portal) -> None:
    """Sign in to the admin as a superuser; ends on the admin's index."""
    get_user_model().objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)
    page.goto(f"{portal.url}/admin/")
    page.get_by_label("Username").fill(ADMIN_USERNAME)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Apps, connections and their health")


def test_the_health_dashboard_shows_who_is_broken_and_why(
    page: Page, portal: Portal, shot: Screenshots
) -> None:
    _fleet(portal)
    admin_login(page, portal)
    link(page, "Config variables").click()
    link(page, "Connection health dashboard").click()

    expect(page).to_have_url(portal.url + reverse("admin:connections_dashboard"))
    expect(page.get_by_role("heading", name="Connection health").first).to_be_visible()
    expect(page.get_by_text(re.compile(r"The renewal sweep ran \d+ s ago"))).to_be_visible()
    attention = page.locator(".module", has=page.get_by_role("heading", name="Needs attention"))
    for customer, status in (
        ("Initech", "Failing (retrying)"),
        ("Globex", "Reauthorization required"),
        ("Umbrella", "Could not connect"),
    ):
        row = attention.get_by_role("row").filter(has_text=customer)
        expect(row).to_have_count(1)
        expect(row).to_contain_text(status)
    expect(attention.get_by_role("row").filter(has_text="Acme Widgets Ltd")).to_have_count(0)
    failures = page.locator(".module", has=page.get_by_role("heading", name="refresh failures"))
    expect(failures.get_by_role("row").filter(has_text="Initech")).to_contain_text("503")
    expect(failures.get_by_role("row").filter(has_text="Globex")).to_contain_text("400")
    expiring = page.locator(".module", has=page.get_by_role("heading", name="Will expire"))
    expect(expiring.get_by_role("row").filter(has_text="Hooli")).to_have_count(1)
    lapsing = page.locator(".module", has=page.get_by_role("heading", name="lapse soon"))
    expect(lapsing.get_by_role("row").filter(has_text="Pied Piper")).to_have_count(1)
    by_app = page.locator(".module", has=page.get_by_role("heading", name="By App"))
    sandbox_row = by_app.get_by_role("row").filter(
        has=page.get_by_role("cell", name="Sandbox", exact=True)
    )
    # App, config variables, connected (Acme, Hooli, Pied Piper), broken (Initech,
    # Globex, Umbrella), then its token requests over 24 h (a sparkline and the figures).
    expect(sandbox_row.get_by_role("cell")).to_have_text(
        ["Sandbox", "6", "3", "3", "2 requests, 2 failed"], use_inner_text=True
    )
    shot(page, "17-admin-dashboard")


def test_the_health_dashboard_is_accessible(page: Page, portal: Portal) -> None:
    admin_login(page, portal)
    page.goto(portal.url + reverse("admin:connections_dashboard"))
    expect(page.get_by_role("heading", name="Connection health").first).to_be_visible()
    assert accessibility_problems(page) == []
