"""The token endpoints under /api/v1/connections/<id>/token and their v1 aliases: the
token API's behaviour (lease, errors, no-store) with both kinds of key and scopes."""

from __future__ import annotations

import pytest
import responses
from django.urls import reverse

from api.models import Scope
from connections.fingerprints import fingerprint
from connections.models import Status
from tests.api.conftest import env_client_with

pytestmark = pytest.mark.django_db

TOKEN_NAMES = ("api:connection_token", "api:config_variable_token")
REJECTED_NAMES = ("api:connection_token_rejected", "api:config_variable_token_rejected")


def _report(client, name, cv, **body):
    return client.post(reverse(name, args=[cv.pk]), body, content_type="application/json")


@pytest.mark.parametrize("name", TOKEN_NAMES)
@pytest.mark.parametrize("holder", ["customer_client", "env_client"])
def test_both_kinds_of_key_get_the_token_not_cached(request, holder, name, ours):
    client = request.getfixturevalue(holder)
    response = client.get(reverse(name, args=[ours.pk]))
    assert response.status_code == 200
    body = response.json()
    assert body["access_token"] == "live-access-token"
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "widgets:read offline_access"
    assert set(body["metadata"]) == {"inputs", "callback", "reply"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("name", TOKEN_NAMES)
def test_another_customers_token_is_a_404(customer_client, theirs, name):
    response = customer_client.get(reverse(name, args=[theirs.pk]))
    assert response.status_code == 404
    assert "live-access-token" not in response.content.decode()


def test_tokens_need_the_tokens_read_scope(ours):
    client = env_client_with(Scope.CONNECTIONS_READ, Scope.CONNECTIONS_WRITE)
    response = client.get(reverse("api:connection_token", args=[ours.pk]))
    assert response.status_code == 403
    assert response.json()["scope"] == "tokens:read"
    assert "live-access-token" not in response.content.decode()
    assert _report(client, REJECTED_NAMES[0], ours, access_token="x").status_code == 403


def test_a_connection_that_needs_reconnecting_is_a_409(env_client, ours):
    ours.status = Status.REAUTHORIZATION_REQUIRED
    ours.save()
    response = env_client.get(reverse("api:connection_token", args=[ours.pk]))
    assert response.status_code == 409
    assert response.json()["error"] == "reauthorization_required"


@responses.activate
def test_an_unavailable_app_is_a_503_with_retry_after(env_client, ours):
    ours.expires_at = ours.refresh_at = None
    ours.access_token = ""
    ours.save()
    responses.post(ours.connection.app.token_url, status=503, headers={"Retry-After": "120"})
    response = env_client.get(reverse("api:connection_token", args=[ours.pk]))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response["Retry-After"]) >= 1


@responses.activate
@pytest.mark.parametrize("name", REJECTED_NAMES)
def test_a_rejected_token_is_renewed_once(env_client, ours, name):
    token_url = ours.connection.app.token_url
    renew = responses.post(token_url, json={"access_token": "new-access", "expires_in": 3600})
    response = _report(env_client, name, ours, fingerprint=fingerprint("live-access-token"))
    assert response.status_code == 200
    assert response.json()["access_token"] == "new-access"
    assert response["Cache-Control"] == "no-store"
    assert renew.call_count == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"access_token": ""},
        {"fingerprint": "md5:abc"},
        {"fingerprint": "sha256:zz"},
        {"fingerprint": "sha256:0123456789abX"},
        {"access_token": ["x"]},
    ],
)
def test_a_malformed_report_is_a_400_saying_what_to_send(env_client, ours, body):
    response = _report(env_client, REJECTED_NAMES[0], ours, **body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert '{"access_token": "<the rejected token>"}' in response.json()["message"]
    assert "{{" not in response.json()["message"]


def test_a_report_that_is_not_json_is_a_400(env_client, ours):
    url = reverse(REJECTED_NAMES[0], args=[ours.pk])
    response = env_client.post(url, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
