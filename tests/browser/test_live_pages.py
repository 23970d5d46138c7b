"""Pages that stay true while open, and the list's cards on a phone, in a real Chromium.

The connection page is left open while the test renews its token twice
(``config_variables_renew(force=True)`` against the real sandbox): both renewals, the new
expiry and the next renewal appear without a reload (a marker set in the page survives).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from connections.models import ConfigVariable, Connection, Status
from oauthflow.outcomes import Key
from oauthflow.renewal import config_variables_renew
from tests.browser.conftest import PHONE
from tests.browser.steps import (
    CONNECTION_NAME,
    Portal,
    Screenshots,
    button,
    check_portal_page,
    connection_card,
    no_technical_details,
    portal_login,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SERVICE = "Sandbox service account"
LIVE_MS = 15_000  # a poll every 5 s, and the request itself


def _utc(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _mark(page: Page) -> None:
    """A marker that only the same document still holds: a reload would drop it."""
    page.evaluate("window.__openSince = 'first load'")


def _same_document(page: Page) -> None:
    assert page.evaluate("window.__openSince") == "first load"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert page.evaluate("performance.getEntriesByType('navigation')[0].type") == "navigate"


def test_a_connection_page_left_open_shows_each_renewal(
    page: Page, portal: Portal, shot: Screenshots
) -> None:
    portal_login(page, portal)
    card = connection_card(page, SERVICE)
    button(card, "Connect").click()
    expect(page).to_have_url(re.compile(re.escape(portal.url) + r"/connections/[0-9a-f-]{36}/$"))
    expect(page.locator("#status")).to_have_text("Connected", timeout=LIVE_MS)
    _mark(page)
    history = page.locator("#history")
    expect(history).to_contain_text("Fetching a token")  # no consent step to speak of
    expect(history).not_to_contain_text("Access allowed")
    # Healthy: Reconnect is offered but is not the filled button.
    expect(button(page, "Reconnect")).to_have_class(re.compile(r"\bsecondary\b"))
    cv = ConfigVariable.objects.get(customer=portal.customer, connection__name=SERVICE)
    expect(page.locator("#next-renewal")).to_have_text(_utc(cv.refresh_at))

    for expected in ("Access renewed automatically", re.compile(r"Renewed repeatedly since")):
        before = cv.refreshed_at
        renewed = config_variables_renew(config_variable_ids=[cv.pk], force=True).row(cv.pk)
        assert renewed is not None
        assert renewed.status == Status.CONNECTED, renewed.last_error
        assert renewed.refreshed_at > before
        cv = renewed
        expect(history).to_contain_text(expected, timeout=LIVE_MS)
        expect(page.locator("#last-renewed")).to_have_text(_utc(cv.refreshed_at))
        expect(page.locator("#next-renewal")).to_have_text(_utc(cv.refresh_at))
        expect(page.locator("#expiry")).to_contain_text(cv.expires_at.strftime("%Y-%m-%d"))
        _same_document(page)

    expect(page.locator("#expiry")).to_be_visible()
    expect(page.get_by_text(re.compile(r"we stop using it \d+ s earlier"))).to_be_visible()
    # One line for the run, not a "connected → connected" row per renewal.
    expect(history.locator("li", has_text="Renewed")).to_have_count(1)
    expect(history.locator("li", has_text="renewed automatically")).to_have_count(0)
    check_portal_page(page)
    no_technical_details(page)
    shot(page, "22-live-connection")


def test_the_list_follows_a_change_without_a_reload(
    page: Page, portal: Portal, shot: Screenshots
) -> None:
    portal_login(page, portal)
    _mark(page)
    card = connection_card(page)
    expect(card.locator(".status")).to_have_text("Not connected")
    ConfigVariable.objects.create(
        customer=portal.customer,
        connection=portal.connection,
        status=Status.ERROR,
        diagnosis=Key.BAD_CLIENT_CREDENTIALS,
    )
    expect(card.locator(".status")).to_have_text("Could not connect", timeout=LIVE_MS)
    expect(button(card, "Try again")).to_be_visible()
    _same_document(page)
    check_portal_page(page)


def _box(locator):
    box = locator.bounding_box()
    assert box is not None
    return box


def test_a_failed_card_on_a_phone_has_its_buttons_bottom_left(
    phone_page: Page, portal: Portal, shot: Screenshots
) -> None:
    page = phone_page
    ConfigVariable.objects.create(
        customer=portal.customer,
        connection=portal.connection,
        status=Status.ERROR,
        diagnosis=Key.BAD_CLIENT_CREDENTIALS,
        failure_count=1,
    )
    assert Connection.objects.filter(name=SERVICE).exists()
    portal_login(page, portal)
    failed = connection_card(page, CONNECTION_NAME)
    other = connection_card(page, SERVICE)
    # The admin's "Error" is the customer's "Could not connect": one state, one name.
    expect(failed.locator(".status")).to_have_text("Could not connect")
    reason = failed.locator(".warning")
    expect(reason).to_be_visible()
    expect(failed).not_to_contain_text("has been told")
    try_again = button(failed, "Try again")
    connect = button(other, "Connect")
    expect(try_again).to_be_visible()
    # Bottom-left on every card: below the reason, at the card's left edge, like the
    # buttons of a card without a reason.
    assert _box(try_again)["y"] >= _box(reason)["y"] + _box(reason)["height"]
    assert (
        abs(_box(try_again)["x"] - _box(failed)["x"] - (_box(connect)["x"] - _box(other)["x"])) < 1
    )
    assert _box(try_again)["x"] - _box(failed)["x"] < 24
    check_portal_page(page, phone_width=PHONE["width"])
    no_technical_details(page)
    shot(page, "23-phone-list-failed-card")

    page.set_viewport_size({"width": 1280, "height": 800})
    assert (
        abs(_box(try_again)["x"] - _box(failed)["x"] - (_box(connect)["x"] - _box(other)["x"])) < 1
    )
    assert _box(try_again)["y"] >= _box(reason)["y"] + _box(reason)["height"]
    shot(page, "24-list-failed-card-desktop")
