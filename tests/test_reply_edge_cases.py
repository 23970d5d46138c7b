"""Edge cases a fresh tester found by attacking reply handling: each stays fixed."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import responses
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connections.api_keys import api_key_create
from connections.models import Status
from oauthflow.models import TokenRequest
from oauthflow.outcomes import Key, Outcome
from oauthflow.renewal import config_variables_renew
from oauthflow.reply_rules import ReplyFacts, classify_reply
from oauthflow.sensitive import kept_metadata
from oauthflow.tokens import error_fields, parse_token
from tests.factories import ConfigVariableFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://app.example.com/oauth2/token"


def _connected(**overrides):
    now = timezone.now()
    values = {
        "status": Status.CONNECTED,
        "access_token": "old-access-token",
        "refresh_token": "old-refresh-token",
        "expires_at": now + timedelta(seconds=600),
        "refresh_at": now - timedelta(seconds=1),
        "refreshed_at": now - timedelta(seconds=3000),
    }
    return ConfigVariableFactory(**{**values, **overrides})


def test_an_absolute_expires_at_alone_gives_the_lifetime():
    now = float(int(time.time()))
    assert (
        parse_token({"access_token": "a", "expires_at": int(now) + 3600}, sent_at=now).expires_in
        == 3600
    )
    assert (
        parse_token(
            {"access_token": "a", "refresh_token": "r", "expires_on": str(int(now) - 5)},
            sent_at=now,
        ).expires_in
        == 0
    )


@pytest.mark.parametrize(
    ("reply", "present"),
    [
        ({"status": "success", "access_token": "AT"}, False),
        ({"status": "success", "code": 0, "data": {"access_token": "AT"}}, False),
        ({"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}, True),
        ({"error": "Refresh token expired"}, True),
    ],
)
def test_a_status_field_is_an_error_only_without_tokens(reply, present):
    assert error_fields(reply).present is present


@pytest.mark.parametrize(
    ("status", "error", "text", "grant", "key"),
    [
        (200, "invalid_code", "", "refresh", Key.REFRESH_TOKEN_REVOKED),  # Zoho
        (400, "", "Refresh token expired", "refresh", Key.REFRESH_TOKEN_REVOKED),
        (
            400,
            "invalid_request",
            "Missing required parameter: refresh_token",
            "refresh",
            Key.FORMAT_REJECTED,
        ),
        (400, "invalid_request", "Missing refresh_token parameter", "refresh", Key.FORMAT_REJECTED),
        (
            400,
            "invalid_request",
            "The user must include a scope parameter",
            "refresh",
            Key.REJECTED,
        ),
        (
            400,
            "invalid_request",
            "The user must provide a code_challenge",
            "exchange",
            Key.REJECTED,
        ),
        (400, "invalid_request", "Invalid country code in request", "exchange", Key.REJECTED),
        (
            400,
            "invalid_grant",
            "The refresh token is still valid but the user account was disabled",
            "refresh",
            Key.REFRESH_TOKEN_REVOKED,
        ),
        (
            400,
            "invalid_client",
            "The client secret has not expired but is wrong",
            "refresh",
            Key.BAD_CLIENT_CREDENTIALS,
        ),
        (
            400,
            "invalid_grant",
            "Rate limit reached. Refresh token revoked.",
            "refresh",
            Key.REFRESH_TOKEN_REVOKED,
        ),
        (400, "invalid_grant", "token not expired", "refresh", Key.TOO_EARLY),
        (400, "invalid_request", "Missing code verifier.", "exchange", Key.CODE_REJECTED),
    ],
)
def test_words_in_a_description_do_not_override_what_the_code_says(status, error, text, grant, key):
    assert classify_reply(ReplyFacts(status=status, error=error, text=text, grant=grant))[0] == key


@responses.activate
def test_a_too_early_answer_about_an_expired_token_is_a_failure():
    cv = _connected(expires_at=timezone.now() - timedelta(seconds=60))
    responses.post(
        TOKEN_URL,
        status=400,
        json={"error": "invalid_grant", "error_description": "token not expired"},
    )
    config_variables_renew(config_variable_ids=[cv.pk])
    cv.refresh_from_db()
    assert cv.failure_count == 1
    assert cv.diagnosis == Key.TOO_EARLY  # still named what the app said


@responses.activate
def test_a_lapsed_refresh_token_expiry_does_not_renew_every_sweep():
    cv = _connected(refresh_token_expires_at=timezone.now() - timedelta(hours=1))
    responses.post(TOKEN_URL, json={"access_token": "new", "expires_in": 3600})
    config_variables_renew(config_variable_ids=[cv.pk])
    cv.refresh_from_db()
    assert cv.refresh_at > timezone.now() + timedelta(minutes=30)


def _report(cv, key):
    return Client().post(
        reverse("api:config_variable_token_rejected", args=[cv.pk]),
        data=json.dumps({"access_token": cv.access_token}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (200, {"access_token": "old-access-token", "expires_in": 3600}, {}),
        (400, {"error": "invalid_grant", "error_description": "token not expired"}, {}),
        (429, {"error": "rate_limited"}, {"Retry-After": "3600"}),
    ],
)
@responses.activate
def test_repeated_reports_of_one_token_cost_one_renewal(status, body, headers):
    cv = _connected(refresh_at=timezone.now() + timedelta(seconds=500))
    _, key = api_key_create(customer=cv.customer, name="integration")
    responses.post(TOKEN_URL, status=status, json=body, headers=headers)
    answers = [_report(cv, key) for _ in range(10)]
    assert len(responses.calls) == 1
    assert all(answer.status_code in (409, 503) for answer in answers)
    if status == 429:
        assert int(answers[-1]["Retry-After"]) >= 3000


@responses.activate
def test_nested_secrets_never_reach_the_token_request_log():
    cv = _connected()
    reply = {
        "ok": True,
        "access_token": "xoxb-top",
        "bot": {"bot_user_id": "U1", "bot_access_token": "xoxb-NESTED-SECRET"},
        "incoming_webhook": {"url": "https://hooks.slack.com/services/T0/B0/WEBHOOKSECRET"},
        "data": {"access_token": 'ab\\"ESCAPEDSECRET'},
        "webhook": {"id": "1", "token": "DISCORDWEBHOOKSECRET"},
    }
    responses.post(TOKEN_URL, json=reply)
    config_variables_renew(config_variable_ids=[cv.pk])
    logged = json.dumps(
        [r.response_excerpt + r.error + r.message for r in TokenRequest.objects.all()]
    )
    for secret in ("NESTED-SECRET", "WEBHOOKSECRET", "ESCAPEDSECRET", "DISCORDWEBHOOKSECRET"):
        assert secret not in logged
    assert "U1" in logged  # metadata stays readable


@responses.activate
def test_an_echoed_refresh_token_is_not_stored_in_the_error_column():
    cv = _connected()
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_refresh_token_old-refresh-token"})
    config_variables_renew(config_variable_ids=[cv.pk])
    errors = " ".join(TokenRequest.objects.values_list("error", flat=True))
    assert "old-refresh-token" not in errors


def test_credential_like_metadata_is_dropped_at_any_depth():
    kept = kept_metadata(
        {
            "instance_url": "https://acme.my.salesforce.com",
            "team": {"id": "T1", "authorization": "Bearer SECRET1"},
            "jwt": "SECRET2",
            "passphrase": "SECRET3",
            "teams": {"url": "https://acme.webhook.office.com/webhookb2/SECRET4"},
            "shout": "HTTPS://hooks.slack.com/services/SECRET5",
            "db": "https://user:SECRET6@db.example.com/",
            "session_state": "5f0e4c",
        }
    )
    dumped = json.dumps(kept)
    for secret in ("SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5", "SECRET6"):
        assert secret not in dumped
    assert kept["instance_url"] == "https://acme.my.salesforce.com"
    assert kept["team"] == {"id": "T1"}
    assert kept["session_state"] == "5f0e4c"


def test_a_malformed_fingerprint_is_a_400():
    cv = _connected()
    _, key = api_key_create(customer=cv.customer, name="integration")
    answer = Client().post(
        reverse("api:config_variable_token_rejected", args=[cv.pk]),
        data=json.dumps({"fingerprint": "sha256:"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert answer.status_code == 400


def test_outcomes_that_count_as_failures():
    assert Outcome.BENIGN not in Outcome.failures()
    assert Outcome.GRANT_DEAD in Outcome.failures()


@responses.activate
def test_form_replies_and_echoed_credentials_never_reach_the_log():
    cv = _connected()
    app = cv.connection.app
    import base64

    echoed = base64.b64encode(f"{app.client_id}:{app.client_secret}".encode()).decode()
    responses.post(
        TOKEN_URL,
        status=400,
        body=f"error=invalid_request&api_key=FORMAPIKEY-SECRET&echo={echoed} "
        "{'access_token': 'xoxp-ECHO-SECRET'} Authorization: Bearer BEARER-SECRET-123",
        content_type="text/plain",
    )
    config_variables_renew(config_variable_ids=[cv.pk])
    logged = json.dumps(
        [r.response_excerpt + r.error + r.message for r in TokenRequest.objects.all()]
    )
    for secret in ("FORMAPIKEY-SECRET", echoed, "xoxp-ECHO-SECRET", "BEARER-SECRET-123"):
        assert secret not in logged
