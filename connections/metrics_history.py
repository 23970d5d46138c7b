"""Connections by status over time: a snapshot of the status counts every 5 minutes.

The renewal sweep calls ``status_snapshot_take`` on every run; at most one snapshot is
stored per 5-minute slot (the slot is unique, so two sweeps racing store one row) and
snapshots older than 7 days are pruned when a new one is stored: at most 2,016 rows.

Why snapshots rather than replaying ``StatusTransition``: a row's transitions go with
it when it is deleted, rows can be created in any status without a transition, and every
renewal records a "connected → connected" transition, so replaying 24 hours means reading
a number of rows that grows with the fleet and its renewal rate. A snapshot is one
GROUP BY every 5 minutes and the chart reads at most 289 small rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from connections.models import ConfigVariable, Status, StatusSnapshot

SNAPSHOT_EVERY = timedelta(minutes=5)
SNAPSHOT_KEEP = timedelta(days=7)


def snapshot_slot(at: datetime) -> datetime:
    """The start of the 5-minute slot holding ``at`` (UTC)."""
    every = int(SNAPSHOT_EVERY.total_seconds())
    seconds = int(at.timestamp()) // every * every
    return datetime.fromtimestamp(seconds, tz=UTC)


def status_counts() -> dict[str, int]:
    """ConfigVariables by status now, every status present (zero when none)."""
    found = dict(ConfigVariable.objects.values_list("status").annotate(n=Count("pk")).order_by())
    return {status: found.get(status, 0) for status in Status.values}


def status_snapshot_take(*, now: datetime | None = None) -> StatusSnapshot | None:
    """Store the status counts unless this 5-minute slot has them already; prune
    snapshots older than ``SNAPSHOT_KEEP``. Returns the new snapshot, or None."""
    now = now or timezone.now()
    slot = snapshot_slot(now)
    if StatusSnapshot.objects.filter(slot=slot).exists():
        return None
    snapshot, created = StatusSnapshot.objects.get_or_create(
        slot=slot, defaults={"taken_at": now, "counts": status_counts()}
    )
    if not created:  # another sweep stored this slot between the two queries
        return None
    StatusSnapshot.objects.filter(slot__lt=now - SNAPSHOT_KEEP).delete()
    return snapshot


def status_history(
    *, now: datetime, window: timedelta, current: dict[str, int] | None = None
) -> list[tuple[datetime, dict[str, int]]]:
    """(slot, counts by status) for the snapshots of the last ``window``, oldest first,
    then (now, ``current``), the counts now: at most ``window / SNAPSHOT_EVERY + 1``
    points."""
    snapshots = (
        StatusSnapshot.objects.filter(slot__gte=now - window, slot__lte=now)
        .order_by("slot")
        .values_list("slot", "counts")
    )
    points = [
        (slot, {status: int(counts.get(status, 0)) for status in Status.values})
        for slot, counts in snapshots
        if slot < snapshot_slot(now)  # this slot is drawn from the counts now
    ]
    points.append((now, current if current is not None else status_counts()))
    return points
