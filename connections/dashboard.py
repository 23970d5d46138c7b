"""Connection health at a glance: the reads behind the admin dashboard and /healthz.

Answers "which connections are broken, since when, why, and who is affected" in a few
aggregate queries, whatever the number of connections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from connections.metrics_history import AppCounts, fleet_counts, status_history
from connections.models import (
    App,
    ConfigVariable,
    GrantType,
    Heartbeat,
    Status,
)
from connections.refresh_expiry import refresh_tokens_expiring
from oauthflow.log_summary import (
    Figures,
    Key,
    Unsummarised,
    hour_of,
    renewals_per_minute,
    token_request_figures,
    unsummarised_figures,
)
from oauthflow.models import Outcome, TokenRequest, TokenRequestKind

SWEEP_HEARTBEAT = "renewal_sweep"

# The charts: the last 24 hours, drawn in 10-minute buckets of per-minute counts.
CHART_WINDOW = timedelta(hours=24)
BUCKET_MINUTES = 10
CHART_APPS = 50  # Apps drawn in the latency chart and given a sparkline


def heartbeat_beat(*, name: str = SWEEP_HEARTBEAT) -> None:
    """Record that ``name`` ran now."""
    Heartbeat.objects.update_or_create(name=name, defaults={"at": timezone.now()})


def sweep_age(*, now: datetime | None = None) -> float | None:
    """Seconds since the renewal sweep last ran (None: never)."""
    beat = Heartbeat.objects.filter(name=SWEEP_HEARTBEAT).first()
    return None if beat is None else ((now or timezone.now()) - beat.at).total_seconds()


def sweep_is_late(age: float | None) -> bool:
    """True when beat missed ``SWEEP_LATE_INTERVALS`` sweeps in a row."""
    limit = settings.RENEWAL_SWEEP_INTERVAL * settings.SWEEP_LATE_INTERVALS
    return age is None or age > limit


def overdue(*, now: datetime) -> QuerySet[ConfigVariable]:
    """Renewals that should have happened two sweep intervals ago and have not."""
    late = now - timedelta(seconds=2 * settings.RENEWAL_SWEEP_INTERVAL)
    return ConfigVariable.objects.filter(status__in=Status.renewable(), refresh_at__lt=late)


def unrenewable(*, now: datetime, within: timedelta) -> QuerySet[ConfigVariable]:
    """Connected authorization-code rows without a refresh token that expire soon."""
    return ConfigVariable.objects.filter(
        status=Status.CONNECTED,
        connection__grant_type=GrantType.AUTHORIZATION_CODE,
        refresh_token__isnull=True,
        expires_at__isnull=False,
        expires_at__lt=now + within,
    )


@dataclass(frozen=True)
class Bucket:
    """Token requests that renew, in ``BUCKET_MINUTES`` minutes from ``start``."""

    start: datetime
    renewals: int
    failures: int
    peak_renewals: int = 0  # the busiest single minute in the bucket
    peak_failures: int = 0

    @property
    def renewals_per_minute(self) -> float:
        return self.renewals / BUCKET_MINUTES

    @property
    def failures_per_minute(self) -> float:
        return self.failures / BUCKET_MINUTES


@dataclass(frozen=True)
class Activity:
    """Renewals and failures over the chart window, per bucket, with summary figures."""

    buckets: list[Bucket]
    per_minute: dict[datetime, tuple[int, int]]  # minute → (renewals, failures), non-zero

    @property
    def renewals(self) -> int:
        return sum(b.renewals for b in self.buckets)

    @property
    def failures(self) -> int:
        return sum(b.failures for b in self.buckets)

    def peak(self) -> tuple[datetime | None, int]:
        """The minute with the most renewals, and how many."""
        if not self.per_minute:
            return None, 0
        minute = max(self.per_minute, key=lambda m: (self.per_minute[m][0], m))
        return minute, self.per_minute[minute][0]

    def last(self, minutes: int, *, now: datetime) -> tuple[int, int]:
        """(renewals, failures) in the last ``minutes`` whole minutes and this one."""
        since = (now - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
        rows = [v for m, v in self.per_minute.items() if m >= since]
        return sum(r for r, _ in rows), sum(f for _, f in rows)

    def hourly(self) -> list[tuple[datetime, int, int]]:
        """(hour, renewals, failures), oldest first: the numbers beside the chart."""
        hours: dict[datetime, list[int]] = {}
        for bucket in self.buckets:
            hour = bucket.start.replace(minute=0, second=0, microsecond=0)
            sums = hours.setdefault(hour, [0, 0])
            sums[0] += bucket.renewals
            sums[1] += bucket.failures
        return [(hour, r, f) for hour, (r, f) in hours.items()]


@dataclass(frozen=True)
class AppLatency:
    """Token-request latency of one App: p50 and p95 (ms) estimated from the latency
    histogram of its ``count`` requests (``oauthflow.log_summary.Figures``)."""

    app_id: int
    name: str
    count: int
    p50: float
    p95: float


@dataclass(frozen=True)
class AppTrend:
    """One App's token requests per hour over the chart window (its sparkline)."""

    hourly: list[int]
    failures: int

    @property
    def total(self) -> int:
        return sum(self.hourly)


def floor_minutes(at: datetime, minutes: int) -> datetime:
    """``at`` rounded down to a multiple of ``minutes`` (UTC)."""
    step = minutes * 60
    return datetime.fromtimestamp(int(at.timestamp()) // step * step, tz=UTC)


def renewal_activity(
    *,
    now: datetime,
    window: timedelta = CHART_WINDOW,
    bucket_minutes: int = BUCKET_MINUTES,
    tail: Unsummarised | None = None,
) -> Activity:
    """Renewal requests and failed renewal requests per minute over ``window``, from the
    per-minute counts of the roll-up and the few rows not yet rolled up
    (``oauthflow.log_summary.renewals_per_minute``): at most one row per minute, whatever
    the traffic. Failures are the outcomes in ``Outcome.failures()``."""
    last = floor_minutes(now, bucket_minutes)
    count = math.ceil(window / timedelta(minutes=bucket_minutes))
    first = last - timedelta(minutes=bucket_minutes * (count - 1))
    per_minute = renewals_per_minute(since=first, until=now, tail=tail)
    sums: dict[datetime, list[int]] = {}
    for minute, (renewals, failures) in per_minute.items():
        into = sums.setdefault(floor_minutes(minute, bucket_minutes), [0, 0, 0, 0])
        into[0] += renewals
        into[1] += failures
        into[2] = max(into[2], renewals)
        into[3] = max(into[3], failures)
    buckets = []
    for i in range(count):
        start = first + timedelta(minutes=bucket_minutes * i)
        renewals, failures, peak_renewals, peak_failures = sums.get(start, [0, 0, 0, 0])
        buckets.append(Bucket(start, renewals, failures, peak_renewals, peak_failures))
    return Activity(buckets=buckets, per_minute=per_minute)


def _window_start(now: datetime, window: timedelta) -> datetime:
    """The first whole hour of a window of whole hours ending with the hour of ``now``."""
    hours = math.ceil(window / timedelta(hours=1))
    return hour_of(now) - timedelta(hours=hours - 1)


def latency_by_app(
    *,
    now: datetime,
    window: timedelta = CHART_WINDOW,
    figures: dict[Key, Figures] | None = None,
) -> list[AppLatency]:
    """p50 and p95 token-request latency (ms) per App over the whole hours of ``window``
    (the hour of ``now`` and those before it), estimated from the latency histograms of
    every request (``oauthflow.log_summary``), at most ``CHART_APPS`` Apps by name: Apps
    with no request in the window are left out. ``figures``: already read for the window."""
    if figures is None:
        figures = token_request_figures(since=_window_start(now, window))
    merged: dict[int, Figures] = {}
    for (app_id, *_), found in figures.items():
        merged.setdefault(app_id, Figures()).add(found)
    names = App.objects.filter(pk__in=list(merged)).order_by("name").values_list("pk", "name")
    return [
        AppLatency(
            app_id=app_id,
            name=name,
            count=merged[app_id].count,
            p50=merged[app_id].quantile_ms(0.50),
            p95=merged[app_id].quantile_ms(0.95),
        )
        for app_id, name in names[:CHART_APPS]
        if merged[app_id].count
    ]


def trends_by_app(
    *,
    now: datetime,
    window: timedelta = CHART_WINDOW,
    figures: dict[Key, Figures] | None = None,
) -> dict[int, AppTrend]:
    """Token requests per hour and failures per App over the whole hours of ``window``,
    from the hourly summaries and the rows not yet rolled up (``oauthflow.log_summary``):
    at most one figure per App, hour, kind, outcome and flavor."""
    hours = math.ceil(window / timedelta(hours=1))
    first = _window_start(now, window)
    if figures is None:
        figures = token_request_figures(since=first)
    series: dict[int, list[int]] = {}
    failures: dict[int, int] = {}
    for (app_id, hour, _kind, outcome, _flavor), found in figures.items():
        index = int((hour - first) / timedelta(hours=1))
        if 0 <= index < hours:
            series.setdefault(app_id, [0] * hours)[index] += found.count
            failed = found.count if Outcome(outcome).is_failure else 0
            failures[app_id] = failures.get(app_id, 0) + failed
    return {app_id: AppTrend(hourly, failures[app_id]) for app_id, hourly in series.items()}


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard shows; counts are numbers of ConfigVariables."""

    by_status: dict[str, int]
    by_app: list[AppCounts]
    attention: list[ConfigVariable]
    recent_failures: list[TokenRequest]
    unrenewable: list[ConfigVariable]
    refresh_expiring: list[ConfigVariable]  # refresh token lapses within the warning window
    overdue_count: int
    sweep_age: float | None
    sweep_late: bool
    now: datetime = field(default_factory=timezone.now)
    activity: Activity | None = None
    latency: list[AppLatency] = field(default_factory=list)
    trends: dict[int, AppTrend] = field(default_factory=dict)
    status_history: list[tuple[datetime, dict[str, int]]] = field(default_factory=list)
    counted_at: datetime | None = None  # when the counts by status were taken
    counts_live: bool = True  # False: a big fleet's counts come from the newest snapshot


def dashboard_data(*, now: datetime | None = None, limit: int = 25) -> Dashboard:
    """The dashboard's figures and lists (the newest or oldest ``limit`` of each)."""
    now = now or timezone.now()
    fleet = fleet_counts(now=now)
    attention = list(
        ConfigVariable.objects.filter(status__in=Status.attention())
        .select_related("customer", "connection__app")
        .order_by("failing_since", "updated_at")[:limit]
    )
    failures = list(
        TokenRequest.objects.filter(kind=TokenRequestKind.REFRESH)
        .filter(outcome__in=Outcome.failures())
        .select_related("app", "config_variable__customer")
        .order_by("-created_at")[:limit]
    )
    age = sweep_age(now=now)
    # The rows not yet rolled up, read once for every figure below.
    tail = unsummarised_figures(since=_window_start(now, CHART_WINDOW + timedelta(hours=1)))
    figures = token_request_figures(since=_window_start(now, CHART_WINDOW), tail=tail)
    return Dashboard(
        by_status=fleet.by_status,
        by_app=fleet.by_app,
        attention=attention,
        recent_failures=failures,
        unrenewable=list(
            unrenewable(now=now, within=timedelta(hours=24))
            .select_related("customer", "connection__app")
            .order_by("expires_at")[:limit]
        ),
        refresh_expiring=list(
            refresh_tokens_expiring(now=now).select_related("customer", "connection__app")[:limit]
        ),
        overdue_count=overdue(now=now).count(),
        sweep_age=age,
        sweep_late=sweep_is_late(age),
        now=now,
        activity=renewal_activity(now=now, tail=tail),
        latency=latency_by_app(now=now, figures=figures),
        trends=trends_by_app(now=now, figures=figures),
        status_history=status_history(now=now, window=CHART_WINDOW, current=fleet.by_status),
        counted_at=fleet.at,
        counts_live=fleet.live,
    )
