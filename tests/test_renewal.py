"""Renewal: due rows are swept, refresh tokens rotate, failures are classified."""

from __future__ import annotations

from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from connections.models import GrantType, Status
from connections.services import config_variable_store_tokens, renewal_time
from oauthflow import tasks
from oauthflow.lease import lease_claim
from oauthflow.models import TokenRequest
from oauthflow.renewal import config_variables_renew, renewals_due
from oauthflow.tokens import TokenResponse
from tests.factories import ConfigVariableFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://app.example.com/oauth2/token"


def _connected(**overrides):
    now = timezone.now()
    values = {
        "status": Status.CONNECTED,
        "access_token": "old-access",
        "refresh_token": "old-refresh",
        "expires_at": now + timedelta(seconds=30),
        "refresh_at": now - timedelta(seconds=1),
    }
    values.update(overrides)
    return ConfigVariableFactory(**values)


def test_sweep_selects_only_due_renewable_rows_oldest_first():
    now = timezone.now()
    late = _connected(refresh_at=now - timedelta(minutes=5))
    early = _connected(refresh_at=now - timedelta(seconds=5))
    _connected(refresh_at=now + timedelta(minutes=5))
    _connected(status=Status.REAUTHORIZATION_REQUIRED)
    _connected(refresh_at=None)
    leased = _connected()
    lease_claim(config_variable_id=leased.pk)
    assert renewals_due(now=now) == [late.pk, early.pk]


@responses.activate
def test_refresh_rotates_the_refresh_token_in_the_same_write():
    cv = _connected()
    responses.post(
        TOKEN_URL,
        json={"access_token": "new-access", "refresh_token": "new-refresh", "expires_in": 3600},
    )
    assert tasks.sweep_renewals() == 1  # eager: the renewal ran too
    cv.refresh_from_db()
    assert (cv.access_token, cv.refresh_token, cv.status) == (
        "new-access",
        "new-refresh",
        Status.CONNECTED,
    )
    assert "refresh_token=old-refresh" in responses.calls[0].request.body.decode()
    assert "grant_type=refresh_token" in responses.calls[0].request.body.decode()
    assert cv.refresh_at > timezone.now() + timedelta(minutes=40)
    assert cv.lease_token is None


@responses.activate
def test_refresh_without_a_new_refresh_token_keeps_the_old_one():
    cv = _connected()
    responses.post(TOKEN_URL, json={"access_token": "new-access", "expires_in": 3600})
    config_variables_renew(config_variable_ids=[cv.pk])
    cv.refresh_from_db()
    assert (cv.access_token, cv.refresh_token) == ("new-access", "old-refresh")


@responses.activate
def test_invalid_grant_requires_reauthorization_after_one_request():
    cv = _connected()
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    config_variables_renew(config_variable_ids=[cv.pk])
    cv.refresh_from_db()
    assert cv.status == Status.REAUTHORIZATION_REQUIRED
    assert cv.refresh_at is None
    assert len(responses.calls) == 1
    assert cv.transitions.first().to_status == Status.REAUTHORIZATION_REQUIRED


@responses.activate
def test_transient_failures_back_off_then_mark_failing(settings):
    settings.RENEWAL_FAILING_AFTER = 3
    cv = _connected()
    responses.post(TOKEN_URL, status=503, body="busy")
    for expected in (Status.CONNECTED, Status.CONNECTED, Status.FAILING):
        config_variables_renew(config_variable_ids=[cv.pk], force=True)
        cv.refresh_from_db()
        assert cv.status == expected
        assert cv.refresh_at > timezone.now()
    assert cv.failure_count == 3
    assert "503" in cv.last_error


@responses.activate
def test_a_held_lease_means_no_second_token_request():
    cv = _connected()
    responses.post(TOKEN_URL, json={"access_token": "new", "expires_in": 60})
    lease_claim(config_variable_id=cv.pk)
    assert config_variables_renew(config_variable_ids=[cv.pk]).row(cv.pk) is None
    assert len(responses.calls) == 0


@responses.activate
def test_not_due_after_the_claim_means_no_request():
    cv = _connected(refresh_at=timezone.now() + timedelta(minutes=10))
    assert config_variables_renew(config_variable_ids=[cv.pk]).row(cv.pk) is None
    assert TokenRequest.objects.count() == 0


@responses.activate
def test_client_credentials_connections_fetch_a_new_token():
    cv = _connected(refresh_token=None, connection__grant_type=GrantType.CLIENT_CREDENTIALS)
    responses.post(TOKEN_URL, json={"access_token": "cc-2", "expires_in": 600})
    config_variables_renew(config_variable_ids=[cv.pk])
    cv.refresh_from_db()
    assert cv.access_token == "cc-2"
    assert "grant_type=client_credentials" in responses.calls[0].request.body.decode()
    assert cv.refresh_at is not None


def test_no_refresh_token_means_no_renewal_and_a_warning():
    cv = ConfigVariableFactory(status=Status.EXCHANGING, connection__scopes="read")
    config_variable_store_tokens(
        config_variable=cv,
        token=TokenResponse(
            access_token="a",
            refresh_token=None,
            expires_in=3600,
            scope=None,
            extra={},
        ),
        reason="test",
    )
    cv.refresh_from_db()
    assert cv.refresh_at is None
    assert any("no refresh token" in w for w in cv.warnings)
    assert any("offline_access" in w for w in cv.warnings)


def test_renewal_time_leads_expiry_by_a_share_of_the_lifetime(settings):
    settings.RENEWAL_JITTER = 0
    issued = timezone.now()
    assert renewal_time(issued_at=issued, expires_in=3600) == issued + timedelta(seconds=3240)
    assert renewal_time(issued_at=issued, expires_in=60) == issued + timedelta(seconds=30)
    assert renewal_time(issued_at=issued, expires_in=86400) == issued + timedelta(seconds=85500)


@responses.activate
def test_a_failed_first_client_credentials_fetch_ends_in_error_not_connecting():
    cv = ConfigVariableFactory(
        status=Status.EXCHANGING, connection__grant_type=GrantType.CLIENT_CREDENTIALS
    )
    responses.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
    config_variables_renew(config_variable_ids=[cv.pk], force=True)
    cv.refresh_from_db()
    assert cv.status == Status.ERROR
    assert "invalid_client" in cv.last_error


def test_no_expires_in_never_expires_but_renews_daily_to_keep_the_refresh_token_alive(
    settings,
):
    cv = ConfigVariableFactory(status=Status.EXCHANGING)
    config_variable_store_tokens(
        config_variable=cv,
        token=TokenResponse(
            access_token="a",
            refresh_token="r",
            expires_in=None,
            scope="widgets:read",
            extra={"instance_url": "https://x"},
        ),
        reason="t",
    )
    cv.refresh_from_db()
    assert cv.expires_at is None
    idle = (cv.refresh_at - cv.refreshed_at).total_seconds()
    assert idle == settings.RENEWAL_MAX_IDLE  # apps expire refresh tokens left unused
    assert any("never expiring" in w for w in cv.warnings)
    # A refresh token came back, so offline_access was granted whether echoed or not.
    assert any(w.endswith("did not grant: widgets:write.") for w in cv.warnings)
    assert cv.scopes_granted == "widgets:read"
    assert cv.token_extra == {"instance_url": "https://x"}
