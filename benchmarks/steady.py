"""The steady state: N connections whose tokens live S seconds, renewed for M minutes by
the real ``celery beat`` (the sweep on its production schedule) and workers.

Reports the renewal lag (how late each renewal ran versus the row's ``refresh_at``),
renewals per second, token requests per renewal, double spends, and how many connections
were ever past their ``expires_at``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from benchmarks import BenchRefused
from benchmarks.data import execute
from benchmarks.fake_endpoint import EndpointProcess, EndpointStats
from benchmarks.workers import BeatProcess, WorkerGroup
from connections.models import ConfigVariable, Connection, Status
from connections.services import expiry_margin, renewal_time


@dataclass(frozen=True)
class SteadyResult:
    """One steady-state run. ``lifetime`` and ``seconds`` (the measured window) in
    seconds; lags in seconds (p50, p99, max over every renewal in the window)."""

    connections: int
    lifetime: int
    processes: int
    pool: str
    seconds: float
    renewals: int
    failed: int
    lag_p50: float
    lag_p99: float
    lag_max: float
    past_expiry: int  # connections whose token had run out (expires_at + margin) unrenewed
    past_expires_at: int  # ... whose stored expires_at (the end less the margin) passed
    endpoint: EndpointStats
    renewal_interval: float = math.nan  # seconds from a renewal to the next refresh_at (mean)

    @property
    def per_second(self) -> float:
        return self.renewals / self.seconds if self.seconds > 0 else 0.0

    @property
    def needed_per_second(self) -> float:
        """The rate that keeps every connection fresh: connections / renewal interval."""
        interval = self.renewal_interval
        return self.connections / interval if interval and interval > 0 else math.nan

    @property
    def requests_per_renewal(self) -> float:
        return self.endpoint.requests / self.renewals if self.renewals else math.nan


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of ``values`` (``share`` in [0, 1]); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(share * len(ordered)), 1)
    return ordered[rank - 1]


STARTUP_SECONDS = 10.0  # beat's start, before its clock for the first sweep runs
POLL_SECONDS = 1.0
# A renewal's refreshed_at is set before its batch is written; rows renewed this long
# before a poll are read again so none is missed.
REREAD_SECONDS = 30.0


class LagTracker:
    """Follows ``rows`` by polling: a changed ``refreshed_at`` is a renewal, and its lag
    is the new ``refreshed_at`` less the ``refresh_at`` the row had before. Renewals
    from ``window_start`` on count. A row is past expiry when it was renewed after its
    token ran out (``expires_at`` + ``margin`` seconds) or a poll found that time passed;
    ``past_expires_at`` the same for the stored ``expires_at`` itself."""

    def __init__(
        self, rows: QuerySet[ConfigVariable], *, window_start: datetime, margin: float = 0.0
    ) -> None:
        self.rows = rows
        self.window_start = window_start
        self.margin = timedelta(seconds=margin)
        self.known: dict[Any, tuple[datetime | None, datetime | None, datetime | None]] = {
            pk: (refreshed, refresh_at, expires)
            for pk, refreshed, refresh_at, expires in rows.values_list(*FIELDS)
        }
        self.lags: list[float] = []
        self.periods: list[float] = []  # a renewal's refreshed_at to the next refresh_at
        self.past_expiry: set[Any] = set()
        self.past_expires_at: set[Any] = set()

    def poll(self, *, until: datetime | None = None) -> None:
        """Read the rows renewed lately (up to ``until``) and the rows now expired."""
        now = timezone.now()
        recent = self.rows.filter(refreshed_at__gte=now - timedelta(seconds=REREAD_SECONDS))
        for pk, refreshed, refresh_at, expires in recent.values_list(*FIELDS):
            before, old_refresh_at, old_expires = self.known[pk]
            if refreshed == before or (until is not None and refreshed > until):
                continue
            self.known[pk] = (refreshed, refresh_at, expires)
            if refreshed < self.window_start:
                continue
            if old_refresh_at is not None:
                self.lags.append((refreshed - old_refresh_at).total_seconds())
            if refresh_at is not None:
                self.periods.append((refresh_at - refreshed).total_seconds())
            if old_expires is not None and refreshed > old_expires:
                self.past_expires_at.add(pk)
            if old_expires is not None and refreshed > old_expires + self.margin:
                self.past_expiry.add(pk)
        expired = self.rows.filter(expires_at__lt=now).values_list("pk", "expires_at")
        for pk, expires in expired:
            self.past_expires_at.add(pk)
            if expires + self.margin < now:
                self.past_expiry.add(pk)


FIELDS = ("pk", "refreshed_at", "refresh_at", "expires_at")


def stagger(connection: Connection, *, lifetime: int, start: datetime) -> float:
    """Spread the rows' ``refresh_at`` evenly over one renewal period from ``start``,
    each ``expires_at`` as far after it as after a real renewal; returns the period
    (seconds): a token's lifetime less its renewal lead."""
    issued = timezone.now()
    period = (renewal_time(issued_at=issued, expires_in=lifetime) - issued).total_seconds()
    gap = lifetime - expiry_margin(lifetime) - period  # refresh_at to expires_at
    count = ConfigVariable.objects.filter(connection=connection).count()
    table = ConfigVariable._meta.db_table
    execute(
        f"UPDATE {table} AS cv SET "  # noqa: S608 - the table name comes from the model
        "refresh_at = %(start)s + s.k * %(step)s * interval '1 second', "
        "expires_at = %(start)s + (s.k * %(step)s + %(gap)s) * interval '1 second' "
        f"FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM {table} "
        "WHERE connection_id = %(connection)s) AS s WHERE cv.id = s.id",
        {"start": start, "step": period / max(count, 1), "gap": gap, "connection": connection.pk},
    )
    return period


def _watch(
    tracker: LagTracker, *, until: datetime, processes: Sequence[WorkerGroup | BeatProcess]
) -> None:
    """Poll ``tracker`` every ``POLL_SECONDS`` until ``until``."""
    while timezone.now() < until:
        time.sleep(POLL_SECONDS)
        tracker.poll()
        if not all(process.alive() for process in processes):
            raise BenchRefused("A Celery worker or beat died (see the logs in var/bench/).")


def steady_run(
    *,
    connection: Connection,
    endpoint: EndpointProcess,
    lifetime: int,
    minutes: float,
    workers: WorkerGroup,
    beat: BeatProcess,
    say: Callable[[str], None],
) -> SteadyResult:
    """Renew ``connection``'s rows with ``workers`` and ``beat`` (not started) for
    ``minutes`` after beat's first sweep, and measure the lag of every renewal."""
    rows = ConfigVariable.objects.filter(connection=connection)
    with workers, beat:
        window_start = timezone.now() + timedelta(
            seconds=settings.RENEWAL_SWEEP_INTERVAL + STARTUP_SECONDS
        )
        period = stagger(connection, lifetime=lifetime, start=window_start)
        tracker = LagTracker(rows, window_start=window_start, margin=expiry_margin(lifetime))
        say(f"Steady state: rows staggered over {period:.0f} s from beat's first sweep")
        _watch(tracker, until=window_start, processes=[workers, beat])
        before = endpoint.stats(reset_peak=True)
        window_end = window_start + timedelta(minutes=minutes)
        _watch(tracker, until=window_end, processes=[workers, beat])
        after = endpoint.stats()
    tracker.poll(until=window_end)  # the last batches, written as the workers stopped
    lags = tracker.lags
    return SteadyResult(
        connections=len(tracker.known),
        lifetime=lifetime,
        processes=workers.processes,
        pool=workers.pool,
        seconds=(window_end - window_start).total_seconds(),
        renewals=len(lags),
        failed=rows.filter(Q(failure_count__gt=0) | ~Q(status=Status.CONNECTED)).count(),
        lag_p50=percentile(lags, 0.50),
        lag_p99=percentile(lags, 0.99),
        lag_max=max(lags, default=math.nan),
        past_expiry=len(tracker.past_expiry),
        past_expires_at=len(tracker.past_expires_at),
        endpoint=after.minus(before),
        # The mean scheduled period of the renewals seen (each draws its own jitter);
        # the staggered rows' period when none was seen.
        renewal_interval=statistics.fmean(tracker.periods) if tracker.periods else period,
    )
