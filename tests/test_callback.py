"""Connect and callback: state is signed, session-bound, expiring and single-use."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.test import Client
from django.urls import reverse

from connections.models import ConfigVariable, Status, StatusTransition
from oauthflow.models import TokenRequest
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://app.example.com/oauth2/token"


@pytest.fixture
def connection():
    return ConnectionFactory(app__use_pkce=True)


def _connect(client: Client, connection) -> dict[str, list[str]]:
    response = client.post(reverse("oauthflow:connect", args=[connection.slug]))
    assert response.status_code == 302
    return parse_qs(urlsplit(response["Location"]).query)


def _snapshot(cv: ConfigVariable) -> tuple:
    cv.refresh_from_db()
    return (cv.status, cv.pending_code, cv.access_token, cv.transitions.count())


def test_connect_sends_the_browser_to_the_app_with_a_signed_state(portal_client, connection):
    query = _connect(portal_client, connection)
    cv = ConfigVariable.objects.get()
    assert cv.status == Status.AUTHORIZING
    assert query["client_id"] == [connection.app.client_id]
    assert str(cv.pk) not in query["state"][0].split(":")[0] or len(query["state"][0]) > 40
    assert query["code_challenge_method"] == ["S256"]
    assert cv.code_verifier  # kept (encrypted) for the exchange


@responses.activate
def test_callback_exchanges_the_code_and_connects(
    portal_client, connection, django_capture_on_commit_callbacks
):
    responses.post(
        TOKEN_URL,
        json={"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600},
    )
    state = _connect(portal_client, connection)["state"][0]
    with django_capture_on_commit_callbacks(execute=True):
        response = portal_client.get(
            reverse("oauthflow:callback"), {"code": "the-code", "state": state}
        )
    cv = ConfigVariable.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("connections:detail", args=[cv.pk])
    assert cv.status == Status.CONNECTED
    assert (cv.access_token, cv.refresh_token) == ("at-1", "rt-1")
    assert cv.pending_code is None
    assert cv.code_verifier is None
    sent = responses.calls[0].request.body.decode()
    assert "code=the-code" in sent
    assert "code_verifier=" in sent
    assert TokenRequest.objects.get().outcome == "succeeded"
    assert list(cv.transitions.values_list("to_status", flat=True)) == [
        "connected",
        "exchanging",
        "authorizing",
    ]


def test_app_error_on_the_callback_is_recorded_and_shown(portal_client, connection):
    state = _connect(portal_client, connection)["state"][0]
    response = portal_client.get(
        reverse("oauthflow:callback"),
        {"error": "invalid_scope", "error_description": "Unknown scope", "state": state},
        follow=True,
    )
    cv = ConfigVariable.objects.get()
    assert cv.status == Status.ERROR
    assert "invalid_scope" in cv.last_error
    assert b"Unknown scope" in response.content
    assert StatusTransition.objects.filter(to_status=Status.ERROR).exists()


def test_a_declined_consent_is_the_customers_choice_not_an_error(portal_client, connection):
    state = _connect(portal_client, connection)["state"][0]
    response = portal_client.get(
        reverse("oauthflow:callback"),
        {"error": "access_denied", "error_description": "The user said no", "state": state},
        follow=True,
    )
    cv = ConfigVariable.objects.get()
    assert (cv.status, cv.diagnosis) == (Status.PENDING, "callback_access_denied")
    assert not StatusTransition.objects.filter(to_status=Status.ERROR).exists()
    assert b"You declined access" in response.content
    portal = portal_client.get(reverse("connections:portal")).content.decode()
    assert "You declined" in portal


def test_callback_without_state_is_a_clear_400(client):
    response = client.get(reverse("oauthflow:callback"), {"code": "x"})
    assert response.status_code == 400
    assert b"state" in response.content


@responses.activate
def test_token_endpoint_down_ends_in_a_clear_error(
    portal_client, connection, django_capture_on_commit_callbacks
):
    responses.post(TOKEN_URL, status=503, body="maintenance")
    state = _connect(portal_client, connection)["state"][0]
    with django_capture_on_commit_callbacks(execute=True):
        portal_client.get(reverse("oauthflow:callback"), {"code": "c", "state": state})
    cv = ConfigVariable.objects.get()
    assert cv.status == Status.ERROR
    assert "503" in cv.last_error
    assert cv.pending_code is None
    assert len(responses.calls) == 6  # eager: no worker to retry later
