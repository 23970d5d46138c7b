"""Through Redis: a caller waiting for another process's renewal hears its signal."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from celery import Celery
from django.db import connection as db_connection
from django.utils import timezone

from connections.models import ConfigVariable, Status
from oauthflow import access, lease, renewal_signals
from oauthflow.access import get_access_token
from oauthflow.lease import lease_claim, lease_release
from tests.factories import ConfigVariableFactory

pytestmark = pytest.mark.worker


@pytest.mark.parametrize("signal_lost", [False, True])
def test_a_waiter_hears_the_holders_release_through_redis(
    signal_lost: bool, celery_app: Celery, transactional_db: None, monkeypatch: Any
) -> None:
    """The lease holder publishes its release on the row's Redis channel; the waiter,
    subscribed before it found the lease held, wakes on it (its fallback is longer than
    the whole wait). With the signal lost, the fallback's database read still answers."""
    assert isinstance(renewal_signals._transport(), renewal_signals._RedisSignals)
    if signal_lost:
        monkeypatch.setattr(lease, "renewal_signal", lambda **kwargs: None)
    monkeypatch.setattr(access, "FALLBACK_SECONDS", 0.2 if signal_lost else 60)
    waits: list[bool] = []
    real_wait = renewal_signals._PubSubListener.wait

    def recording(self: Any, timeout: float) -> bool:
        waits.append(real_wait(self, timeout))
        return waits[-1]

    monkeypatch.setattr(renewal_signals._PubSubListener, "wait", recording)
    cv = ConfigVariableFactory(
        status=Status.CONNECTED,
        access_token="old-access",
        refresh_token="old-refresh",
        expires_at=timezone.now() + timedelta(seconds=10),
        refresh_at=timezone.now() - timedelta(seconds=1),
    )
    held = lease_claim(config_variable_id=cv.pk)
    assert held is not None

    def other_worker_finishes() -> None:
        ConfigVariable.objects.filter(pk=cv.pk).update(
            access_token="renewed-elsewhere", expires_at=timezone.now() + timedelta(hours=1)
        )
        lease_release(config_variable_id=cv.pk, lease_token=held)
        db_connection.close()

    timer = threading.Timer(0.3, other_worker_finishes)
    timer.start()
    token = get_access_token(config_variable_id=cv.pk, wait_seconds=30)
    timer.join()

    assert token.access_token == "renewed-elsewhere"
    if signal_lost:
        assert waits
        assert not any(waits)
    else:
        assert waits == [True]
