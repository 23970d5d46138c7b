"""Tokens on demand and the token API for integrations."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import responses
from django.core import mail
from django.db import connection as db_connection
from django.urls import reverse
from django.utils import timezone

from connections.api_keys import PREFIX, api_key_create
from connections.models import Status
from oauthflow import tasks
from oauthflow.access import get_access_token
from oauthflow.exceptions import ProviderUnavailable, ReauthorizationRequired
from oauthflow.lease import lease_claim, lease_release
from oauthflow.renewal import renewals_due
from tests.factories import ConfigVariableFactory, CustomerFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://app.example.com/oauth2/token"


def _connected(expires_in_seconds: float, **extra):
    values = {
        "status": Status.CONNECTED,
        "access_token": "old-access",
        "refresh_token": "old-refresh",
        "expires_at": timezone.now() + timedelta(seconds=expires_in_seconds),
        "refresh_at": timezone.now() + timedelta(seconds=max(expires_in_seconds - 60, 1)),
    }
    return ConfigVariableFactory(**{**values, **extra})


def test_a_fresh_token_is_returned_without_a_request():
    cv = _connected(3600)
    with responses.RequestsMock():
        assert get_access_token(config_variable_id=cv.pk).access_token == "old-access"


def test_a_row_without_an_access_token_is_never_served_as_one():
    # "Too early" was the app's last word and the lifetime has not run out, but no token
    # is stored: the integration gets a reason, not a null token.
    cv = _connected(30, access_token=None, diagnosis="too_early")
    with responses.RequestsMock(), pytest.raises(ReauthorizationRequired, match="no access token"):
        get_access_token(config_variable_id=cv.pk)


@responses.activate
def test_an_expiring_token_is_renewed_first():
    cv = _connected(10)
    responses.post(TOKEN_URL, json={"access_token": "new-access", "expires_in": 3600})
    assert get_access_token(config_variable_id=cv.pk).access_token == "new-access"
    assert len(responses.calls) == 1


@pytest.mark.django_db(transaction=True)
@responses.activate
def test_a_caller_arriving_during_a_renewal_waits_for_its_result():
    cv = _connected(10)
    responses.post(TOKEN_URL, json={"access_token": "never-fetched", "expires_in": 3600})
    lease = lease_claim(config_variable_id=cv.pk)  # another worker is renewing

    def finish_the_other_renewal() -> None:
        cv.access_token = "renewed-elsewhere"
        cv.expires_at = timezone.now() + timedelta(hours=1)
        cv.save(update_fields=["access_token", "expires_at"])
        lease_release(config_variable_id=cv.pk, lease_token=lease)
        db_connection.close()

    timer = threading.Timer(0.3, finish_the_other_renewal)
    timer.start()
    token = get_access_token(config_variable_id=cv.pk, wait_seconds=10)
    timer.join()
    assert token.access_token == "renewed-elsewhere"
    assert len(responses.calls) == 0


def test_a_disconnected_connection_needs_reauthorization():
    cv = _connected(3600)
    cv.status = Status.REAUTHORIZATION_REQUIRED
    cv.save()
    with pytest.raises(ReauthorizationRequired):
        get_access_token(config_variable_id=cv.pk)


@pytest.fixture
def api(client):
    cv = _connected(3600)
    _, key = api_key_create(customer=cv.customer, name="integration")
    return client, cv, key


def test_api_returns_the_token_to_its_own_customer_only(api):
    client, cv, key = api
    url = reverse("api:config_variable_token", args=[cv.pk])
    response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    assert response.json()["access_token"] == "old-access"
    assert response["Cache-Control"] == "no-store"
    _, other_key = api_key_create(customer=CustomerFactory(), name="other")
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {other_key}").status_code == 404


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer cpk_nope_nope", "Basic abc", "Bearer " + "x" * 5000]
)
def test_api_without_a_valid_key_is_a_401(api, header):
    client, cv, _ = api
    response = client.get(
        reverse("api:config_variable_token", args=[cv.pk]), HTTP_AUTHORIZATION=header
    )
    assert response.status_code == 401
    assert "old-access" not in response.content.decode()


def test_api_keys_are_stored_hashed_and_can_be_revoked(api):
    client, cv, key = api
    stored = cv.customer.api_keys.get()
    secret = key.removeprefix(PREFIX).partition("_")[2]  # may itself contain "_"
    assert len(secret) >= 40
    assert secret not in f"{stored.prefix} {stored.key_hash}"
    stored.revoked = True
    stored.save()
    url = reverse("api:config_variable_token", args=[cv.pk])
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401


@responses.activate
def test_the_sweep_does_not_enqueue_a_row_twice_while_queued():
    _connected(10, refresh_at=timezone.now() - timedelta(seconds=1))
    assert len(renewals_due()) == 1
    assert renewals_due() == []  # enqueued, not yet renewed


@responses.activate
def test_operators_are_emailed_when_a_connection_needs_reauthorization(
    settings, django_capture_on_commit_callbacks
):
    settings.OPERATOR_EMAILS = ["ops@example.com"]
    cv = _connected(10, refresh_at=timezone.now() - timedelta(seconds=1))
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sweep_renewals()
    cv.refresh_from_db()
    assert cv.status == Status.REAUTHORIZATION_REQUIRED
    assert len(mail.outbox) == 1
    assert "Reauthorization required" in mail.outbox[0].subject
    assert "old-refresh" not in mail.outbox[0].body


@responses.activate
def test_callers_after_a_failed_renewal_respect_its_backoff_and_retry_after():
    cv = _connected(20)
    responses.post(TOKEN_URL, status=429, headers={"Retry-After": "7"}, json={"error": "slow"})
    with pytest.raises(ProviderUnavailable):
        get_access_token(config_variable_id=cv.pk)  # the one renewal attempt: 429
    # The old token still works for ~20 s: later callers get it, and send nothing.
    assert get_access_token(config_variable_id=cv.pk).access_token == "old-access"
    cv.refresh_from_db()
    cv.expires_at = timezone.now() - timedelta(seconds=1)
    cv.save()
    with pytest.raises(ProviderUnavailable) as caught:
        get_access_token(config_variable_id=cv.pk)
    assert caught.value.retry_after >= 7
    assert len(responses.calls) == 1


@responses.activate
def test_short_lived_tokens_are_served_without_renewing_on_every_call():
    cv = _connected(30)  # a 60 s token stored with a 30 s margin
    cv.refreshed_at = timezone.now()
    cv.save()
    with responses.RequestsMock():
        assert get_access_token(config_variable_id=cv.pk).access_token == "old-access"
    # 25 s later, 5 s are left of its 30: under half its lifetime, so it is renewed.
    cv.refreshed_at = timezone.now() - timedelta(seconds=25)
    cv.expires_at = timezone.now() + timedelta(seconds=5)
    cv.save()
    responses.post(TOKEN_URL, json={"access_token": "new-access", "expires_in": 60})
    assert get_access_token(config_variable_id=cv.pk).access_token == "new-access"
    assert len(responses.calls) == 1


def _report(client, cv, key, **body):
    return client.post(
        reverse("api:config_variable_token_rejected", args=[cv.pk]),
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )


@pytest.mark.parametrize(
    "body", [{}, {"access_token": ""}, {"fingerprint": "md5:abc"}, {"access_token": 7}]
)
def test_a_malformed_rejection_report_is_a_clear_400(api, body):
    client, cv, key = api
    response = _report(client, cv, key, **body)
    assert response.status_code == 400
    assert "access_token" in response.json()["message"]


def test_a_rejection_report_needs_the_customers_key_and_a_post(api):
    client, cv, key = api
    _, other_key = api_key_create(customer=CustomerFactory(), name="other")
    assert _report(client, cv, other_key, access_token="old-access").status_code == 404
    url = reverse("api:config_variable_token_rejected", args=[cv.pk])
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 405


@responses.activate
def test_a_report_by_fingerprint_renews_once(api):
    from connections.fingerprints import fingerprint

    client, cv, key = api
    responses.post(TOKEN_URL, json={"access_token": "new-access", "expires_in": 3600})
    response = _report(client, cv, key, fingerprint=fingerprint("old-access"))
    assert response.status_code == 200
    assert response.json()["access_token"] == "new-access"
    assert len(responses.calls) == 1


@pytest.mark.skipif(
    db_connection.vendor == "sqlite", reason="SQLite's shared in-memory test database locks tables"
)
@pytest.mark.django_db(transaction=True)
@responses.activate
def test_concurrent_reports_of_one_token_cause_one_renewal():
    from oauthflow.access import report_rejected_token

    cv = _connected(3600)
    responses.post(TOKEN_URL, json={"access_token": "new-access", "expires_in": 3600})
    results: list[str] = []

    def report() -> None:
        from connections.fingerprints import fingerprint

        token = report_rejected_token(
            config_variable_id=cv.pk, token_fingerprint=fingerprint("old-access")
        )
        results.append(token.access_token)
        db_connection.close()

    threads = [threading.Thread(target=report) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == ["new-access"] * 4
    assert len(responses.calls) == 1
