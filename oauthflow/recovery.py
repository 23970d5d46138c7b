"""Recovering connections left half-way through connecting.

A worker killed mid-exchange, or a task that never reached one, leaves a ConfigVariable
in ``exchanging``: the sweep would never renew it and the token API would refuse it.
Each sweep finds rows in ``exchanging`` whose lease is free and which have not moved for
``STUCK_EXCHANGE_AFTER`` seconds, and says what to do with each: exchange the stored
code again (one request; an expired code ends in a clear error), fetch the
client-credentials token again, or, with nothing to go on, fail the row with a
diagnosis the customer and admin can read. So a stuck row is recovered within
``STUCK_EXCHANGE_AFTER`` plus one sweep interval.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from connections.models import ConfigVariable, GrantType, Status
from connections.services import config_variable_transition
from oauthflow.outcomes import Key

RECOVER_BATCH = 100


class Recovery(StrEnum):
    EXCHANGE = "exchange"  # the stored code: exchange it again
    FETCH = "fetch"  # client credentials: fetch the token again
    FAILED = "failed"  # nothing to go on: recorded as an error


def exchanges_stuck(*, now: datetime | None = None) -> QuerySet[ConfigVariable]:
    """Rows in ``exchanging`` with no live lease that have not changed for
    ``STUCK_EXCHANGE_AFTER`` seconds, oldest first."""
    now = now or timezone.now()
    still = now - timedelta(seconds=settings.STUCK_EXCHANGE_AFTER)
    return (
        ConfigVariable.objects.filter(status=Status.EXCHANGING, updated_at__lt=still)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .order_by("updated_at")
    )


def exchanges_recover(*, now: datetime | None = None) -> list[tuple[uuid.UUID, Recovery]]:
    """Decide, for each stuck row (at most ``RECOVER_BATCH``), how it is recovered, and
    mark it touched so the next sweep does not send it again meanwhile. Rows with
    nothing to recover from are failed here. Returns ``(id, Recovery)`` for the caller
    to dispatch."""
    now = now or timezone.now()
    decided: list[tuple[uuid.UUID, Recovery]] = []
    for config_variable in exchanges_stuck(now=now).select_related("connection")[:RECOVER_BATCH]:
        if config_variable.pending_code:
            action = Recovery.EXCHANGE
        elif config_variable.connection.grant_type == GrantType.CLIENT_CREDENTIALS:
            action = Recovery.FETCH
        else:
            config_variable_transition(
                config_variable=config_variable,
                to_status=Status.ERROR,
                reason="Connecting stopped half-way with nothing to resume from.",
                diagnosis=Key.STUCK_EXCHANGE,
                last_error="Connecting stopped half-way (a worker died or the broker was down).",
            )
            decided.append((config_variable.pk, Recovery.FAILED))
            continue
        ConfigVariable.objects.filter(pk=config_variable.pk).update(updated_at=now)
        decided.append((config_variable.pk, action))
    return decided
