"""End to end against the sandbox (DOT, another process, real sockets): what a reply
says about the refresh token's own lifetime reaches the admin, and an integration's
"this token was rejected" report costs exactly one renewal."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connections.api_keys import api_key_create
from connections.models import ConfigVariable, Connection, Customer, Status
from oauthflow.models import TokenRequest, TokenRequestKind
from tests.e2e.conftest import PORTAL_PASSWORD, PORTAL_USERNAME
from tests.e2e.test_connect_flow import SCOPES

if TYPE_CHECKING:
    from tests.e2e.conftest import Browser, SandboxServer

pytestmark = pytest.mark.e2e

SANDBOX_REFRESH_LIFETIME = 7776000  # sandbox/settings.py's default: 90 days


@pytest.fixture
def connected(
    browser: Browser, sandbox_server: SandboxServer, portal_customer: Customer
) -> ConfigVariable:
    app = sandbox_server.create_app(
        client_secret=sandbox_server.client_secret, default_scopes=SCOPES
    )
    connection = Connection.objects.create(app=app, name="Sandbox widgets", slug="widgets")
    browser.portal_login(PORTAL_USERNAME, PORTAL_PASSWORD)
    callback = browser.consent_at_sandbox(browser.press_connect(connection.slug))
    assert browser.get(callback, allow_redirects=False).status_code == 302
    cv = ConfigVariable.objects.get(connection=connection)
    assert cv.status == Status.CONNECTED, cv.last_error
    return cv


def test_the_refresh_token_lifetime_is_stored_and_shown_in_the_admin(
    connected: ConfigVariable,
) -> None:
    expected = connected.refreshed_at + timedelta(seconds=SANDBOX_REFRESH_LIFETIME)
    assert abs((connected.refresh_token_expires_at - expected).total_seconds()) < 5
    admin = get_user_model().objects.create_superuser("root", password="root-password")
    client = Client()
    client.force_login(admin)
    page = client.get(
        reverse("admin:connections_configvariable_change", args=[connected.pk])
    ).content.decode()
    assert "Refresh token expires at" in page
    assert f"{connected.refresh_token_expires_at:%Y}" in page


def _report(token: str, cv: ConfigVariable, key: str) -> tuple[int, dict]:
    reply = Client().post(
        reverse("api:config_variable_token_rejected", args=[cv.pk]),
        data={"access_token": token},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    return reply.status_code, reply.json()


def test_a_rejected_token_report_renews_once_then_reports_a_second_rejection(
    connected: ConfigVariable, sandbox_server: SandboxServer
) -> None:
    _, key = api_key_create(customer=connected.customer, name="integration")
    old = connected.access_token

    def refreshes() -> int:
        return TokenRequest.objects.filter(
            config_variable=connected, kind=TokenRequestKind.REFRESH
        ).count()

    status, body = _report(old, connected, key)
    assert status == 200, body
    new = body["access_token"]
    assert new != old
    assert body["token_type"] == "Bearer"
    assert refreshes() == 1
    assert sandbox_server.introspect(new)["active"] is True

    # A late report of the old token: the new one, no second renewal.
    status, body = _report(old, connected, key)
    assert (status, body["access_token"], refreshes()) == (200, new, 1)

    # The renewed token rejected too: reported, not renewed in a loop.
    status, body = _report(new, connected, key)
    assert (status, body["error"], refreshes()) == (409, "access_token_rejected", 1)
    connected.refresh_from_db()
    assert connected.diagnosis == "access_token_rejected"
    assert connected.access_token == new
    assert connected.refresh_at > timezone.now() - timedelta(seconds=5)
