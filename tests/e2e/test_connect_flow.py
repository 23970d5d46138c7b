"""End to end: the portal against a real authorization server (the sandbox, DOT).

A scripted browser signs in to the portal, presses Connect, signs in at the sandbox as
the demo user, consents, and comes back to the portal's callback; the exchange runs
eagerly in the callback request. Nothing is mocked: every token request crosses a real
socket to django-oauth-toolkit in another process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from connections.models import (
    ConfigVariable,
    Connection,
    Customer,
    GrantType,
    Status,
    StatusTransition,
)
from oauthflow.models import Outcome, TokenRequest, TokenRequestKind
from oauthflow.renewal import config_variables_renew
from tests.e2e.conftest import PORTAL_PASSWORD, PORTAL_USERNAME

if TYPE_CHECKING:
    from tests.e2e.conftest import Browser, SandboxServer

pytestmark = pytest.mark.e2e

SCOPES = "read write offline_access"


def _connection(sandbox: SandboxServer, *, client_secret: str) -> Connection:
    app = sandbox.create_app(client_secret=client_secret, default_scopes=SCOPES)
    return Connection.objects.create(app=app, name="Sandbox widgets", slug="sandbox-widgets")


@pytest.fixture
def connection(sandbox_server: SandboxServer, portal_customer: Customer) -> Connection:
    """A Connection to the sandbox with the right client credentials."""
    return _connection(sandbox_server, client_secret=sandbox_server.client_secret)


def _connect(browser: Browser, connection: Connection) -> tuple[str, Any]:
    """Run Connect → sandbox login and consent → callback; returns the callback URL and
    the portal's reply to it (not followed)."""
    browser.portal_login(PORTAL_USERNAME, PORTAL_PASSWORD)
    authorize_url = browser.press_connect(connection.slug)
    assert authorize_url.startswith(browser.sandbox.authorize_url)
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [browser.sandbox.redirect_uri]
    callback_url = browser.consent_at_sandbox(authorize_url)
    assert callback_url.startswith(browser.sandbox.redirect_uri + "?")
    assert "code" in parse_qs(urlsplit(callback_url).query)
    return callback_url, browser.get(callback_url, allow_redirects=False)


def test_connect_exchanges_the_code_and_renewal_rotates_the_refresh_token(
    browser: Browser, sandbox_server: SandboxServer, connection: Connection
) -> None:
    _, reply = _connect(browser, connection)

    assert reply.status_code == 302
    cv = ConfigVariable.objects.get(connection=connection)
    assert reply.headers["Location"].endswith(f"/connections/{cv.pk}/")
    assert cv.status == Status.CONNECTED, cv.last_error
    assert cv.access_token
    assert cv.refresh_token
    assert cv.pending_code is None
    assert cv.code_verifier is None
    assert set(cv.scopes_granted.split()) == set(SCOPES.split())
    assert cv.expires_at is not None
    assert cv.refresh_at is not None
    assert cv.refresh_at <= cv.expires_at
    exchange = list(TokenRequest.objects.filter(config_variable=cv))
    assert [(r.kind, r.outcome, r.flavor) for r in exchange] == [
        (TokenRequestKind.EXCHANGE, Outcome.SUCCEEDED, 1)
    ]
    # PKCE went along, and nothing secret was recorded.
    assert "code_verifier=%5BREDACTED%5D" in exchange[0].request_body
    recorded = exchange[0].request_body + exchange[0].response_excerpt
    assert cv.access_token not in recorded
    assert cv.refresh_token not in recorded
    assert sandbox_server.client_secret not in str(exchange[0].request_headers)
    page = browser.get(browser.portal_url + reply.headers["Location"])
    assert "Connected" in page.text

    # The tokens are real: the sandbox knows the access token as alice's.
    info = sandbox_server.introspect(cv.access_token)
    assert info["active"] is True
    assert info["username"] == sandbox_server.username
    assert info["client_id"] == sandbox_server.client_id

    old_access, old_refresh = cv.access_token, cv.refresh_token
    renewed = config_variables_renew(config_variable_ids=[cv.pk], force=True).row(cv.pk)

    assert renewed is not None
    cv.refresh_from_db()
    assert cv.status == Status.CONNECTED, cv.last_error
    assert cv.access_token != old_access
    assert cv.refresh_token != old_refresh
    assert cv.lease_token is None
    refreshes = TokenRequest.objects.filter(config_variable=cv, kind=TokenRequestKind.REFRESH)
    assert [(r.outcome, r.flavor) for r in refreshes] == [(Outcome.SUCCEEDED, 1)]
    assert sandbox_server.introspect(cv.access_token)["active"] is True
    assert sandbox_server.introspect(old_access)["active"] is False
    # Rotation: the spent refresh token is dead at the sandbox, the new one still works.
    replay = sandbox_server.refresh(old_refresh)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert sandbox_server.introspect(cv.access_token)["active"] is True


def test_a_replayed_callback_is_refused_and_changes_nothing(
    browser: Browser, connection: Connection
) -> None:
    callback_url, reply = _connect(browser, connection)
    assert reply.status_code == 302
    cv = ConfigVariable.objects.get(connection=connection)
    assert cv.status == Status.CONNECTED, cv.last_error
    before = {
        "tokens": (cv.access_token, cv.refresh_token),
        "updated_at": cv.updated_at,
        "requests": TokenRequest.objects.count(),
        "transitions": StatusTransition.objects.count(),
    }

    replay = browser.get(callback_url, allow_redirects=False)

    assert replay.status_code == 400
    assert "already used" in replay.text
    cv.refresh_from_db()
    assert cv.status == Status.CONNECTED
    assert {
        "tokens": (cv.access_token, cv.refresh_token),
        "updated_at": cv.updated_at,
        "requests": TokenRequest.objects.count(),
        "transitions": StatusTransition.objects.count(),
    } == before


def test_a_wrong_client_secret_fails_every_flavor_with_invalid_client(
    browser: Browser, sandbox_server: SandboxServer, portal_customer: Customer
) -> None:
    connection = _connection(sandbox_server, client_secret="not-the-portal-demo-secret")

    _, reply = _connect(browser, connection)

    assert reply.status_code == 302
    cv = ConfigVariable.objects.get(connection=connection)
    assert cv.status == Status.ERROR
    assert "invalid_client" in cv.last_error
    assert cv.diagnosis == "bad_client_credentials"
    assert cv.access_token is None
    assert cv.pending_code is None
    rows = TokenRequest.objects.filter(config_variable=cv)
    assert rows.count() == 6
    assert sorted(r.flavor for r in rows) == [1, 2, 3, 4, 5, 6]
    assert {(r.kind, r.outcome) for r in rows} == {(TokenRequestKind.EXCHANGE, Outcome.NEXT_FLAVOR)}
    # DOT reads form bodies only: the JSON flavors never get as far as client auth.
    errors = {r.flavor: r.error for r in rows}
    assert errors == {
        1: "invalid_client",
        2: "unsupported_grant_type",
        3: "invalid_client",
        4: "unsupported_grant_type",
        5: "invalid_client",
        6: "unsupported_grant_type",
    }
    diagnoses = {r.flavor: r.diagnosis for r in rows}
    assert diagnoses == {
        f: "bad_client_credentials" if f % 2 else "format_rejected" for f in diagnoses
    }


def test_the_second_exchange_for_an_app_makes_one_token_request(
    browser: Browser, connection: Connection
) -> None:
    _connect(browser, connection)
    connection.app.refresh_from_db()
    assert connection.app.preferred_flavor == 1
    cv = ConfigVariable.objects.get(connection=connection)
    first = TokenRequest.objects.filter(config_variable=cv).count()

    # Reconnect: a second code, a second exchange.
    authorize_url = browser.press_connect(connection.slug)
    reply = browser.get(browser.consent_at_sandbox(authorize_url), allow_redirects=False)

    assert reply.status_code == 302
    cv.refresh_from_db()
    assert cv.status == Status.CONNECTED, cv.last_error
    second = TokenRequest.objects.filter(config_variable=cv, kind=TokenRequestKind.EXCHANGE)
    assert second.count() - first == 1


@pytest.mark.parametrize(
    ("flavor", "sent"),
    [
        (1, [(1, Outcome.SUCCEEDED, "")]),
        (2, [(2, Outcome.NEXT_FLAVOR, "unsupported_grant_type"), (1, Outcome.SUCCEEDED, "")]),
        (3, [(3, Outcome.SUCCEEDED, "")]),
        (4, [(4, Outcome.NEXT_FLAVOR, "unsupported_grant_type"), (3, Outcome.SUCCEEDED, "")]),
        (5, [(5, Outcome.SUCCEEDED, "")]),
        (6, [(6, Outcome.NEXT_FLAVOR, "unsupported_grant_type"), (5, Outcome.SUCCEEDED, "")]),
    ],
)
def test_which_flavors_the_sandbox_accepts(
    sandbox_server: SandboxServer,
    portal_customer: Customer,
    flavor: int,
    sent: list[tuple[int, str, str]],
) -> None:
    """DOT takes Basic (it form-decodes the credentials) or body credentials, form only:
    a pinned JSON flavor it cannot read falls back to its form sibling."""
    app = sandbox_server.create_machine_app(pinned_flavor=flavor)
    connection = Connection.objects.create(
        app=app, name="Machine", slug="machine", grant_type=GrantType.CLIENT_CREDENTIALS
    )
    # As after pressing Connect: a client-credentials connection fetches its first token.
    cv = ConfigVariable.objects.create(
        customer=portal_customer, connection=connection, status=Status.EXCHANGING
    )

    config_variables_renew(config_variable_ids=[cv.pk], force=True)

    cv.refresh_from_db()
    rows = TokenRequest.objects.filter(config_variable=cv).order_by("created_at", "id")
    assert {row.kind for row in rows} == {TokenRequestKind.CLIENT_CREDENTIALS}
    assert [(row.flavor, row.outcome, row.error) for row in rows] == sent
    assert cv.status == Status.CONNECTED, cv.last_error
    assert sandbox_server.introspect(cv.access_token)["active"] is True


def test_a_client_credentials_connection_connects_from_the_portal(
    browser: Browser, sandbox_server: SandboxServer, portal_customer: Customer
) -> None:
    app = sandbox_server.create_machine_app()
    connection = Connection.objects.create(
        app=app, name="Machine", slug="machine", grant_type=GrantType.CLIENT_CREDENTIALS
    )
    browser.portal_login(PORTAL_USERNAME, PORTAL_PASSWORD)

    location = browser.press_connect(connection.slug)

    cv = ConfigVariable.objects.get(connection=connection)
    assert location.endswith(f"/connections/{cv.pk}/")
    assert cv.status == Status.CONNECTED, cv.last_error
    assert cv.refresh_token is None
    assert cv.refresh_at is not None
    assert sandbox_server.introspect(cv.access_token)["active"] is True
    assert TokenRequest.objects.filter(
        config_variable=cv, kind=TokenRequestKind.CLIENT_CREDENTIALS, outcome=Outcome.SUCCEEDED
    ).exists()
