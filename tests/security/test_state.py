"""State attacks: forged, tampered, expired, replayed and cross-session states get a
clear 400 page and change nothing (RFC 6749 §10.12)."""

from __future__ import annotations

import pytest
import responses
from django.test import Client
from django.urls import reverse

from connections.models import ConfigVariable
from tests.factories import ConnectionFactory, UserFactory
from tests.test_callback import TOKEN_URL, _connect, _snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection():
    return ConnectionFactory(app__use_pkce=True)


def _assert_bad_state_changes_nothing(client: Client, cv: ConfigVariable, state: str) -> None:
    before = _snapshot(cv)
    response = client.get(reverse("oauthflow:callback"), {"code": "x", "state": state})
    assert response.status_code == 400
    assert b"Nothing was changed" in response.content
    assert _snapshot(cv) == before


def test_forged_state_is_refused(portal_client, connection):
    state = _connect(portal_client, connection)["state"][0]
    cv = ConfigVariable.objects.get()
    forged = state[:-3] + ("AAA" if not state.endswith("AAA") else "BBB")
    _assert_bad_state_changes_nothing(portal_client, cv, forged)
    _assert_bad_state_changes_nothing(portal_client, cv, str(cv.pk))  # the guide's bare ID


def test_expired_state_is_refused(portal_client, connection, settings):
    state = _connect(portal_client, connection)["state"][0]
    settings.OAUTH_STATE_MAX_AGE = -1
    _assert_bad_state_changes_nothing(portal_client, ConfigVariable.objects.get(), state)


@responses.activate
def test_replayed_state_is_refused(portal_client, connection, django_capture_on_commit_callbacks):
    responses.post(TOKEN_URL, json={"access_token": "at-1", "expires_in": 60})
    state = _connect(portal_client, connection)["state"][0]
    with django_capture_on_commit_callbacks(execute=True):
        portal_client.get(reverse("oauthflow:callback"), {"code": "c1", "state": state})
    _assert_bad_state_changes_nothing(portal_client, ConfigVariable.objects.get(), state)
    assert len(responses.calls) == 1


def test_state_from_another_browser_session_is_refused(portal_client, connection, customer):
    state = _connect(portal_client, connection)["state"][0]
    attacker = Client()
    attacker.force_login(UserFactory(customer=customer))
    _assert_bad_state_changes_nothing(attacker, ConfigVariable.objects.get(), state)
