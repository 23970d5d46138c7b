"""A bounded status-transition log: every real change, the newest few repeats.

Every renewal records a connected → connected ``StatusTransition`` ("Renewed"), and
every failed retry of a failing connection a failing → failing one: a million
connections renewed hourly write 24 M rows a day. What the log is for (the admin's
transition list, the portal's history) needs every real change of status and only the
newest few repeats, so :func:`transition_log_prune` keeps

- every transition whose status changes (``from_status != to_status``), and every
  Reconnect of a working connection (connected → connected by a code exchange: the
  customer did something), until the retention;
- the newest ``TOKEN_LOG_KEEP_SUCCESSES`` repeats per ConfigVariable and status (the
  token log's setting: the same "last few successful renewals" in full, read the same
  way beside each other on the ConfigVariable's page);

and deletes the other repeats and every transition older than
``TOKEN_REQUEST_RETENTION_DAYS`` (the log's retention: the admin reads a failure's
token requests and its transition side by side).

When: the token log's beat task (``oauthflow.prune_token_requests``) calls it each run,
after the roll-up. It looks at the ConfigVariables with a repeat recorded in the last
``LOOKBACK_INTERVALS`` roll-up intervals (an index range on ``created_at``), so a run
reads what was renewed since the last one whatever the table's size, and keeps no
state: a ConfigVariable skipped (budget spent, a run missed) is pruned at its next
renewal, an hour later. Deleting happens by primary key, ``TOKEN_LOG_BATCH`` rows a
statement in autocommit (no long locks; a killed run loses no progress), at most
``TOKEN_LOG_MAX_BATCHES`` statements a run. Two runs at once delete the same rows at
worst.

What the portal says once renewals are pruned: see
``connections.selectors.renewals_sentence`` (no count, which would be wrong).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from connections.models import Status, StatusTransition
from connections.transition_kinds import EXCHANGED_REASON

# A renewal is recorded as connected → connected; a Reconnect of a working connection
# too, with the code exchange's reason (an event the customer made, never pruned).
RENEWAL = Q(from_status=Status.CONNECTED, to_status=Status.CONNECTED) & ~Q(
    reason__startswith=EXCHANGED_REASON
)
# Transitions that repeat the status: renewals and a failing connection's retries.
REPEAT = Q(from_status=F("to_status")) & ~Q(reason__startswith=EXCHANGED_REASON)
LOOKBACK_INTERVALS = 3  # a run looks this many roll-up intervals back: one missed is caught
# ConfigVariables per window query: their repeats are a few rows each, plus the new ones.
CONFIG_VARIABLES_PER_STEP = 1000


@dataclass(frozen=True)
class TransitionPrune:
    """What one :func:`transition_log_prune` deleted: surplus repeats, then transitions
    past the retention."""

    pruned_repeats: int
    pruned_expired_transitions: int


def surplus_repeats(config_variable_ids: Sequence[uuid.UUID]) -> QuerySet[StatusTransition]:
    """The repeats of these ConfigVariables past each one's newest
    ``TOKEN_LOG_KEEP_SUCCESSES`` of the same status (newest by ``created_at``, then id)."""
    return (
        StatusTransition.objects.filter(REPEAT, config_variable_id__in=config_variable_ids)
        .annotate(
            newest=Window(
                RowNumber(),
                partition_by=[F("config_variable_id"), F("to_status")],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(newest__gt=settings.TOKEN_LOG_KEEP_SUCCESSES)
    )


def transition_log_prune(*, now: datetime | None = None) -> TransitionPrune:
    """Delete surplus repeats of the ConfigVariables renewed lately, then transitions
    older than ``TOKEN_REQUEST_RETENTION_DAYS``, in batches by primary key; at most
    ``TOKEN_LOG_MAX_BATCHES`` queries of each kind a run. ``now`` is UTC."""
    now = now or timezone.now()
    return TransitionPrune(_prune_repeats(now=now), _prune_expired(now=now))


def _delete(ids: list[int]) -> int:
    """DELETEs by primary key, ``TOKEN_LOG_BATCH`` at a time, each its own commit."""
    deleted = 0
    for start in range(0, len(ids), settings.TOKEN_LOG_BATCH):
        batch = ids[start : start + settings.TOKEN_LOG_BATCH]
        deleted += StatusTransition.objects.filter(pk__in=batch).delete()[0]
    return deleted


def _prune_repeats(*, now: datetime) -> int:
    since = now - timedelta(seconds=settings.TOKEN_LOG_ROLLUP_INTERVAL * LOOKBACK_INTERVALS)
    # Newest first: when the budget runs short, the ConfigVariables renewed since the last
    # run come before those an earlier run had its chance at.
    recent = StatusTransition.objects.filter(REPEAT, created_at__gte=since).order_by("-created_at")
    touched = list(dict.fromkeys(recent.values_list("config_variable_id", flat=True)))
    budget = settings.TOKEN_LOG_MAX_BATCHES
    deleted = 0
    for start in range(0, len(touched), CONFIG_VARIABLES_PER_STEP):
        if budget <= 0:
            break  # the rest are pruned at their next renewal
        step = touched[start : start + CONFIG_VARIABLES_PER_STEP]
        ids = list(surplus_repeats(step).values_list("pk", flat=True))
        budget -= 1 + -(-len(ids) // settings.TOKEN_LOG_BATCH)
        deleted += _delete(ids)
    return deleted


def _prune_expired(*, now: datetime) -> int:
    """Transitions older than the retention, oldest first, a batch at a time."""
    cutoff = now - timedelta(days=settings.TOKEN_REQUEST_RETENTION_DAYS)
    deleted = 0
    for _ in range(settings.TOKEN_LOG_MAX_BATCHES):
        ids = list(
            StatusTransition.objects.filter(created_at__lt=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[: settings.TOKEN_LOG_BATCH]
        )
        if not ids:
            break
        deleted += _delete(ids)
    return deleted
