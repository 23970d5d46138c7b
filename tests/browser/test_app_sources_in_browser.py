"""In Chromium: an admin makes an App from the sandbox's issuer URL alone and sees it
checked; a customer of a multi-tenant app types their value and connects."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from connections.models import App, Connection
from tests.browser.steps import (
    Portal,
    Screenshots,
    button,
    connection_card,
    link,
    portal_login,
    sandbox_sign_in,
)
from tests.browser.test_admin_dashboard import admin_login

pytestmark = pytest.mark.browser


def test_an_app_from_an_issuer_url_is_discovered_checked_and_connects(
    page: Page, portal: Portal, shot: Screenshots
) -> None:
    admin_login(page, portal)
    link(page, "Apps").first.click()
    link(page, "Add App from preset or issuer URL").click()
    expect(page.get_by_role("heading", name="From an issuer URL")).to_be_visible()
    shot(page, "18-admin-add-app-from")
    page.get_by_label("Issuer or .well-known URL").fill(f"{portal.sandbox.base_url}/o")
    page.get_by_role("button", name="Discover").click()
    expect(page.get_by_label("Token url")).to_have_value(portal.sandbox.token_url)
    page.get_by_label("Slug").fill("discovered")
    page.get_by_role("textbox", name="Client id:", exact=True).fill(portal.sandbox.client_id)
    page.get_by_label("Client secret:", exact=True).fill(portal.sandbox.client_secret)
    page.get_by_label("Default scopes").fill("read write offline_access")
    page.get_by_role("button", name="Save and continue editing").click()
    message = page.locator(".messagelist")
    expect(message).to_contain_text("The client ID and secret work with flavor #1")
    expect(
        page.get_by_text(re.compile(r"Discovered from .*oauth-authorization-server"))
    ).to_be_visible()
    expect(page.locator(".field-app_check_table")).to_contain_text("credentials accepted")
    shot(page, "19-admin-app-discovered-and-checked")

    app = App.objects.get(slug="discovered")
    assert app.preferred_flavor == 1
    connection = Connection.objects.create(app=app, name="Discovered widgets", slug="discovered")
    page.context.clear_cookies()
    portal_login(page, portal)
    button(connection_card(page, connection.name), "Connect").click()
    sandbox_sign_in(page, portal)
    page.get_by_role("button", name="Authorize", exact=True).click()
    expect(page.locator("#status")).to_have_text("Connected", timeout=20000)


def test_a_customer_types_their_value_before_connect(
    page: Page, portal: Portal, shot: Screenshots
) -> None:
    base = portal.sandbox.base_url
    app = portal.connection.app
    # The sandbox serves DOT under /o/: the "tenant" is that path segment.
    app.authorize_url = f"{base}/{{tenant}}/authorize/"
    app.token_url = f"{base}/{{tenant}}/token/"
    app.revocation_url = ""
    app.customer_inputs = [
        {
            "name": "tenant",
            "label": "Your workspace",
            "help": "The short name in your workspace's address, e.g. acme",
            "pattern": "^[a-z0-9][a-z0-9-]{0,62}$",
        }
    ]
    app.allowed_host_suffix = "127.0.0.1"
    app.save()
    portal_login(page, portal)
    button(connection_card(page), "Connect").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Connect {portal.connection.name}")
    page.get_by_label("Your workspace").fill("evil.com#")
    page.get_by_role("button", name=re.compile("^Continue to")).click()
    expect(page.get_by_role("alert")).to_contain_text("only letters, digits and hyphens")
    shot(page, "20-customer-input-refused")
    page.get_by_label("Your workspace").fill("o")
    page.get_by_role("button", name=re.compile("^Continue to")).click()
    sandbox_sign_in(page, portal)
    page.get_by_role("button", name="Authorize", exact=True).click()
    expect(page.locator("#status")).to_have_text("Connected", timeout=20000)
    shot(page, "21-connected-with-customer-input")
