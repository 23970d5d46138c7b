"""A customer connects, disconnects and refuses consent, in a real Chromium.

The portal runs on pytest-django's live server, the app is the real sandbox (DOT) in
its own process; Chromium clicks through both. Screenshots of every step land in
``var/screenshots/``.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from connections.models import ConfigVariable, Status
from tests.browser.steps import (
    CONNECTION_NAME,
    SCOPES,
    Portal,
    Screenshots,
    back_to_connections,
    button,
    check_portal_page,
    connection_card,
    granted_scopes,
    no_technical_details,
    portal_login,
    press_connect,
    sandbox_sign_in,
    wait_until_connected,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_connect_then_disconnect(page: Page, portal: Portal, shot: Screenshots) -> None:
    def on_login_page() -> None:
        check_portal_page(page)
        shot(page, "01-portal-login")

    portal_login(page, portal, before_submit=on_login_page)
    card = connection_card(page)
    expect(card.locator(".status")).to_have_text("Not connected")
    expect(connection_card(page, "Sandbox service account")).to_be_visible()
    check_portal_page(page)
    shot(page, "02-portal-connections")

    press_connect(page, portal)
    sandbox_sign_in(page, portal, before_submit=lambda: shot(page, "03-sandbox-login"))
    shot(page, "04-sandbox-consent")
    page.get_by_role("button", name="Authorize", exact=True).click()

    wait_until_connected(page, portal)
    assert granted_scopes(page) == set(SCOPES.split())
    expect(button(page, "Disconnect")).to_be_visible()
    check_portal_page(page)
    shot(page, "05-connected")
    cv = ConfigVariable.objects.get(customer=portal.customer, connection=portal.connection)
    assert cv.status == Status.CONNECTED, cv.last_error
    assert page.url.endswith(f"/connections/{cv.pk}/")
    access_token = cv.access_token
    assert portal.sandbox.introspect(access_token)["active"] is True

    back_to_connections(page, portal)
    expect(card.locator(".status")).to_have_text("Connected")
    button(card, "Disconnect").click()

    expect(page).to_have_url(f"{portal.url}/")
    expect(page.get_by_role("alert")).to_have_text(f"{CONNECTION_NAME} is disconnected.")
    expect(page.locator(".messages .success")).to_be_visible()
    expect(card.locator(".status")).to_have_text(re.compile(r"^(Not connected|Disconnected)$"))
    expect(button(card, "Disconnect")).to_have_count(0)
    expect(button(card, "Connect")).to_be_visible()
    check_portal_page(page)
    shot(page, "06-disconnected")
    cv.refresh_from_db()
    assert cv.status == Status.DISCONNECTED
    assert cv.access_token is None
    assert cv.refresh_token is None
    # The App has a revocation URL: Disconnect revoked the grant at the sandbox too.
    assert portal.sandbox.introspect(access_token)["active"] is False


def test_refused_consent_says_so_in_plain_words(
    page: Page, portal: Portal, shot: Screenshots
) -> None:
    portal_login(page, portal)
    shot(page, "07a-refusal-portal-connections")
    press_connect(page, portal)
    sandbox_sign_in(page, portal)
    shot(page, "07b-refusal-sandbox-consent")

    # DOT's Cancel button sends the browser back with error=access_denied.
    page.get_by_role("button", name="Cancel", exact=True).click()

    expect(page).to_have_url(f"{portal.url}/")
    message = page.locator(".messages .error")
    expect(message).to_contain_text("You declined access")
    expect(message).to_contain_text("nothing was connected")
    card = connection_card(page)
    expect(card.locator(".status")).to_have_text("You declined")
    expect(button(card, "Connect")).to_be_visible()
    expect(button(card, "Disconnect")).to_have_count(0)  # nothing to disconnect
    no_technical_details(page)
    check_portal_page(page)
    shot(page, "07-consent-refused")
    cv = ConfigVariable.objects.get(customer=portal.customer, connection=portal.connection)
    assert cv.status == Status.PENDING  # the customer's choice, not an error to fix
    assert cv.diagnosis == "callback_access_denied"
    assert cv.access_token is None
