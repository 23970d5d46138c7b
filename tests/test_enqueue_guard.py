"""A renewal the broker lost is sent again before the shortest-lived tokens run out:
the defaults keep the guard and the sweep within the minimum lead, and a deployment that
breaks that is warned at start-up (connections.W002)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from connections.checks import enqueue_guard_check
from connections.models import ConfigVariable, Status
from oauthflow.renewal import renewals_due
from tests.factories import ConfigVariableFactory


def test_the_defaults_resend_a_lost_renewal_within_the_shortest_lead():
    assert enqueue_guard_check() == []


def test_a_guard_longer_than_the_lead_is_warned_at_start_up(settings):
    settings.RENEWAL_ENQUEUE_GUARD = 120
    (warning,) = enqueue_guard_check()
    assert warning.id == "connections.W002"
    assert "135 s" in warning.msg
    with pytest.raises(SystemCheckError):
        call_command("check", "--fail-level", "WARNING")


@pytest.mark.django_db
def test_a_row_whose_queued_renewal_was_lost_is_due_again_after_the_guard(settings):
    now = timezone.now()
    cv = ConfigVariableFactory(
        status=Status.CONNECTED,
        refresh_at=now - timedelta(seconds=5),
        expires_at=now + timedelta(seconds=55),
    )
    # Enqueued by a sweep, then lost with the broker's queue: no worker ever claims it.
    ConfigVariable.objects.filter(pk=cv.pk).update(enqueued_at=now)
    assert cv.pk not in renewals_due(now=now + timedelta(seconds=30))
    later = now + timedelta(seconds=settings.RENEWAL_ENQUEUE_GUARD + 1)
    assert cv.pk in renewals_due(now=later)
    assert later + timedelta(seconds=settings.RENEWAL_SWEEP_INTERVAL) < cv.expires_at + timedelta(
        seconds=settings.OAUTH_EXPIRY_MARGIN
    )
