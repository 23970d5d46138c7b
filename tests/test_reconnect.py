"""Reconnects and parallel Connects never break a working connection."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.core.exceptions import ValidationError
from django.urls import reverse

from config.logging_filters import redact_query
from connections.models import ConfigVariable, GrantType, Status
from oauthflow import tasks
from oauthflow.renewal import config_variables_renew
from tests.factories import AppFactory, ConfigVariableFactory, ConnectionFactory
from webhooks.models import EventType, WebhookEvent
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://app.example.com/oauth2/token"


def _press_connect(client, connection) -> str:
    location = client.post(reverse("oauthflow:connect", args=[connection.slug]))["Location"]
    return parse_qs(urlsplit(location).query)["state"][0]


@pytest.fixture
def connected(customer):
    return ConfigVariableFactory(
        customer=customer,
        connection__app__use_pkce=True,
        status=Status.CONNECTED,
        access_token="working-access",
        refresh_token="working-refresh",
    )


@responses.activate
def test_two_tabs_the_newest_connect_wins_and_the_older_is_refused(portal_client):
    connection = ConnectionFactory(app__use_pkce=True)
    responses.post(TOKEN_URL, json={"access_token": "from-tab-2", "expires_in": 3600})
    old_state = _press_connect(portal_client, connection)
    new_state = _press_connect(portal_client, connection)
    stale = portal_client.get(reverse("oauthflow:callback"), {"code": "c1", "state": old_state})
    assert stale.status_code == 400
    assert b"newer Connect" in stale.content
    assert ConfigVariable.objects.get().status == Status.AUTHORIZING
    portal_client.get(reverse("oauthflow:callback"), {"code": "c2", "state": new_state})
    tasks.exchange_code(str(ConfigVariable.objects.get().pk))
    cv = ConfigVariable.objects.get()
    assert (cv.status, cv.access_token) == (Status.CONNECTED, "from-tab-2")
    assert len(responses.calls) == 1


def test_cancelling_a_reconnect_keeps_the_working_connection(portal_client, connected):
    state = _press_connect(portal_client, connected.connection)
    response = portal_client.get(
        reverse("oauthflow:callback"), {"error": "access_denied", "state": state}, follow=True
    )
    connected.refresh_from_db()
    assert connected.status == Status.CONNECTED
    assert connected.access_token == "working-access"
    assert b"left as it was" in response.content


@responses.activate
def test_a_failed_reconnect_exchange_keeps_the_old_tokens(portal_client, connected):
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    state = _press_connect(portal_client, connected.connection)
    portal_client.get(reverse("oauthflow:callback"), {"code": "late", "state": state})
    tasks.exchange_code(str(connected.pk))
    connected.refresh_from_db()
    assert connected.status == Status.CONNECTED
    assert connected.access_token == "working-access"
    assert connected.diagnosis == "code_rejected"
    assert connected.pending_code is None


def test_an_unexpected_exchange_crash_ends_in_error_not_connecting(portal_client, monkeypatch):
    connection = ConnectionFactory()
    state = _press_connect(portal_client, connection)
    portal_client.get(reverse("oauthflow:callback"), {"code": "c", "state": state})
    monkeypatch.setattr(
        "oauthflow.exchange.run_token_chain", lambda **_: (_ for _ in ()).throw(KeyError("x"))
    )
    with pytest.raises(KeyError):
        tasks.exchange_code(str(ConfigVariable.objects.get().pk))
    cv = ConfigVariable.objects.get()
    assert cv.status == Status.ERROR
    assert "Internal error" in cv.last_error


@responses.activate
def test_renew_now_does_not_revive_a_disconnected_client_credentials_connection():
    cv = ConfigVariableFactory(
        status=Status.DISCONNECTED,
        connection__grant_type=GrantType.CLIENT_CREDENTIALS,
        connection__app__grant_type=GrantType.CLIENT_CREDENTIALS,
    )
    assert config_variables_renew(config_variable_ids=[cv.pk], force=True).row(cv.pk) is None
    cv.refresh_from_db()
    assert cv.status == Status.DISCONNECTED
    assert len(responses.calls) == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("extra_token_params", [1, 2], "JSON object"),
        ("extra_authorize_params", {"a": {"b": 1}}, "string or a number"),
        ("extra_token_headers", {"X-Evil": "a\r\nInjected: 1"}, "line break"),
        ("extra_token_headers", {"Bad Header": "x"}, "not a valid header name"),
        ("token_url", "https://user:pw@auth.example.com/token", "user name or password"),
        ("client_id", "abc\n123", "line break"),
    ],
)
def test_app_validation_refuses_values_that_would_break_later(field, value, message):
    app = AppFactory.build(**{field: value})
    with pytest.raises(ValidationError) as caught:
        app.full_clean()
    assert message in str(caught.value.message_dict[field])


def test_a_connection_must_use_its_apps_grant_type():
    connection = ConnectionFactory.build(app=AppFactory(), grant_type=GrantType.CLIENT_CREDENTIALS)
    with pytest.raises(ValidationError, match="use the same grant type"):
        connection.full_clean()


def test_public_clients_without_a_secret_can_be_added(admin_client):
    response = admin_client.post(
        reverse("admin:connections_app_add"),
        {
            "name": "Public",
            "slug": "public",
            "grant_type": "authorization_code",
            "authorize_url": "https://a.example.com/authorize",
            "token_url": "https://a.example.com/token",
            "client_id": "id",
            "client_secret": "",
            "scope_separator": " ",
            "offline_strategy": "offline_access",
            "use_pkce": "on",
            "extra_authorize_params": "{}",
            "extra_token_params": "{}",
            "extra_token_headers": "{}",
        },
    )
    assert response.status_code == 302


def test_access_logs_never_carry_the_code_or_state(caplog):
    line = '"GET /oauth2/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=abc.def HTTP/1.1" 302 0'
    assert "SplxlOBeZQQYbYS6WxSbIA" not in redact_query(line)
    assert "abc.def" not in redact_query(line)
    caplog.set_level(logging.INFO)
    logging.getLogger("django.server").info('"%s" %s', "GET /oauth2/callback?code=zz9", 302)
    handler_filters = [f for h in logging.getLogger().handlers for f in h.filters]
    assert any(type(f).__name__ == "RedactQueryFilter" for f in handler_filters)


@responses.activate
def test_a_reconnect_of_a_working_connection_is_announced_but_a_renewal_is_not(
    portal_client, connected
):
    """The integrator's backend learns of a customer's Reconnect (new consent, maybe new
    scopes) even though the status stays connected; renewals send nothing."""
    endpoint_create(name="Product", url="https://hooks.example.com/in", events=EventType.values)
    responses.post(TOKEN_URL, json={"access_token": "renewed", "refresh_token": "r2"})
    config_variables_renew(config_variable_ids=[connected.pk], force=True)
    assert not WebhookEvent.objects.exists()
    responses.post(TOKEN_URL, json={"access_token": "reconnected", "expires_in": 3600})
    state = _press_connect(portal_client, connected.connection)
    portal_client.get(reverse("oauthflow:callback"), {"code": "c1", "state": state})
    tasks.exchange_code(str(connected.pk))
    assert ConfigVariable.objects.get().access_token == "reconnected"
    assert list(WebhookEvent.objects.values_list("type", flat=True)) == ["connection.reconnected"]
