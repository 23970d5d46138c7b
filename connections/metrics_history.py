"""Connections by status over time: a snapshot of the status counts every 5 minutes.

The renewal sweep calls ``status_snapshot_take`` on every run; at most one snapshot is
stored per 5-minute slot (the slot is unique, so two sweeps racing store one row) and
snapshots older than 7 days are pruned when a new one is stored: at most 2,016 rows.
The newest snapshot also holds the counts per Connection (``counts["by_connection"]``,
removed from it when the next is taken): for a
fleet too big to count on every page view, the dashboard and ``/metrics`` read the
newest snapshot (:func:`fleet_counts`), at most 5 minutes old, rather than grouping a
million rows per request.

Why snapshots rather than replaying ``StatusTransition``: a row's transitions go with
it when it is deleted, rows can be created in any status without a transition, and every
renewal records a "connected → connected" transition, so replaying 24 hours means reading
a number of rows that grows with the fleet and its renewal rate. A snapshot is one
GROUP BY every 5 minutes and the chart reads at most 289 small rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from connections.estimates import estimated_count
from connections.models import ConfigVariable, Connection, Status, StatusSnapshot

SNAPSHOT_EVERY = timedelta(minutes=5)
SNAPSHOT_KEEP = timedelta(days=7)
BY_CONNECTION = "by_connection"  # in StatusSnapshot.counts: {connection id: {status: n}}
# Below this many ConfigVariables (PostgreSQL's estimate; SQLite: always) pages count
# them live; above it they read the newest snapshot.
LIVE_COUNTS_BELOW = 100_000


def snapshot_slot(at: datetime) -> datetime:
    """The start of the 5-minute slot holding ``at`` (UTC)."""
    every = int(SNAPSHOT_EVERY.total_seconds())
    seconds = int(at.timestamp()) // every * every
    return datetime.fromtimestamp(seconds, tz=UTC)


def status_counts_by_connection() -> dict[int, dict[str, int]]:
    """ConfigVariables per Connection and status now, in one GROUP BY."""
    found: dict[int, dict[str, int]] = {}
    rows = ConfigVariable.objects.values_list("connection_id", "status").annotate(n=Count("pk"))
    for connection_id, status, n in rows.order_by():
        found.setdefault(connection_id, {})[status] = n
    return found


def _totals(by_connection: dict[int, dict[str, int]]) -> dict[str, int]:
    """Counts by status, every status present (zero when none)."""
    totals = dict.fromkeys(Status.values, 0)
    for counts in by_connection.values():
        for status, n in counts.items():
            totals[status] = totals.get(status, 0) + n
    return totals


def status_counts() -> dict[str, int]:
    """ConfigVariables by status now, every status present (zero when none)."""
    found = dict(ConfigVariable.objects.values_list("status").annotate(n=Count("pk")).order_by())
    return {status: found.get(status, 0) for status in Status.values}


@dataclass(frozen=True)
class AppCounts:
    """One App's ConfigVariables: in all, connected, and needing attention."""

    app_id: int
    name: str
    slug: str
    by_status: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def connected(self) -> int:
        return self.by_status.get(Status.CONNECTED, 0)

    @property
    def broken(self) -> int:
        return sum(self.by_status.get(status, 0) for status in Status.attention())


@dataclass(frozen=True)
class FleetCounts:
    """ConfigVariables by status, overall and per App, as counted at ``at`` (UTC)."""

    by_status: dict[str, int]
    by_app: list[AppCounts]  # most broken first, then by name
    at: datetime
    live: bool  # counted for this request; False: the newest snapshot's counts


def fleet_counts(*, now: datetime | None = None) -> FleetCounts:
    """ConfigVariables by status and App: counted now (one GROUP BY) while there are
    fewer than ``LIVE_COUNTS_BELOW``, else the newest snapshot's counts (the sweep takes
    one every 5 minutes), so no page groups a million rows; counted now when there is
    no snapshot with per-Connection counts."""
    now = now or timezone.now()
    estimate = estimated_count(ConfigVariable.objects.all())
    snapshot = None
    if estimate is not None and estimate >= LIVE_COUNTS_BELOW:
        snapshot = (
            StatusSnapshot.objects.filter(counts__has_key=BY_CONNECTION).order_by("-slot").first()
        )
    if snapshot is None:
        by_connection, at = status_counts_by_connection(), now
    else:
        by_connection = {int(k): v for k, v in snapshot.counts[BY_CONNECTION].items()}
        at = snapshot.taken_at
    apps: dict[int, dict[str, int]] = {}
    connection_apps: dict[int, int] = {}
    names: dict[int, tuple[str, str]] = {}
    for pk, app_id, name, slug in Connection.objects.values_list(
        "pk", "app_id", "app__name", "app__slug"
    ):
        connection_apps[pk], names[app_id] = app_id, (name, slug)
    for connection_id, counts in by_connection.items():
        if connection_id not in connection_apps:  # deleted since the snapshot
            continue
        into = apps.setdefault(connection_apps[connection_id], {})
        for status, n in counts.items():
            into[status] = into.get(status, 0) + n
    by_app = [
        AppCounts(app_id, *names.get(app_id, ("", "")), by_status=counts)
        for app_id, counts in apps.items()
    ]
    by_app.sort(key=lambda row: (-row.broken, row.name))
    return FleetCounts(_totals(by_connection), by_app, at, live=snapshot is None)


def status_snapshot_take(*, now: datetime | None = None) -> StatusSnapshot | None:
    """Store the status counts unless this 5-minute slot has them already; prune
    snapshots older than ``SNAPSHOT_KEEP``. Returns the new snapshot, or None."""
    now = now or timezone.now()
    slot = snapshot_slot(now)
    if StatusSnapshot.objects.filter(slot=slot).exists():
        return None
    by_connection = status_counts_by_connection()
    counts: dict[str, object] = {**_totals(by_connection)}
    counts[BY_CONNECTION] = {str(k): v for k, v in by_connection.items()}
    snapshot, created = StatusSnapshot.objects.get_or_create(
        slot=slot, defaults={"taken_at": now, "counts": counts}
    )
    if not created:  # another sweep stored this slot between the two queries
        return None
    # Only the newest snapshot keeps the counts per Connection: the history chart reads
    # 288 snapshots, which stay small however many Connections there are.
    for older in StatusSnapshot.objects.filter(counts__has_key=BY_CONNECTION, slot__lt=slot).only(
        "counts"
    ):
        older.counts.pop(BY_CONNECTION, None)
        older.save(update_fields=["counts"])
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
