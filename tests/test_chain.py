"""The flavor chain against a mocked token endpoint (unit tests of our HTTP code)."""

from __future__ import annotations

import json

import pytest
import responses

from oauthflow.chain import run_token_chain
from oauthflow.exceptions import ProviderError, ProviderUnavailable
from oauthflow.models import TokenRequest
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://app.example.com/oauth2/token"
FIELDS = {
    "grant_type": "authorization_code",
    "scope": "widgets:read",
    "redirect_uri": "https://portal.example.com/oauth2/callback",
    "code": "secret-code-123",
}
OK = {"access_token": "at-xyz", "token_type": "Bearer", "expires_in": 60}


def _flavor_of(request) -> int:
    """Which flavor a captured request used, judged from its bytes alone."""
    basic = request.headers.get("Authorization", "")
    is_json = request.headers["Content-Type"] == "application/json"
    if not basic:
        return 4 if is_json else 3
    return 2 if is_json else 1  # 5/6 equal 1/2 for these credentials


def test_chain_stops_at_the_first_flavor_that_returns_an_access_token():
    app = AppFactory()
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
        mock.post(TOKEN_URL, status=415, body="Unsupported Media Type")
        mock.post(TOKEN_URL, status=200, json=OK)
        result = run_token_chain(app=app, fields=FIELDS, kind="exchange")
        assert [_flavor_of(c.request) for c in mock.calls] == [1, 2, 3]
    assert result.flavor.number == 3
    assert result.token.access_token == "at-xyz"
    assert result.token.token_type == "Bearer"
    app.refresh_from_db()
    assert app.preferred_flavor == 3
    assert list(TokenRequest.objects.order_by("id").values_list("flavor", "outcome")) == [
        (1, "next_flavor"),
        (2, "next_flavor"),
        (3, "succeeded"),
    ]


def test_remembered_flavor_makes_the_next_exchange_one_request():
    app = AppFactory(preferred_flavor=3)
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, json=OK)
        run_token_chain(app=app, fields=FIELDS, kind="exchange")
        assert len(mock.calls) == 1
        assert _flavor_of(mock.calls[0].request) == 3


def test_pinned_flavor_is_the_only_one_tried():
    app = AppFactory(pinned_flavor=4)
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
        with pytest.raises(ProviderError):
            run_token_chain(app=app, fields=FIELDS, kind="exchange")
        assert [_flavor_of(c.request) for c in mock.calls] == [4]


def test_when_no_flavor_works_every_attempt_is_recorded_and_the_error_named():
    app = AppFactory()
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
        with pytest.raises(ProviderError) as caught:
            run_token_chain(app=app, fields=FIELDS, kind="exchange")
        assert len(mock.calls) == 6
    assert caught.value.error == "invalid_client"
    assert "6 attempts" in str(caught.value)
    assert sorted(TokenRequest.objects.values_list("flavor", flat=True)) == [1, 2, 3, 4, 5, 6]
    assert set(TokenRequest.objects.values_list("outcome", flat=True)) == {"next_flavor"}


def test_invalid_grant_ends_the_chain_after_one_request():
    app = AppFactory()
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
        with pytest.raises(ProviderError) as caught:
            run_token_chain(app=app, fields=FIELDS, kind="exchange")
        assert len(mock.calls) == 1
    assert caught.value.error == "invalid_grant"


def test_server_errors_on_every_flavor_are_transient():
    app = AppFactory()
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, status=500, body="oops")
        with pytest.raises(ProviderUnavailable):
            run_token_chain(app=app, fields=FIELDS, kind="exchange")
        assert len(mock.calls) == 6  # as in the guide's 500 experiment


def test_429_stops_and_carries_retry_after():
    app = AppFactory()
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, status=429, headers={"Retry-After": "7"}, json={"error": "slow_down"})
        with pytest.raises(ProviderUnavailable) as caught:
            run_token_chain(app=app, fields=FIELDS, kind="refresh")
        assert len(mock.calls) == 1
    assert caught.value.retry_after == 7


def test_no_reply_is_a_named_transport_error_recorded_once():
    app = AppFactory(token_url="https://127.0.0.1:9/token")
    with pytest.raises(ProviderUnavailable) as caught:
        run_token_chain(app=app, fields=FIELDS, kind="exchange")
    assert caught.value.error == "connection"
    assert not caught.value.answered  # no code can have been spent
    record = TokenRequest.objects.get()
    assert (record.outcome, record.error, record.status_code) == (
        "transient",
        "connection",
        None,
    )


def test_records_hold_no_secret_code_or_token():
    app = AppFactory(client_secret="s3cr3t-value")
    fields = {**FIELDS, "code_verifier": "verifier-abcdefgh"}
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, status=400, json={"error": "invalid_request", "echo": "s3cr3t-value"})
        mock.post(TOKEN_URL, status=400, json={"error": "invalid_request"})
        mock.post(TOKEN_URL, status=200, json={**OK, "refresh_token": "rt-secret-999"})
        run_token_chain(app=app, fields=fields, kind="exchange")
    stored = json.dumps(list(TokenRequest.objects.values()), default=str)
    for secret in (
        "s3cr3t-value",
        "secret-code-123",
        "verifier-abcdefgh",
        "at-xyz",
        "rt-secret-999",
    ):
        assert secret not in stored
    assert "Basic [REDACTED]" in stored
    assert "[REDACTED]" in TokenRequest.objects.get(flavor=3).request_body.replace(
        "%5B", "["
    ).replace("%5D", "]")


def test_extra_token_headers_are_sent():
    app = AppFactory(extra_token_headers={"X-Api-Version": "2"})
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, json=OK)
        run_token_chain(app=app, fields=FIELDS, kind="exchange")
        sent = mock.calls[0].request.headers
    assert sent["X-Api-Version"] == "2"
    assert sent["Accept"] == "application/json"


def test_a_bad_secret_reads_invalid_client_even_when_json_flavors_come_first():
    app = AppFactory(preferred_flavor=2)
    with responses.RequestsMock() as mock:
        # A form-only server: JSON bodies get unsupported_grant_type before any auth check.
        for flavor in (2, 1, 3, 4, 5, 6):
            error = "unsupported_grant_type" if flavor % 2 == 0 else "invalid_client"
            mock.post(TOKEN_URL, status=400, json={"error": error})
        with pytest.raises(ProviderError) as caught:
            run_token_chain(app=app, fields=FIELDS, kind="exchange")
    assert caught.value.error == "invalid_client"


def test_a_server_error_on_the_known_good_flavor_is_transient_after_one_request():
    app = AppFactory(preferred_flavor=1)
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, status=503, body="maintenance")
        with pytest.raises(ProviderUnavailable):
            run_token_chain(app=app, fields=FIELDS, kind="refresh")
        assert len(mock.calls) == 1
    app.refresh_from_db()
    assert app.preferred_flavor == 1
