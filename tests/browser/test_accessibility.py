"""Accessibility smoke and phone layout of every portal page, in a real Chromium.

On a 390x844 phone viewport (mobile viewport rules, touch) the customer walks through
every portal page: login (with a wrong password first), the connection list in each
state, the connection's page connected and failed, a refused reconnect, a disconnect,
and the callback error page. Each page must have labelled form controls, named buttons
and links (containing their visible label), exactly one h1, a ``lang`` and a title,
and must not scroll sideways. Screenshots: ``var/screenshots/08-phone-*.png`` to
``16-phone-*.png``.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE
from tests.browser.steps import (
    CONNECTION_NAME,
    PORTAL_PASSWORD,
    PORTAL_USERNAME,
    Portal,
    Screenshots,
    back_to_connections,
    button,
    check_portal_page,
    connection_card,
    expect_consent_page,
    link,
    no_technical_details,
    portal_login,
    press_connect,
    sandbox_sign_in,
    wait_until_connected,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_every_portal_page_is_accessible_and_fits_a_phone(
    phone_page: Page, portal: Portal, shot: Screenshots
) -> None:
    page = phone_page

    def check(name: str) -> None:
        check_portal_page(page, phone_width=PHONE["width"])
        shot(page, name)

    # A wrong password first: the login page with its error.
    page.goto(f"{portal.url}/accounts/login/")
    page.get_by_label("Username").fill(PORTAL_USERNAME)
    page.get_by_label("Password").fill(PORTAL_PASSWORD + "-wrong")
    button(page, "Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    check("08-phone-login-error")

    portal_login(page, portal)
    card = connection_card(page)
    expect(card.locator(".status")).to_have_text("Not connected")
    check("09-phone-connections")

    press_connect(page, portal)
    sandbox_sign_in(page, portal)
    page.get_by_role("button", name="Authorize", exact=True).click()
    wait_until_connected(page, portal)
    check("10-phone-connected")

    back_to_connections(page, portal)
    expect(card.locator(".status")).to_have_text("Connected")
    expect(card.get_by_text("Renews automatically at")).to_be_visible()
    check("11-phone-connections-connected")

    # Reconnect, but refuse at the app (already signed in there): nothing is lost.
    press_connect(page, portal, label="Reconnect")
    expect_consent_page(page, portal)
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page).to_have_url(f"{portal.url}/")
    expect(page.locator(".messages .error")).to_contain_text("Access was not granted")
    expect(page.locator(".messages .error")).to_contain_text("left as it was")
    expect(card.locator(".status")).to_have_text("Connected")
    no_technical_details(page)
    check("12-phone-reconnect-refused")

    button(card, "Disconnect").click()
    expect(page.get_by_role("alert")).to_have_text(f"{CONNECTION_NAME} is disconnected.")
    check("13-phone-disconnected")

    press_connect(page, portal)
    expect_consent_page(page, portal)
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.locator(".messages .error")).to_contain_text("You declined access")
    no_technical_details(page)
    check("14-phone-consent-refused")

    link(card, "Details").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(CONNECTION_NAME)
    expect(page.locator("#status")).to_have_text("You declined")
    expect(page.locator(".warning")).to_contain_text("You declined access")
    expect(button(page, "Connect")).to_be_visible()
    no_technical_details(page)
    check("15-phone-error-details")

    # A callback the portal did not start (forged state): the callback error page.
    response = page.goto(f"{portal.url}/oauth2/callback?state=forged&code=forged")
    assert response is not None
    assert response.status == 400
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "This connection could not be completed"
    )
    expect(link(page, "Back to your connections")).to_be_visible()
    no_technical_details(page)
    check("16-phone-callback-error")
