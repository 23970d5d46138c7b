"""The provider contract: each row of ``provider_replies.yaml`` is a real provider's
token reply, sent through the real exchange or renewal service, and what the customer
and the admin must see afterwards (allauth's ``OAuth2TestsMixin`` idea, as a table)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from django.utils import timezone

from connections.models import ConfigVariable, GrantType, Status
from oauthflow.exchange import config_variable_exchange_code
from oauthflow.models import TokenRequest
from oauthflow.outcomes import Key, Outcome
from oauthflow.renewal import config_variables_renew
from oauthflow.tokens import bearer_type
from tests.factories import AppFactory, ConfigVariableFactory, ConnectionFactory

ROWS: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "provider_replies.yaml").read_text()
)
TOKEN_URL = "https://app.example.com/oauth2/token"
OLD_ACCESS, OLD_REFRESH = "old-access-token", "old-refresh-token"
# What each outcome leaves on the ConfigVariable: (exchange of a new connection, refresh).
STATUS_AFTER = {
    Outcome.SUCCEEDED: (Status.CONNECTED, Status.CONNECTED),
    Outcome.GRANT_DEAD: (Status.ERROR, Status.REAUTHORIZATION_REQUIRED),
    Outcome.BENIGN: (Status.ERROR, Status.CONNECTED),
    Outcome.TRANSIENT: (Status.ERROR, Status.CONNECTED),  # retried with backoff
    Outcome.NEXT_FLAVOR: (Status.ERROR, Status.CONNECTED),  # an admin can fix the App
    Outcome.WRONG_ENDPOINT: (Status.ERROR, Status.CONNECTED),
}


def test_every_row_is_complete_and_unique():
    assert len({row["id"] for row in ROWS}) == len(ROWS)
    for row in ROWS:
        assert {"provider", "source", "grant", "status", "body", "outcome", "key"} <= set(row)
        assert row["grant"] in ("exchange", "refresh", "client_credentials"), row["id"]
        assert row["source"], row["id"]
        assert row["provider"], row["id"]
        Outcome(row["outcome"])
        assert row["key"] == "" or Key(row["key"]), row["id"]


def _config_variable(grant: str) -> ConfigVariable:
    app = AppFactory(token_url=TOKEN_URL)
    if grant == "client_credentials":
        connection = ConnectionFactory(app=app, grant_type=GrantType.CLIENT_CREDENTIALS)
    else:
        connection = ConnectionFactory(app=app)
    if grant == "exchange":
        return ConfigVariableFactory(
            connection=connection, status=Status.EXCHANGING, pending_code="the-code"
        )
    now = timezone.now()
    return ConfigVariableFactory(
        connection=connection,
        status=Status.CONNECTED,
        access_token=OLD_ACCESS,
        refresh_token="" if grant == "client_credentials" else OLD_REFRESH,
        expires_at=now + timedelta(seconds=600),
        refresh_at=now,
        refreshed_at=now - timedelta(seconds=3000),
    )


def _run(row: dict[str, Any]) -> tuple[ConfigVariable, int]:
    cv = _config_variable(row["grant"])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(
            TOKEN_URL,
            status=row["status"],
            body=row["body"],
            headers={k: v for k, v in (row.get("headers") or {}).items() if k != "Content-Type"},
            content_type=(row.get("headers") or {}).get("Content-Type", "application/json"),
        )
        if row["grant"] == "exchange":
            config_variable_exchange_code(config_variable_id=cv.pk)
        else:
            config_variables_renew(config_variable_ids=[cv.pk], force=True)
        sent = len(mock.calls)
    cv.refresh_from_db()
    return cv, sent


def _check_stored(cv: ConfigVariable, stored: dict[str, Any]) -> None:
    if "access_token" in stored:
        assert cv.access_token == stored["access_token"]
    if "refresh_token" in stored:
        assert cv.refresh_token == stored["refresh_token"]
    if "token_type" in stored:
        assert bearer_type(cv.token_type) == stored["token_type"]
    _check_lifetimes(cv, stored)
    if "scopes" in stored:
        assert cv.scopes_granted == stored["scopes"]
    for name, value in (stored.get("extra_includes") or {}).items():
        assert cv.token_extra.get(name) == value
    dumped = json.dumps(cv.token_extra)
    for secret in stored.get("no_secret_in_extra", []):
        assert secret not in dumped


def _check_lifetimes(cv: ConfigVariable, stored: dict[str, Any]) -> None:
    if "expires_in" in stored and stored["expires_in"] is None:
        assert cv.expires_at is None, "no expiry: the access token does not expire"
    elif "expires_in" in stored:
        lifetime = (cv.expires_at - cv.refreshed_at).total_seconds()
        margin = min(30, stored["expires_in"] // 4)  # OAUTH_EXPIRY_MARGIN, capped
        assert abs(lifetime + margin - stored["expires_in"]) <= 5
    if "refresh_token_expires_in" in stored and stored["refresh_token_expires_in"] is None:
        assert cv.refresh_token_expires_at is None
    elif "refresh_token_expires_in" in stored:
        lifetime = (cv.refresh_token_expires_at - cv.refreshed_at).total_seconds()
        assert abs(lifetime - stored["refresh_token_expires_in"]) <= 5


@pytest.mark.django_db
@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_provider_reply(row: dict[str, Any]) -> None:
    cv, sent = _run(row)
    outcome = Outcome(row["outcome"])
    after_exchange, after_refresh = STATUS_AFTER[outcome]
    expected_status = after_exchange if row["grant"] == "exchange" else after_refresh
    assert cv.status == expected_status, cv.last_error
    assert cv.diagnosis == row["key"], cv.last_error
    records = list(TokenRequest.objects.filter(config_variable=cv).order_by("created_at", "id"))
    assert len(records) == sent
    # Every attempt but the last asked for the next flavor. The last one is the chain's
    # outcome, except when only the whole chain concludes it: six refusals that each
    # said "next flavor" (all 5xx on flavors never seen to work conclude transient).
    assert all(record.outcome == Outcome.NEXT_FLAVOR for record in records[:-1])
    if sent == 1 or (outcome.ends_chain and outcome is not Outcome.TRANSIENT):
        assert records[-1].outcome == outcome
    else:
        assert records[-1].outcome in (outcome, Outcome.NEXT_FLAVOR)
        assert sent == 6, "a chain concluded from its refusals tried every flavor"
    if "requests" in row:
        assert sent == row["requests"]
    renewal = row["grant"] != "exchange"
    if renewal and outcome is not Outcome.SUCCEEDED:
        kept = "" if row["grant"] == "client_credentials" else OLD_REFRESH
        assert (cv.access_token, cv.refresh_token or "") == (OLD_ACCESS, kept)
        if outcome is Outcome.BENIGN:
            assert cv.failure_count == 0
            assert cv.refresh_at >= cv.expires_at
        if outcome in (Outcome.TRANSIENT, Outcome.NEXT_FLAVOR, Outcome.WRONG_ENDPOINT):
            assert cv.failure_count == 1
            assert cv.refresh_at > timezone.now()
    retry_after = (row.get("headers") or {}).get("Retry-After", "")
    if outcome is Outcome.TRANSIENT and renewal and retry_after.isdigit():
        wait = (cv.refresh_at - timezone.now()).total_seconds()
        assert wait >= int(retry_after) - 5, "waits at least Retry-After"
    elif outcome is Outcome.TRANSIENT and renewal and retry_after:
        wait = (cv.refresh_at - timezone.now()).total_seconds()
        assert wait > 60, "waits until the Retry-After date"
    _check_stored(cv, row.get("stored") or {})
