"""Callers waiting for another worker's renewal are woken by its signal, not a poll loop,
and still get the right token when the signal is lost."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import responses
from django.db import connection as db_connection
from django.utils import timezone

from connections.models import ConfigVariable, Status
from oauthflow import access, lease, renewal_signals
from oauthflow.access import get_access_token
from oauthflow.lease import lease_claim, lease_release
from tests.factories import ConfigVariableFactory

TOKEN_URL = "https://app.example.com/oauth2/token"


def _expiring() -> ConfigVariable:
    return ConfigVariableFactory(
        status=Status.CONNECTED,
        access_token="old-access",
        refresh_token="old-refresh",
        expires_at=timezone.now() + timedelta(seconds=10),
        refresh_at=timezone.now() - timedelta(seconds=1),
    )


def _renewal_elsewhere(cv: ConfigVariable) -> threading.Timer:
    """Another worker holding the lease: it writes a fresh token, then releases."""
    held = lease_claim(config_variable_id=cv.pk)
    assert held is not None

    def finish() -> None:
        ConfigVariable.objects.filter(pk=cv.pk).update(
            access_token="renewed-elsewhere", expires_at=timezone.now() + timedelta(hours=1)
        )
        lease_release(config_variable_id=cv.pk, lease_token=held)
        db_connection.close()

    return threading.Timer(0.3, finish)


@pytest.fixture
def waits(monkeypatch):
    """What each wait of a waiting caller ended with: True woken by a signal, False its
    fallback ran out (then it read the database)."""
    seen: list[bool] = []
    real = renewal_signals._EventListener.wait

    def recording(self, timeout):
        seen.append(real(self, timeout))
        return seen[-1]

    monkeypatch.setattr(renewal_signals._EventListener, "wait", recording)
    return seen


@pytest.mark.django_db(transaction=True)
@responses.activate
def test_a_waiting_caller_is_woken_by_the_lease_holders_signal(monkeypatch, waits):
    monkeypatch.setattr(access, "FALLBACK_SECONDS", 60)  # only a signal can end the wait
    cv = _expiring()
    timer = _renewal_elsewhere(cv)
    timer.start()

    token = get_access_token(config_variable_id=cv.pk, wait_seconds=60)

    timer.join()
    assert token.access_token == "renewed-elsewhere"
    assert waits == [True]
    assert len(responses.calls) == 0, "the waiter spent no refresh token"


@pytest.mark.django_db(transaction=True)
@responses.activate
def test_a_lost_signal_costs_the_waiter_only_its_fallback(monkeypatch, waits):
    monkeypatch.setattr(lease, "renewal_signal", lambda **kwargs: None)  # the signal is lost
    monkeypatch.setattr(access, "FALLBACK_SECONDS", 0.1)
    cv = _expiring()
    timer = _renewal_elsewhere(cv)
    timer.start()

    token = get_access_token(config_variable_id=cv.pk, wait_seconds=60)

    timer.join()
    assert token.access_token == "renewed-elsewhere"
    assert waits
    assert not any(waits), "no signal arrived: the database read answered"
    assert len(responses.calls) == 0


def test_a_signal_wakes_only_the_waiters_of_its_row():
    local = renewal_signals._LocalSignals()
    with local.listen("row-a") as a, local.listen("row-b") as b:
        local.signal(["row-a"])
        assert a.wait(0) is True
        assert b.wait(0) is False
    local.signal(["row-a"])  # nobody listens any more: nothing kept
    assert local._waiters == {}


@pytest.mark.django_db(transaction=True)
@responses.activate
def test_an_exchange_waiting_for_a_renewal_is_woken_by_its_signal(monkeypatch, settings, waits):
    """The code exchange waits for a renewal holding the lease the same way: the
    holder's release wakes it, with no database poll loop."""
    from oauthflow import exchange

    monkeypatch.setattr(exchange, "FALLBACK_SECONDS", 60)  # only a signal can end the wait
    settings.EXCHANGE_LEASE_WAIT = 60
    cv = ConfigVariableFactory(status=Status.EXCHANGING, pending_code="the-code")
    held = lease_claim(config_variable_id=cv.pk)

    def renewal_ends() -> None:
        lease_release(config_variable_id=cv.pk, lease_token=held)
        db_connection.close()

    responses.post(TOKEN_URL, json={"access_token": "exchanged", "expires_in": 3600})
    timer = threading.Timer(0.3, renewal_ends)
    timer.start()
    exchange.config_variable_exchange_code(config_variable_id=cv.pk)
    timer.join()
    cv.refresh_from_db()
    assert (cv.status, cv.access_token) == (Status.CONNECTED, "exchanged")
    assert waits == [True]
