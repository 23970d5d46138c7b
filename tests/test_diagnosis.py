"""Diagnosis: one row per real-world outcome → the message key it must give."""

from __future__ import annotations

import pytest

from oauthflow.diagnosis import DIAGNOSES, explain
from oauthflow.outcomes import (
    Key,
    Outcome,
    Verdict,
    classify_callback_error,
    classify_transport,
    conclude,
)
from oauthflow.reply_rules import ReplyFacts, classify_reply
from tests.factories import AppFactory


def _f(status=400, error="", text="", grant="exchange", flavor=1, html=False, readable=True):
    return ReplyFacts(
        status=status,
        error=error,
        text=text,
        grant=grant,
        json_flavor=flavor in (2, 4, 6),
        html=html,
        readable=readable,
    )


@pytest.mark.parametrize(
    ("facts", "key"),
    [
        (_f(status=404, html=True, readable=False), Key.WRONG_TOKEN_URL),
        (_f(status=405, readable=False, grant="refresh"), Key.WRONG_TOKEN_URL),
        (_f(status=401, error="invalid_client"), Key.BAD_CLIENT_CREDENTIALS),
        (_f(status=401, readable=False), Key.BAD_CLIENT_CREDENTIALS),
        (_f(error="invalid_grant", text="Code expired"), Key.CODE_REJECTED),
        (_f(error="invalid_grant", text="Mismatching redirect URI."), Key.REDIRECT_URI_MISMATCH),
        (
            _f(error="invalid_request", text="redirect_uri does not match"),
            Key.REDIRECT_URI_MISMATCH,
        ),
        (_f(error="invalid_grant", grant="refresh"), Key.REFRESH_TOKEN_REVOKED),
        (_f(status=200, html=True, readable=False, text="<html>"), Key.NOT_A_TOKEN_ENDPOINT),
        (_f(status=200, readable=False, text="OK"), Key.NOT_A_TOKEN_REPLY),
        (_f(flavor=2, status=415, readable=False), Key.FORMAT_REJECTED),
        (_f(flavor=4, error="unsupported_grant_type"), Key.FORMAT_REJECTED),
        (_f(flavor=3, error="unsupported_grant_type"), Key.FORMAT_REJECTED),
        (_f(flavor=6, readable=False, text="JSON parse error"), Key.FORMAT_REJECTED),
        (_f(status=503, readable=False, grant="refresh"), Key.SERVER_ERROR),
        (_f(status=429, error="slow_down", grant="refresh"), Key.RATE_LIMITED),
        (_f(error="unauthorized_client", grant="client_credentials"), Key.UNAUTHORIZED_CLIENT),
        (_f(error="invalid_scope", grant="client_credentials"), Key.INVALID_SCOPE),
        # Salesforce: client credentials refused as invalid_grant is an App setting.
        (
            _f(error="invalid_grant", text="authentication failure", grant="client_credentials"),
            Key.UNAUTHORIZED_CLIENT,
        ),
        # Slack oauth.v2.access: invalid_auth / not_authed name the client's authentication.
        (_f(status=200, error="invalid_auth"), Key.BAD_CLIENT_CREDENTIALS),
        (_f(status=200, error="not_authed", grant="refresh"), Key.BAD_CLIENT_CREDENTIALS),
        # Only the user can cure it, then authorize again.
        (_f(status=200, error="unverified_user_email"), Key.CODE_REJECTED),
        (_f(error="access_denied", text="The account must be verified first"), Key.CODE_REJECTED),
        (
            _f(error="invalid_request", text="The user must complete MFA", grant="refresh"),
            Key.REFRESH_TOKEN_REVOKED,
        ),
        # Credentials not found where the app looked: another flavor sends them elsewhere.
        (
            _f(error="error", text="Any of the listed authentication credentials are missing"),
            Key.BAD_CLIENT_CREDENTIALS,
        ),
        (
            _f(status=401, error="unauthorized_client", text="Missing valid authorization header"),
            Key.BAD_CLIENT_CREDENTIALS,
        ),
        (
            _f(
                status=401,
                error="unauthorized_client",
                text="UNKNOWN_CLIENT: Client was not identified by any client authenticator",
            ),
            Key.BAD_CLIENT_CREDENTIALS,
        ),
        # A code named expired among other suspects (LinkedIn) is spent.
        (
            _f(
                error="invalid_request",
                text="appid/redirect uri/code verifier does not match authorization code. "
                "Or authorization code expired.",
            ),
            Key.CODE_REJECTED,
        ),
        (_f(status=200, text="The code has already been used"), Key.CODE_REJECTED),
        # Amazon LWA: "Malformed request" on a form flavor is the body format.
        (_f(error="invalid_request", text="Malformed request"), Key.FORMAT_REJECTED),
        # A scope refused in other words (Strava's errors list).
        (_f(error="invalid", text="Bad Request Authorize scope invalid"), Key.INVALID_SCOPE),
        (_f(error="", text="Unknown scope: widgets:write", grant="refresh"), Key.INVALID_SCOPE),
    ],
)
def test_classify_reply(facts, key):
    assert classify_reply(facts)[0] == key
    assert key in DIAGNOSES


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("timeout", Key.TIMEOUT),
        ("tls", Key.TLS_ERROR),
        ("dns", Key.DNS_ERROR),
        ("connection", Key.CONNECTION_ERROR),
        ("blocked", Key.BLOCKED_DESTINATION),
    ],
)
def test_classify_transport(kind, key):
    verdict = classify_transport(kind)
    assert verdict.key == key
    assert not verdict.answered


def _v(flavor, key, outcome=None, error=""):
    return Verdict(key=key, outcome=outcome or key.outcome, error=error, status=400, flavor=flavor)


@pytest.mark.parametrize(
    ("verdicts", "key", "outcome"),
    [
        # A JSON-only server with a bad secret: form flavors say nothing about credentials.
        (
            [
                _v(f, Key.FORMAT_REJECTED if f % 2 else Key.BAD_CLIENT_CREDENTIALS)
                for f in range(1, 7)
            ],
            Key.BAD_CLIENT_CREDENTIALS,
            Outcome.NEXT_FLAVOR,
        ),
        ([_v(1, Key.WRONG_TOKEN_URL)], Key.WRONG_TOKEN_URL, Outcome.WRONG_ENDPOINT),
        ([_v(1, Key.NOT_A_TOKEN_ENDPOINT)], Key.NOT_A_TOKEN_ENDPOINT, Outcome.WRONG_ENDPOINT),
        (
            [_v(f, Key.FORMAT_REJECTED) for f in range(1, 7)],
            Key.ALL_FORMATS_REJECTED,
            Outcome.NEXT_FLAVOR,
        ),
        (
            [_v(f, Key.SERVER_ERROR, Outcome.NEXT_FLAVOR) for f in range(1, 7)],
            Key.SERVER_ERROR,
            Outcome.TRANSIENT,
        ),
    ],
)
def test_conclude_a_chain(verdicts, key, outcome):
    concluded = conclude(verdicts)
    assert (concluded.key, concluded.outcome) == (key, outcome)


def test_a_code_spent_by_an_earlier_flavor_says_both():
    concluded = conclude(
        [
            _v(1, Key.BAD_CLIENT_CREDENTIALS, error="invalid_client"),
            _v(2, Key.CODE_REJECTED, error="invalid_grant"),
        ]
    )
    assert concluded.key == Key.CODE_REJECTED
    assert "invalid_client" in concluded.detail
    assert "consumed the code" in concluded.detail


@pytest.mark.parametrize(
    ("error", "key"),
    [
        ("access_denied", "callback_access_denied"),
        ("invalid_scope", "callback_invalid_scope"),
        ("unauthorized_client", "callback_unauthorized_client"),
        ("invalid_request", "callback_invalid_request"),
        ("server_error", "callback_server_error"),
        ("temporarily_unavailable", "callback_temporarily_unavailable"),
        ("made_up_error", "callback_error"),
    ],
)
def test_classify_callback_error(error, key):
    assert classify_callback_error(error) == key
    assert explain(key).customer_message


@pytest.mark.django_db
def test_explanations_name_the_urls_and_the_whitespace(settings):
    settings.OAUTH_PUBLIC_CALLBACK_URL = "https://portal.example.com/oauth2/callback"
    app = AppFactory(token_url="https://app.example.com/wrong", client_id="id ")
    assert "https://app.example.com/wrong" in explain("wrong_token_url", app=app).message
    mismatch = explain("redirect_uri_mismatch", app=app)
    assert "https://portal.example.com/oauth2/callback" in mismatch.message + mismatch.fix
    assert "whitespace" in explain("bad_client_credentials", app=app).message
    offline = explain("no_refresh_token", app=AppFactory(offline_strategy="access_type=offline"))
    assert "access_type=offline" in offline.fix


def test_every_key_has_an_explanation():
    assert set(Key) == set(DIAGNOSES)


def test_every_diagnosis_has_message_fix_and_customer_text():
    for key in DIAGNOSES:
        diagnosis = explain(key)
        assert diagnosis.message
        assert diagnosis.fix
        assert diagnosis.customer_message
        assert "{" not in diagnosis.message + diagnosis.fix
