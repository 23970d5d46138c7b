"""What token replies do to a connection, as a customer or an operator would notice it.

Short and zero lifetimes, lifetimes counted from the send time, no-op and "too early"
renewals, the exchange's retry rule, the redirect URI kept byte for byte, App parameter
names and extra parameters, periodic renewal and refresh-token lifetimes (with their
warnings), JSON-only servers with whitespace in the secret, a code spent by an earlier
flavor, Slack-shaped replies, ``token_type`` spelling and ``prompt=consent``.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connections.api_keys import api_key_create
from connections.models import AlertIncident, ConfigVariable, Status
from connections.refresh_expiry import INCIDENT_PREFIX, refresh_tokens_warn
from connections.services import config_variable_store_tokens
from oauthflow.access import get_access_token
from oauthflow.diagnosis import explain
from oauthflow.exceptions import ProviderUnavailable
from oauthflow.exchange import config_variable_exchange_code
from oauthflow.renewal import config_variables_renew
from oauthflow.tokens import TokenResponse
from tests.factories import AppFactory, ConfigVariableFactory, ConnectionFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://app.example.com/oauth2/token"
REDIRECT_URI = "https://portal.example.com/oauth2/callback"


def _exchanging(**overrides) -> ConfigVariable:
    """A ConfigVariable whose customer has consented: a code waits to be exchanged."""
    values = {
        "status": Status.EXCHANGING,
        "pending_code": "the-code",
        "flow_redirect_uri": REDIRECT_URI,
    }
    values.update(overrides)
    return ConfigVariableFactory(**values)


def _connected(**overrides) -> ConfigVariable:
    """A connected ConfigVariable whose renewal is due."""
    now = timezone.now()
    values = {
        "status": Status.CONNECTED,
        "access_token": "old-access",
        "refresh_token": "old-refresh",
        "token_type": "Bearer",
        "expires_at": now + timedelta(seconds=20),
        "refresh_at": now - timedelta(seconds=1),
        "refreshed_at": now - timedelta(seconds=40),
    }
    values.update(overrides)
    return ConfigVariableFactory(**values)


def _exchange(cv: ConfigVariable) -> ConfigVariable:
    config_variable_exchange_code(config_variable_id=cv.pk)
    cv.refresh_from_db()
    return cv


def _body(request) -> dict[str, str]:
    """A captured token request's body fields (form or JSON)."""
    raw = request.body.decode() if isinstance(request.body, bytes) else request.body
    if request.headers.get("Content-Type") == "application/json":
        return json.loads(raw)
    return {name: values[0] for name, values in parse_qs(raw, keep_blank_values=True).items()}


def _raw_param(encoded: str, name: str) -> str:
    """The still-encoded value of ``name`` in a query string or form body."""
    for pair in encoded.split("&"):
        key, _, value = pair.partition("=")
        if key == name:
            return value
    raise AssertionError(f"{name} not in {encoded!r}")


# --- 1. short lifetimes ------------------------------------------------------------


@responses.activate
def test_a_30_second_token_is_not_stored_as_already_expired_and_is_served_without_requests():
    cv = _exchanging()
    responses.post(
        TOKEN_URL, json={"access_token": "short", "refresh_token": "rt", "expires_in": 30}
    )
    cv = _exchange(cv)
    now = timezone.now()
    assert cv.status == Status.CONNECTED
    assert cv.expires_at > now
    assert cv.refresh_at is not None
    assert cv.refresh_at < cv.expires_at
    assert not cv.is_expired
    sent = len(responses.calls)
    for _ in range(20):
        assert get_access_token(config_variable_id=cv.pk).access_token == "short"
    assert len(responses.calls) == sent  # no token request at all


# --- 2. expires_in 0 ---------------------------------------------------------------


@responses.activate
def test_expires_in_zero_with_a_refresh_token_is_expired_and_due_at_once():
    cv = _exchanging()
    responses.post(TOKEN_URL, json={"access_token": "at", "refresh_token": "rt", "expires_in": 0})
    cv = _exchange(cv)
    now = timezone.now()
    assert cv.status == Status.CONNECTED
    assert cv.expires_at is not None
    assert cv.expires_at <= now
    assert cv.refresh_at is not None
    assert cv.refresh_at <= now


@responses.activate
def test_expires_in_zero_without_a_refresh_token_never_expires():
    cv = _exchanging()
    responses.post(TOKEN_URL, json={"access_token": "at", "expires_in": 0})
    cv = _exchange(cv)
    assert cv.status == Status.CONNECTED
    assert cv.expires_at is None
    assert not cv.is_expired


# --- 3. lifetimes count from the send time -----------------------------------------


def test_lifetimes_count_from_when_the_request_was_sent(settings):
    settings.OAUTH_EXPIRY_MARGIN = 10
    cv = _exchanging()
    answered: list = []

    def slow_reply(request):
        time.sleep(1.0)
        answered.append(timezone.now())
        body = {"access_token": "at", "refresh_token": "rt", "expires_in": 60}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    before = timezone.now()
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, TOKEN_URL, callback=slow_reply)
        cv = _exchange(cv)
    assert cv.status == Status.CONNECTED
    assert before <= cv.refreshed_at
    assert cv.refreshed_at <= answered[0] - timedelta(seconds=0.9)  # before the reply came
    assert cv.expires_at - cv.refreshed_at == timedelta(seconds=60 - 10)


# --- 4. a renewal repeating the same tokens ----------------------------------------


@responses.activate
def test_a_refresh_returning_the_same_tokens_is_a_successful_no_op():
    cv = _connected(failure_count=0)
    responses.post(
        TOKEN_URL,
        json={"access_token": "old-access", "refresh_token": "old-refresh", "expires_in": 3600},
    )
    config_variables_renew(config_variable_ids=[cv.pk])
    cv.refresh_from_db()
    assert len(responses.calls) == 1
    assert cv.status == Status.CONNECTED
    assert cv.failure_count == 0
    assert (cv.access_token, cv.refresh_token) == ("old-access", "old-refresh")
    assert cv.refresh_at > timezone.now()
    assert cv.last_error == ""


@responses.activate
def test_a_renewal_answered_expires_in_zero_again_is_not_renewed_in_a_loop(settings):
    cv = _connected()
    responses.post(
        TOKEN_URL, json={"access_token": "new-access", "refresh_token": "r2", "expires_in": 0}
    )
    config_variables_renew(config_variable_ids=[cv.pk])
    cv.refresh_from_db()
    assert cv.expires_at is None  # "0" on every reply: the app gives no lifetime
    idle = (cv.refresh_at - cv.refreshed_at).total_seconds()
    assert idle == settings.RENEWAL_MAX_IDLE
    with responses.RequestsMock():  # no request: the token is served as it is
        assert get_access_token(config_variable_id=cv.pk).access_token == "new-access"


# --- 5. "too early" ----------------------------------------------------------------


@responses.activate
def test_a_too_early_refusal_keeps_the_tokens_and_serves_them_until_refresh_at():
    cv = _connected()
    responses.post(
        TOKEN_URL,
        status=400,
        json={"error": "invalid_grant", "error_description": "token not expired"},
    )
    config_variables_renew(config_variable_ids=[cv.pk])
    cv.refresh_from_db()
    assert len(responses.calls) == 1
    assert cv.status == Status.CONNECTED
    assert (cv.access_token, cv.refresh_token) == ("old-access", "old-refresh")
    assert cv.failure_count == 0
    assert cv.diagnosis == "too_early"
    assert cv.refresh_at >= cv.expires_at
    # Our expiry (with its safety margin) passes, but refresh_at has not come yet.
    ConfigVariable.objects.filter(pk=cv.pk).update(expires_at=timezone.now() - timedelta(seconds=2))
    cv.refresh_from_db()
    assert cv.is_expired
    assert cv.refresh_at > timezone.now()
    token = get_access_token(config_variable_id=cv.pk)
    assert token.access_token == "old-access"
    assert len(responses.calls) == 1  # no request was sent


# --- 6. exchange retries -------------------------------------------------------------


def test_an_exchange_that_reached_no_server_is_re_raised_for_a_retry(settings):
    settings.OAUTH_ALLOW_PRIVATE_NETWORKS = True
    cv = _exchanging(connection__app__token_url="https://127.0.0.1:9/token")
    with pytest.raises(ProviderUnavailable):
        config_variable_exchange_code(config_variable_id=cv.pk, final_attempt=False)
    cv.refresh_from_db()
    assert cv.status == Status.EXCHANGING
    assert cv.pending_code == "the-code"  # kept for the retry
    assert cv.lease_token is None


@responses.activate
def test_an_exchange_answered_5xx_on_every_flavor_is_not_retried():
    cv = _exchanging()
    responses.post(TOKEN_URL, status=503, body="maintenance")
    result = config_variable_exchange_code(config_variable_id=cv.pk, final_attempt=False)
    assert result is not None
    cv.refresh_from_db()
    assert cv.status == Status.ERROR
    assert cv.pending_code is None
    assert len(responses.calls) == 6


@responses.activate
def test_an_exchange_answered_429_sends_one_request_and_is_not_retried():
    cv = _exchanging()
    responses.post(TOKEN_URL, status=429, headers={"Retry-After": "5"}, json={"error": "slow_down"})
    result = config_variable_exchange_code(config_variable_id=cv.pk, final_attempt=False)
    assert result is not None
    assert len(responses.calls) == 1
    cv.refresh_from_db()
    assert cv.status == Status.ERROR
    assert cv.diagnosis == "rate_limited"
    assert cv.pending_code is None


# --- 7. the redirect URI, byte for byte ----------------------------------------------


@responses.activate
def test_the_redirect_uri_of_the_authorize_step_is_sent_at_the_token_step(
    portal_client, settings, django_capture_on_commit_callbacks
):
    old_callback = "https://Old.example.com:8443/oauth2/callback/?region=eu-1&tenant=acme~x"
    settings.OAUTH_PUBLIC_CALLBACK_URL = old_callback
    connection = ConnectionFactory(app__use_pkce=True)
    responses.post(TOKEN_URL, json={"access_token": "at", "refresh_token": "rt"})
    response = portal_client.post(reverse("oauthflow:connect", args=[connection.slug]))
    assert response.status_code == 302
    authorize_query = urlsplit(response["Location"]).query
    state = parse_qs(authorize_query)["state"][0]
    assert parse_qs(authorize_query)["redirect_uri"] == [old_callback]
    settings.OAUTH_PUBLIC_CALLBACK_URL = "https://new.example.com/oauth2/callback"
    with django_capture_on_commit_callbacks(execute=True):
        portal_client.get(reverse("oauthflow:callback"), {"code": "c", "state": state})
    cv = ConfigVariable.objects.get()
    assert cv.status == Status.CONNECTED
    assert len(responses.calls) == 1
    sent = responses.calls[0].request.body.decode()
    assert _body(responses.calls[0].request)["redirect_uri"] == old_callback
    assert _raw_param(sent, "redirect_uri") == _raw_param(authorize_query, "redirect_uri")


# --- 8. extra token parameters and renamed client ID -------------------------------


@responses.activate
def test_extra_token_params_are_sent_on_refresh_too():
    cv = _connected(connection__app__extra_token_params={"audience": "https://api.example.com"})
    responses.post(TOKEN_URL, json={"access_token": "new", "expires_in": 3600})
    config_variables_renew(config_variable_ids=[cv.pk])
    fields = _body(responses.calls[0].request)
    assert fields["grant_type"] == "refresh_token"
    assert fields["audience"] == "https://api.example.com"
    cv.refresh_from_db()
    assert cv.access_token == "new"


def test_client_id_param_renames_client_id_in_the_authorize_url(portal_client):
    connection = ConnectionFactory(app__client_id_param="client_key")
    response = portal_client.post(reverse("oauthflow:connect", args=[connection.slug]))
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["client_key"] == ["my-client-id"]
    assert "client_id" not in query


@pytest.mark.parametrize("flavor", [3, 4])
@responses.activate
def test_client_id_param_renames_client_id_in_the_token_request_body(flavor):
    cv = _exchanging(
        connection__app__client_id_param="client_key", connection__app__pinned_flavor=flavor
    )
    responses.post(TOKEN_URL, json={"access_token": "at", "refresh_token": "rt"})
    cv = _exchange(cv)
    assert cv.status == Status.CONNECTED
    fields = _body(responses.calls[0].request)
    assert fields["client_key"] == "my-client-id"
    assert "client_id" not in fields
    assert fields["client_secret"] == "my-client-secret"


# --- 9. renewal at least every RENEWAL_MAX_IDLE, and before the refresh token lapses --


@responses.activate
def test_a_long_lived_token_is_still_renewed_within_renewal_max_idle(settings):
    cv = _exchanging()
    responses.post(
        TOKEN_URL,
        json={"access_token": "at", "refresh_token": "rt", "expires_in": 30 * 86400},
    )
    cv = _exchange(cv)
    assert cv.refresh_at is not None
    assert cv.refresh_at <= timezone.now() + timedelta(seconds=settings.RENEWAL_MAX_IDLE)
    assert cv.expires_at > timezone.now() + timedelta(days=29)


@responses.activate
def test_a_refresh_token_lifetime_schedules_renewal_before_it_lapses():
    cv = _exchanging()
    before = timezone.now()
    responses.post(
        TOKEN_URL,
        json={
            "access_token": "at",
            "refresh_token": "rt",
            "expires_in": 30 * 86400,
            "refresh_token_expires_in": 3600,
        },
    )
    cv = _exchange(cv)
    after = timezone.now()
    assert cv.refresh_token_expires_at is not None
    assert before + timedelta(seconds=3600) <= cv.refresh_token_expires_at
    assert cv.refresh_token_expires_at <= after + timedelta(seconds=3600)
    assert cv.refresh_at is not None
    assert cv.refresh_at < cv.refresh_token_expires_at
    assert cv.refresh_at > timezone.now()


# --- 10. warnings before a refresh token lapses --------------------------------------


def test_a_lapsing_refresh_token_alerts_once_and_resolves_after_a_reconnect(
    settings, django_capture_on_commit_callbacks, admin_client
):
    settings.OPERATOR_EMAILS = ["ops@example.com"]
    settings.METRICS_TOKEN = "scrape-me"
    cv = _connected(
        customer__contact_email="contact@customer.example.com",
        refresh_at=timezone.now() + timedelta(hours=1),
        expires_at=timezone.now() + timedelta(hours=2),
        refresh_token_expires_at=timezone.now() + timedelta(days=2),
    )
    key = f"{INCIDENT_PREFIX}{cv.pk}"

    with django_capture_on_commit_callbacks(execute=True):
        assert refresh_tokens_warn() == 1
    incident = AlertIncident.objects.get(key=key)
    assert incident.resolved_at is None
    to_customer = [m for m in mail.outbox if m.to == ["contact@customer.example.com"]]
    to_operators = [m for m in mail.outbox if m.to == ["ops@example.com"]]
    assert len(to_customer) == 1
    assert len(to_operators) == 1
    assert cv.connection.name in to_customer[0].body

    html = admin_client.get(reverse("admin:connections_dashboard")).content.decode()
    assert str(cv.customer) in html
    assert f"{cv.refresh_token_expires_at:%Y-%m-%d %H:%M:%S}" in html
    metrics = Client().get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer scrape-me")
    text = metrics.content.decode()
    assert f'portal_refresh_tokens_expiring{{app="{cv.connection.app.slug}"}} 1.0' in text

    sent = len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        assert refresh_tokens_warn() == 0
    assert len(mail.outbox) == sent
    assert AlertIncident.objects.get(key=key).resolved_at is None

    # The customer reconnects: the new refresh token lives 60 days.
    cv.refresh_from_db()
    config_variable_store_tokens(
        config_variable=cv,
        token=TokenResponse(
            access_token="reconnected",
            refresh_token="new-refresh",
            expires_in=3600,
            refresh_token_expires_in=60 * 86400,
        ),
        reason="Reconnected.",
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert refresh_tokens_warn() == 0
    assert AlertIncident.objects.get(key=key).resolved_at is not None
    assert len([m for m in mail.outbox if m.to == ["contact@customer.example.com"]]) == 1
    text = Client().get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer scrape-me").content
    assert f'portal_refresh_tokens_expiring{{app="{cv.connection.app.slug}"}}' not in (
        text.decode()
    )


# --- 11. a JSON-only server and a secret ending in a tab ------------------------------


def test_a_json_only_server_refusing_a_secret_with_a_tab_explains_the_whitespace():
    cv = _exchanging(connection__app__client_secret="my-client-secret\t")
    app = cv.connection.app

    def json_only(request):
        if request.headers.get("Content-Type") == "application/json":
            return 401, {"Content-Type": "application/json"}, '{"error":"invalid_client"}'
        return 400, {"Content-Type": "application/json"}, '{"error":"unsupported_grant_type"}'

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, TOKEN_URL, callback=json_only)
        cv = _exchange(cv)
        assert len(mock.calls) == 6
    assert cv.status == Status.ERROR
    assert cv.diagnosis == "bad_client_credentials"
    message = explain(cv.diagnosis, app=app).message
    assert "whitespace" in message


# --- 12. an earlier flavor spent the code ---------------------------------------------


def test_invalid_client_then_invalid_grant_says_the_first_request_consumed_the_code():
    cv = _exchanging()
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
        mock.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
        cv = _exchange(cv)
        assert len(mock.calls) == 2
    assert cv.status == Status.ERROR
    assert "invalid_client" in cv.last_error
    assert "consumed the code" in cv.last_error


# --- 13. Slack-shaped replies ----------------------------------------------------------

SLACK_INSTALL = {
    "ok": True,
    "app_id": "A0KRD7HC3",
    "authed_user": {
        "id": "U1234",
        "scope": "chat:write",
        "access_token": "xoxp-user-token",
        "token_type": "user",
        "refresh_token": "xoxe-user-refresh",
        "expires_in": 43200,
    },
    "scope": "",
    "token_type": "bot",
    "team": {"id": "T0", "name": "Slack Softball Team"},
    "enterprise": None,
    "is_enterprise_install": False,
    "incoming_webhook": {
        "channel": "#general",
        "channel_id": "C1",
        "configuration_url": "https://teamname.slack.com/services/B0",
        "url": "https://hooks.slack.com/services/T0/B0/XYZ",
    },
}


@pytest.mark.parametrize("token_path", ["", "authed_user"])
@responses.activate
def test_a_slack_user_install_stores_the_nested_tokens_and_no_secret_metadata(token_path):
    cv = _exchanging(connection__app__token_path=token_path)
    responses.post(TOKEN_URL, json=SLACK_INSTALL)
    cv = _exchange(cv)
    assert cv.status == Status.CONNECTED
    assert (cv.access_token, cv.refresh_token) == ("xoxp-user-token", "xoxe-user-refresh")
    dumped = json.dumps(cv.token_extra)
    for secret in ("xoxp-user-token", "xoxe-user-refresh", "hooks.slack.com/services/T0/B0/XYZ"):
        assert secret not in dumped
    assert "XYZ" not in dumped
    assert cv.token_extra["team"]["id"] == "T0"

    # The refresh reply puts the tokens at the top level: accepted too.
    responses.replace(
        responses.POST,
        TOKEN_URL,
        json={
            "ok": True,
            "access_token": "xoxp-user-token-2",
            "refresh_token": "xoxe-user-refresh-2",
            "token_type": "user",
            "expires_in": 43200,
        },
    )
    config_variables_renew(config_variable_ids=[cv.pk], force=True)
    cv.refresh_from_db()
    assert _body(responses.calls[-1].request)["refresh_token"] == "xoxe-user-refresh"
    assert cv.status == Status.CONNECTED
    assert cv.failure_count == 0
    assert (cv.access_token, cv.refresh_token) == ("xoxp-user-token-2", "xoxe-user-refresh-2")


# --- 14. token_type ----------------------------------------------------------------


@responses.activate
def test_a_lower_case_bearer_token_type_is_handed_out_as_bearer(client):
    cv = _exchanging()
    responses.post(
        TOKEN_URL,
        json={
            "access_token": "at",
            "refresh_token": "rt",
            "token_type": "bearer",
            "expires_in": 3600,
        },
    )
    cv = _exchange(cv)
    assert cv.status == Status.CONNECTED
    assert get_access_token(config_variable_id=cv.pk).token_type == "Bearer"
    _, key = api_key_create(customer=cv.customer, name="integration")
    response = client.get(
        reverse("api:config_variable_token", args=[cv.pk]), HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"
    assert response.json()["access_token"] == "at"


# --- 15. prompt=consent ------------------------------------------------------------


def test_openid_offline_access_without_prompt_consent_warns():
    app = AppFactory(default_scopes="openid offline_access", prompt_consent=False)
    warning = app.offline_access_warning("openid offline_access")
    assert warning is not None
    assert "prompt=consent" in warning


def test_prompt_consent_is_sent_when_asking_for_offline_access(portal_client):
    connection = ConnectionFactory(
        app__default_scopes="openid offline_access", app__prompt_consent=True
    )
    response = portal_client.post(reverse("oauthflow:connect", args=[connection.slug]))
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["prompt"] == ["consent"]
    assert query["scope"] == ["openid offline_access"]
    assert connection.app.offline_access_warning("openid offline_access") is None


def test_no_prompt_consent_without_offline_access(portal_client):
    connection = ConnectionFactory(app__default_scopes="openid profile", app__prompt_consent=True)
    response = portal_client.post(reverse("oauthflow:connect", args=[connection.slug]))
    query = parse_qs(urlsplit(response["Location"]).query)
    assert "prompt" not in query
