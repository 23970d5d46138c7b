"""Renewal runs: the raw-requests ceiling and renewals through the real Celery path.

A run makes its rows due, starts real ``celery worker`` processes, enqueues
``sweep_renewals`` once and waits until every row is renewed; the endpoint's counts and
the token-request log tell how many requests each renewal took and whether a refresh
token was spent twice.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from django.db import DatabaseError
from django.db import connection as db_connection
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.utils import timezone

from benchmarks import BenchRefused
from benchmarks.data import BENCH_CLIENT_ID, BENCH_CLIENT_SECRET, renewal_rows_reset
from benchmarks.fake_endpoint import EndpointProcess, EndpointStats
from benchmarks.workers import WorkerGroup
from connections.models import App, ConfigVariable, Connection, Status
from oauthflow.flavors import FLAVORS_BY_NUMBER, build_token_request
from oauthflow.models import TokenRequest, TokenRequestKind

POLL_INTERVAL = 0.25  # seconds between progress queries during a renewal run


@dataclass(frozen=True)
class RateResult:
    """``count`` operations in ``seconds`` of wall time."""

    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class RenewalRun:
    """One measured renewal run: ``processes`` worker processes renewing ``due`` rows.

    ``seconds`` runs from the sweep's enqueue to the last row's ``refreshed_at``;
    ``first_after`` is when the first row was renewed (seconds after the enqueue).
    ``endpoint`` holds what the token endpoint saw during the run; ``logged_requests``
    the refresh rows written to the token-request log; ``mean_http_ms`` their mean
    recorded duration (milliseconds); ``db_sessions`` the PostgreSQL sessions opened
    while the workers ran (``pg_stat_database.sessions``; None before PostgreSQL 14).
    """

    processes: int
    pool: str
    due: int
    renewed: int
    failed: int
    seconds: float
    first_after: float
    endpoint: EndpointStats
    logged_requests: int
    mean_http_ms: float
    db_sessions: int | None = None
    timed_out: bool = False

    @property
    def per_second(self) -> float:
        return self.renewed / self.seconds if self.seconds > 0 else 0.0

    @property
    def requests_per_renewal(self) -> float:
        return self.endpoint.requests / self.renewed if self.renewed else math.nan

    @property
    def sessions_per_renewal(self) -> float:
        if self.db_sessions is None or not self.renewed:
            return math.nan
        return self.db_sessions / self.renewed


def median_rate(samples: Sequence[RateResult]) -> RateResult:
    """The sample with the median rate (the lower middle one of an even count)."""
    ordered = sorted(samples, key=lambda sample: sample.per_second)
    return ordered[(len(ordered) - 1) // 2]


def share_of_ceiling(run: RenewalRun, ceiling: RateResult | None) -> float:
    """Renewals per second per worker process, as a share of the raw-requests ceiling."""
    if ceiling is None or not ceiling.per_second:
        return math.nan
    return run.per_second / run.processes / ceiling.per_second


def raw_post_rate(url: str, count: int, *, warmup: int = 50) -> RateResult:
    """``count`` sequential ``requests.Session().post`` calls to ``url`` from this
    process, with the body shape of a renewal (flavor 1: Basic header, form body with
    ``grant_type`` and a distinct ``refresh_token``). Bodies are built before timing."""
    flavor = FLAVORS_BY_NUMBER[1]
    specs = [
        build_token_request(
            flavor,
            client_id=BENCH_CLIENT_ID,
            client_secret=BENCH_CLIENT_SECRET,
            fields={
                "grant_type": "refresh_token",
                "refresh_token": f"ceiling-{i}-{secrets.token_hex(8)}",
            },
        )
        for i in range(count + warmup)
    ]
    session = requests.Session()
    for spec in specs[:warmup]:
        session.post(url, headers=spec.headers, data=spec.body, timeout=10).content  # noqa: B018
    started = time.perf_counter()
    for spec in specs[warmup:]:
        reply = session.post(url, headers=spec.headers, data=spec.body, timeout=10)
        reply.content  # noqa: B018 - read the body, as the product does
    elapsed = time.perf_counter() - started
    session.close()
    return RateResult(count=count, seconds=elapsed)


def db_sessions() -> int | None:
    """Sessions ever opened to this database (PostgreSQL 14+), or None."""
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        try:
            cursor.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            )
        except DatabaseError:
            return None
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _refresh_log(app: App) -> tuple[int, float]:
    """Refresh rows in the token-request log for ``app`` and their total duration (ms)."""
    totals = TokenRequest.objects.filter(app=app, kind=TokenRequestKind.REFRESH).aggregate(
        n=Count("pk"), ms=Sum("duration_ms")
    )
    return totals["n"] or 0, float(totals["ms"] or 0)


def _progress(rows: QuerySet[ConfigVariable], started: datetime) -> dict[str, Any]:
    """Rows renewed since ``started`` (and the first and last ``refreshed_at``), failed."""
    since = Q(refreshed_at__gte=started)
    return rows.aggregate(
        renewed=Count("pk", filter=since),
        failed=Count("pk", filter=Q(failure_count__gt=0) | ~Q(status=Status.CONNECTED)),
        first=Min("refreshed_at", filter=since),
        last=Max("refreshed_at", filter=since),
    )


def _wait_renewed(
    rows: QuerySet[ConfigVariable],
    *,
    due: int,
    started: datetime,
    workers: WorkerGroup,
    timeout: float,
) -> tuple[dict[str, Any], bool]:
    """Poll until ``due`` rows are renewed or failed: ``(progress, timed out)``."""
    while True:
        time.sleep(POLL_INTERVAL)
        progress = _progress(rows, started)
        if progress["renewed"] + progress["failed"] >= due:
            return progress, False
        if not workers.alive():
            raise BenchRefused(f"A Celery worker died (see the logs in {workers.log_dir}).")
        if (timezone.now() - started).total_seconds() > timeout:
            return progress, True


def _difference(after: int | None, before: int | None) -> int | None:
    return after - before if after is not None and before is not None else None


def renewal_run(
    *,
    app: App,
    connection: Connection,
    endpoint: EndpointProcess,
    processes: int,
    pool: str,
    log_dir: Path,
    log_level: str,
    timeout: float,
) -> RenewalRun:
    """Reset the rows to due, start the workers, enqueue ``sweep_renewals`` and wait
    until every row is renewed (or failed, or ``timeout`` seconds passed)."""
    from oauthflow.tasks import sweep_renewals

    due = renewal_rows_reset(connection)
    rows = ConfigVariable.objects.filter(connection=connection)
    sessions_before = db_sessions()
    with WorkerGroup(processes=processes, pool=pool, log_dir=log_dir, log_level=log_level) as wg:
        before = endpoint.stats(reset_peak=True)
        logged_before, ms_before = _refresh_log(app)
        started = timezone.now()
        sweep_renewals.delay()
        progress, timed_out = _wait_renewed(
            rows, due=due, started=started, workers=wg, timeout=timeout
        )
        time.sleep(POLL_INTERVAL)  # let the last replies' log rows land
        after = endpoint.stats()
        logged_after, ms_after = _refresh_log(app)
    time.sleep(1.0)  # PostgreSQL publishes other backends' statistics within a second
    last = progress["last"] or timezone.now()
    first = progress["first"] or last
    logged = logged_after - logged_before
    return RenewalRun(
        processes=processes,
        pool=pool,
        due=due,
        renewed=progress["renewed"],
        failed=progress["failed"],
        seconds=(last - started).total_seconds(),
        first_after=(first - started).total_seconds(),
        endpoint=after.minus(before),
        logged_requests=logged,
        mean_http_ms=(ms_after - ms_before) / logged if logged else math.nan,
        db_sessions=_difference(db_sessions(), sessions_before),
        timed_out=timed_out,
    )
