"""Bad input on public endpoints and from token endpoints: a clear error, no 500,
nothing half-written."""

from __future__ import annotations

import pytest
import responses
from django.urls import reverse

from connections.models import ConfigVariable, Status
from oauthflow.chain import run_token_chain
from oauthflow.exceptions import ProviderError
from oauthflow.models import TokenRequest
from oauthflow.renewal import config_variables_renew
from tests.factories import AppFactory, ConfigVariableFactory, ConnectionFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://app.example.com/oauth2/token"


@pytest.fixture
def authorizing(portal_client):
    connection = ConnectionFactory()
    portal_client.post(reverse("oauthflow:connect", args=[connection.slug]))
    return ConfigVariable.objects.get()


@pytest.mark.parametrize(
    "query",
    [
        "",
        "code=abc",
        "state=",
        "state=a&state=b&code=x",
        "state=" + "A" * 100_000 + "&code=x",
        "code=" + "c" * 100_000 + "&state=x",
        "state=%ff%fe%00&code=%c3%28",
        "error=" + "e" * 100_000,
        "state=%7B%22cv%22%3A1%7D&code=x",
    ],
    ids=[
        "empty",
        "no-state",
        "blank-state",
        "duplicated",
        "huge-state",
        "huge-code",
        "non-utf8",
        "huge-error",
        "json-state",
    ],
)
def test_callback_garbage_is_a_400_and_changes_nothing(portal_client, authorizing, query):
    before = ConfigVariable.objects.filter(pk=authorizing.pk).values().get()
    response = portal_client.get(reverse("oauthflow:callback") + "?" + query)
    assert response.status_code == 400
    assert b"Nothing was changed" in response.content
    assert ConfigVariable.objects.filter(pk=authorizing.pk).values().get() == before


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}", "application/json"),
        (b'{"access_token": "' + b"x" * 3_000_000 + b'"}', "application/json"),
        (b"\xff\xfe\x00garbage", "application/octet-stream"),
        (b'{"access_token": {"nested": ["not", "a", "string"]}}', "application/json"),
    ],
    ids=["deeply-nested", "huge", "binary", "token-not-a-string"],
)
def test_hostile_token_replies_are_clear_errors(body, content_type):
    app = AppFactory(pinned_flavor=1)
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, body=body, content_type=content_type)
        with pytest.raises(ProviderError) as caught:
            run_token_chain(
                app=app, fields={"grant_type": "client_credentials"}, kind="client_credentials"
            )
    assert caught.value.diagnosis == "not_a_token_reply"
    record = TokenRequest.objects.get()
    assert len(record.response_excerpt) <= 2000


def test_an_absurd_expires_in_is_treated_as_absent():
    app = AppFactory(pinned_flavor=1)
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, body=b'{"access_token": "a", "expires_in": 1e400}')
        result = run_token_chain(
            app=app, fields={"grant_type": "client_credentials"}, kind="client_credentials"
        )
    assert result.token.expires_in is None


@responses.activate
def test_16_kb_tokens_are_stored_and_read_back():
    cv = ConfigVariableFactory(status=Status.CONNECTED, refresh_token="r" * 50)
    big_access, big_refresh = "A" * 16_384, "R" * 16_384
    responses.post(
        TOKEN_URL,
        json={
            "access_token": big_access,
            "refresh_token": big_refresh,
            "expires_in": 3600,
            "token_type": "Bearer" * 20,
            "scope": "s " * 3000,
        },
    )
    config_variables_renew(config_variable_ids=[cv.pk], force=True)
    cv.refresh_from_db()
    assert cv.status == Status.CONNECTED
    assert (cv.access_token, cv.refresh_token) == (big_access, big_refresh)
    assert len(cv.token_type) <= 40


def test_nul_bytes_from_an_app_are_stored_safely(portal_client):
    app = AppFactory(pinned_flavor=1)
    with responses.RequestsMock() as mock:
        mock.post(
            TOKEN_URL,
            status=400,
            body=b'{"error":"invalid\\u0000x","error_description":"a\\u0000b"}',
        )
        with pytest.raises(ProviderError):
            run_token_chain(
                app=app, fields={"grant_type": "client_credentials"}, kind="client_credentials"
            )
    assert "\x00" not in TokenRequest.objects.get().message
    connection = ConnectionFactory()
    location = portal_client.post(reverse("oauthflow:connect", args=[connection.slug]))["Location"]
    state = location.split("state=")[1].split("&")[0]
    response = portal_client.get(
        reverse("oauthflow:callback")
        + f"?state={state}&error=access%00denied&error_description=x%00y"
    )
    assert response.status_code == 302
    assert "\x00" not in ConfigVariable.objects.get().last_error
