"""End to end: an App made from the sandbox's issuer URL alone (RFC 8414 metadata served
by django-oauth-toolkit), checked with a fake code, then connected and renewed."""

from __future__ import annotations

from io import StringIO
from typing import TYPE_CHECKING

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from connections.models import App, ConfigVariable, Connection, Customer, Status
from oauthflow.models import TokenRequest, TokenRequestKind
from oauthflow.renewal import config_variables_renew
from tests.e2e.conftest import PORTAL_PASSWORD, PORTAL_USERNAME

if TYPE_CHECKING:
    from tests.e2e.conftest import Browser, SandboxServer

pytestmark = pytest.mark.e2e


def _discover(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, secret: str) -> str:
    monkeypatch.setenv("SANDBOX_SECRET", secret)
    out = StringIO()
    call_command(
        "discover_app",
        f"{sandbox.base_url}/o",
        slug="discovered",
        client_id=sandbox.client_id,
        client_secret_env="SANDBOX_SECRET",
        stdout=out,
    )
    return out.getvalue()


def test_an_app_from_the_issuer_url_alone_is_checked_connects_and_renews(
    browser: Browser,
    sandbox_server: SandboxServer,
    portal_customer: Customer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = _discover(sandbox_server, monkeypatch, sandbox_server.client_secret)

    app = App.objects.get(slug="discovered")
    assert app.token_url == sandbox_server.token_url
    assert app.authorize_url == sandbox_server.authorize_url
    assert app.revocation_url == f"{sandbox_server.base_url}/o/revoke_token/"
    assert app.use_pkce is True  # S256 is listed
    assert (
        app.discovery_url == f"{sandbox_server.base_url}/.well-known/oauth-authorization-server/o"
    )
    assert app.discovered_at is not None
    # The check spent one fake code on flavor 1 (client_secret_basic) and stopped there.
    assert "ok: The client ID and secret work with flavor #1" in report, report
    checks = TokenRequest.objects.filter(app=app, kind=TokenRequestKind.EXCHANGE)
    assert [(r.flavor, r.error) for r in checks] == [(1, "invalid_grant")]
    assert app.check_results[0]["key"] == "code_rejected"

    app.default_scopes = "read write offline_access"  # the only field typed by hand
    app.save(update_fields=["default_scopes"])
    connection = Connection.objects.create(app=app, name="Discovered", slug="discovered")
    browser.portal_login(PORTAL_USERNAME, PORTAL_PASSWORD)
    callback = browser.consent_at_sandbox(browser.press_connect(connection.slug))
    assert browser.get(callback, allow_redirects=False).status_code == 302
    cv = ConfigVariable.objects.get(connection=connection)
    assert cv.status == Status.CONNECTED, cv.last_error
    exchange = TokenRequest.objects.filter(config_variable=cv, kind=TokenRequestKind.EXCHANGE)
    assert exchange.count() == 1  # the discovered first flavor: one request
    config_variables_renew(config_variable_ids=[cv.pk], force=True)
    cv.refresh_from_db()
    assert cv.status == Status.CONNECTED, cv.last_error
    assert (
        TokenRequest.objects.filter(config_variable=cv, kind=TokenRequestKind.REFRESH).count() == 1
    )


def test_the_check_flags_a_wrong_secret_before_any_customer_connects(
    sandbox_server: SandboxServer, transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(CommandError, match="no flavor that authenticates"):
        _discover(sandbox_server, monkeypatch, "not-the-secret\t")
    app = App.objects.get(slug="discovered")
    keys = [row["key"] for row in app.check_results]
    # Form flavors refuse the credentials; DOT cannot read the JSON ones.
    assert set(keys) == {"bad_client_credentials", "format_rejected"}
    assert len(keys) == 6
    assert app.preferred_flavor == 1  # from the metadata, not from the failed check
