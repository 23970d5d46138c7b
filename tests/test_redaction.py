"""No secret, code, verifier or token in any stored byte, log line or curl text."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.core import mail
from django.db import connection
from django.urls import reverse

from connections.models import ConfigVariable
from oauthflow.models import TokenRequest
from oauthflow.renewal import config_variables_renew
from oauthflow.replay import curl_command, postman_collection
from tests.factories import ConfigVariableFactory, ConnectionFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://app.example.com/oauth2/token"
SECRETS = {
    "client secret": "client-secret-5f1e",
    "code": "auth-code-9c2d",
    "access token": "access-token-77aa",
    "refresh token": "refresh-token-3b3b",
    "new access token": "access-token-88bb",
    "new refresh token": "refresh-token-4c4c",
}
TABLES = (
    "connections_app",
    "connections_configvariable",
    "connections_statustransition",
    "oauthflow_tokenrequest",
)


def _raw_rows() -> str:
    dump = []
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
            dump.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(dump)


@responses.activate
def test_a_connect_and_a_refresh_leave_no_secret_anywhere(
    portal_client, caplog, django_capture_on_commit_callbacks
):
    app_connection = ConnectionFactory(
        app__client_secret=SECRETS["client secret"], app__use_pkce=True
    )
    caplog.set_level(logging.DEBUG)  # everything the portal logs from here on
    # Flavor 1 refused, flavor 2 works: two records, one with the app echoing secrets.
    responses.post(
        TOKEN_URL,
        status=400,
        json={"error": "invalid_request", "error_description": f"bad {SECRETS['code']}"},
    )
    responses.post(
        TOKEN_URL,
        json={
            "access_token": SECRETS["access token"],
            "refresh_token": SECRETS["refresh token"],
            "expires_in": 3600,
        },
    )
    response = portal_client.post(reverse("oauthflow:connect", args=[app_connection.slug]))
    state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
    with django_capture_on_commit_callbacks(execute=True):
        portal_client.get(reverse("oauthflow:callback"), {"code": SECRETS["code"], "state": state})
    responses.post(
        TOKEN_URL,
        json={
            "access_token": SECRETS["new access token"],
            "refresh_token": SECRETS["new refresh token"],
            "expires_in": 3600,
        },
    )
    cv = ConfigVariable.objects.get()
    assert cv.status == "connected"
    config_variables_renew(config_variable_ids=[cv.pk], force=True)
    cv.refresh_from_db()
    assert cv.access_token == SECRETS["new access token"]  # decrypts fine…

    stored = _raw_rows()  # …but the raw bytes hold no plaintext
    records = TokenRequest.objects.all()
    renderings = "\n".join(curl_command(r) for r in records) + repr(
        postman_collection(records, name="x")
    )
    sent_bodies = "\n".join(call.request.body.decode() for call in responses.calls)
    verifier = parse_qs(sent_bodies.splitlines()[0])["code_verifier"][0]
    for label, secret in [*SECRETS.items(), ("code verifier", verifier)]:
        assert secret not in stored, f"{label} stored in the clear"
        assert secret not in caplog.text, f"{label} logged"
        assert secret not in renderings, f"{label} in curl/Postman text"
    assert records.count() == 3


@responses.activate
def test_an_app_echoing_secrets_in_its_error_leaks_nothing_into_status_or_alerts(
    settings, django_capture_on_commit_callbacks
):
    settings.OPERATOR_EMAILS = ["ops@example.com"]
    cv = ConfigVariableFactory(
        connection__app__client_secret=SECRETS["client secret"],
        status="connected",
        refresh_token=SECRETS["refresh token"],
    )
    echo = f"bad token {SECRETS['refresh token']} for {SECRETS['client secret']}"
    responses.post(
        TOKEN_URL, status=400, json={"error": "invalid_grant", "error_description": echo}
    )
    with django_capture_on_commit_callbacks(execute=True):
        config_variables_renew(config_variable_ids=[cv.pk], force=True)
    cv.refresh_from_db()
    assert cv.status == "reauthorization_required"
    stored = _raw_rows() + "".join(m.body + m.subject for m in mail.outbox)
    for secret in (SECRETS["refresh token"], SECRETS["client secret"]):
        assert secret not in stored
