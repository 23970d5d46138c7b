"""Diagnosis: one row per real-world outcome → the message key it must give."""

from __future__ import annotations

import pytest

from oauthflow.diagnosis import (
    DIAGNOSES,
    Attempt,
    classify_attempt,
    classify_callback_error,
    classify_chain,
    explain,
)
from tests.factories import AppFactory


def _a(
    flavor=1, status=400, error="", outcome="rejected", content_type="application/json", text=""
):
    return Attempt(flavor, status, error, outcome, content_type, text)


@pytest.mark.parametrize(
    ("attempt", "kind", "key"),
    [
        (
            _a(status=404, outcome="not_a_token_reply", content_type="text/html"),
            "exchange",
            "wrong_token_url",
        ),
        (_a(status=405, outcome="not_a_token_reply"), "refresh", "wrong_token_url"),
        (_a(status=401, error="invalid_client"), "exchange", "bad_client_credentials"),
        (
            _a(status=401, outcome="not_a_token_reply", content_type="text/plain"),
            "exchange",
            "bad_client_credentials",
        ),
        (_a(error="invalid_grant", text="Code expired"), "exchange", "code_rejected"),
        (
            _a(error="invalid_grant", text="Mismatching redirect URI."),
            "exchange",
            "redirect_uri_mismatch",
        ),
        (
            _a(error="invalid_request", text="redirect_uri does not match"),
            "exchange",
            "redirect_uri_mismatch",
        ),
        (_a(error="invalid_grant"), "refresh", "refresh_token_revoked"),
        (
            _a(status=200, outcome="not_a_token_reply", content_type="text/html", text="<html>"),
            "exchange",
            "not_a_token_endpoint",
        ),
        (
            _a(status=200, outcome="not_a_token_reply", content_type="text/plain", text="OK"),
            "exchange",
            "not_a_token_reply",
        ),
        (_a(flavor=2, status=415, outcome="not_a_token_reply"), "exchange", "format_rejected"),
        (_a(flavor=4, error="unsupported_grant_type"), "exchange", "format_rejected"),
        (
            _a(flavor=6, status=400, outcome="not_a_token_reply", text="JSON parse error"),
            "exchange",
            "format_rejected",
        ),
        (_a(status=None, error="timeout", outcome="transport_error"), "refresh", "timeout"),
        (_a(status=None, error="tls", outcome="transport_error"), "exchange", "tls_error"),
        (_a(status=None, error="dns", outcome="transport_error"), "exchange", "dns_error"),
        (
            _a(status=None, error="connection", outcome="transport_error"),
            "exchange",
            "connection_error",
        ),
        (_a(status=503, outcome="not_a_token_reply"), "refresh", "server_error"),
        (_a(status=429, error="slow_down"), "refresh", "rate_limited"),
        (_a(error="unauthorized_client"), "client_credentials", "unauthorized_client"),
        (_a(error="invalid_scope"), "client_credentials", "invalid_scope"),
        (_a(status=200, outcome="success"), "exchange", "ok"),
    ],
)
def test_classify_attempt(attempt, kind, key):
    assert classify_attempt(attempt, kind=kind) == key
    assert key in DIAGNOSES


@pytest.mark.parametrize(
    ("attempts", "key"),
    [
        # A form-only server with a bad secret: JSON flavors say nothing about credentials.
        (
            [
                _a(f, error="invalid_client" if f % 2 else "unsupported_grant_type")
                for f in range(1, 7)
            ],
            "bad_client_credentials",
        ),
        ([_a(f, status=404, outcome="not_a_token_reply") for f in range(1, 7)], "wrong_token_url"),
        (
            [
                _a(f, status=200, outcome="not_a_token_reply", content_type="text/html")
                for f in (1, 3, 5)
            ],
            "not_a_token_endpoint",
        ),
        (
            [_a(f, status=415, outcome="not_a_token_reply") for f in range(1, 7)],
            "all_formats_rejected",
        ),
        ([_a(1, error="invalid_client"), _a(2, status=200, outcome="success")], "ok"),
    ],
)
def test_classify_chain(attempts, key):
    assert classify_chain(attempts, kind="exchange") == key


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


def test_every_diagnosis_has_message_fix_and_customer_text():
    for key in DIAGNOSES:
        diagnosis = explain(key)
        assert diagnosis.message
        assert diagnosis.fix
        assert diagnosis.customer_message
        assert "{" not in diagnosis.message + diagnosis.fix
