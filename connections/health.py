"""Operations endpoints: ``/healthz`` for load balancers and ``/metrics`` for Prometheus.

Metrics are read from the database at scrape time (a custom collector), so every web
and worker process reports the same figures with no shared metrics directory.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from connections.dashboard import overdue, sweep_age
from connections.metrics_history import fleet_counts
from connections.models import App, ConfigVariable
from connections.refresh_expiry import refresh_tokens_expiring
from connections.watchdog import broker_reachable, machinery_state
from oauthflow.log_summary import (
    Figures,
    hour_of,
    token_request_counts,
    token_request_figures,
    unsummarised_figures,
)

LATENCY_WINDOW_SECONDS = 3600


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _keys_ok() -> bool:
    """Whether the configured keys decrypt the stored secrets (one sample of each kind)."""
    try:
        App.objects.exclude(client_secret=None).only("client_secret").first()
        ConfigVariable.objects.exclude(access_token=None).only("access_token").first()
        return True
    except ImproperlyConfigured:
        return False


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database, encryption keys, broker, the sweep and overdue renewals
    (``connections.watchdog``); 503 when any is unhealthy. Only reads: alerts come from
    the watchdog, never from a GET. Overdue renewals are reported (``degraded``) but do
    not make the web process unhealthy: a load balancer cannot cure them."""
    database = _database_ok()
    keys = _keys_ok() if database else False
    broker = broker_reachable()
    state = machinery_state(broker=broker) if database else None
    late = state is not None and state.sweep == "late"
    healthy = database and keys and broker is not False and not late
    degraded = healthy and state is not None and state.overdue > 0
    return JsonResponse(
        {
            "status": "unhealthy" if not healthy else ("degraded" if degraded else "ok"),
            "database": "ok" if database else "down",
            "encryption_keys": "ok" if keys else "cannot decrypt stored secrets",
            "broker": {None: "eager (no broker)", True: "ok", False: "down"}[broker],
            "last_sweep_age_seconds": (
                None if state is None or state.sweep_age is None else round(state.sweep_age, 1)
            ),
            "sweep": "unknown" if state is None else state.sweep,
            "blame": "" if state is None else state.blame,
            "overdue_renewals": None if state is None else state.overdue,
        },
        status=200 if healthy else 503,
    )


class PortalCollector:
    """Figures read from the database at each scrape: token-request figures from the
    log's summaries (``oauthflow.log_summary``), never a scan of the log."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = timezone.now()
        by_status = GaugeMetricFamily(
            "portal_config_variables", "ConfigVariables by status and App", labels=["status", "app"]
        )
        for app in fleet_counts(now=now).by_app:
            for status, count in app.by_status.items():
                by_status.add_metric([status, app.slug], count)
        yield by_status

        slugs = dict(App.objects.values_list("pk", "slug"))
        requests = GaugeMetricFamily(
            "portal_token_requests",
            "Token requests recorded in the retention window, by App, kind, outcome and flavor",
            labels=["app", "kind", "outcome", "flavor"],
        )
        retention = timedelta(days=settings.TOKEN_REQUEST_RETENTION_DAYS)
        tail = unsummarised_figures(since=hour_of(now - retention))  # read once, used twice
        for (app_id, kind, outcome, flavor), count in token_request_counts(
            since=now - retention, tail=tail
        ).items():
            requests.add_metric([slugs.get(app_id, ""), kind, outcome, str(flavor)], count)
        yield requests

        latency = GaugeMetricFamily(
            "portal_token_request_seconds",
            "Token-request latency in this clock hour and the one before (avg, max, and p50 "
            "and p95 estimated from a histogram), by App and kind",
            labels=["app", "kind", "stat"],
        )
        merged: dict[tuple[int, str], Figures] = {}
        figures = token_request_figures(
            since=now - timedelta(seconds=LATENCY_WINDOW_SECONDS), tail=tail
        )
        for (app_id, _hour, kind, _outcome, _flavor), found in figures.items():
            merged.setdefault((app_id, kind), Figures()).add(found)
        for (app_id, kind), found in sorted(merged.items()):
            labels = [slugs.get(app_id, ""), kind]
            latency.add_metric([*labels, "avg"], found.mean_ms / 1000)
            latency.add_metric([*labels, "max"], found.duration_ms_max / 1000)
            latency.add_metric([*labels, "p50"], found.quantile_ms(0.50) / 1000)
            latency.add_metric([*labels, "p95"], found.quantile_ms(0.95) / 1000)
        yield latency

        age = sweep_age(now=now)
        lag = GaugeMetricFamily(
            "portal_sweep_age_seconds", "Seconds since the last sweep (-1: never)"
        )
        lag.add_metric([], -1 if age is None else age)
        yield lag
        expiring = GaugeMetricFamily(
            "portal_refresh_tokens_expiring",
            "Working connections whose refresh token lapses within "
            "REFRESH_TOKEN_EXPIRY_WARNING seconds, by App (only a reconnect helps)",
            labels=["app"],
        )
        rows = (
            refresh_tokens_expiring(now=now)
            .values_list("connection__app__slug")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for app, count in rows:
            expiring.add_metric([app], count)
        yield expiring
        late = GaugeMetricFamily(
            "portal_renewals_overdue", "Renewals overdue by 2+ sweep intervals"
        )
        late.add_metric([], overdue(now=now).count())
        yield late


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; requires ``Authorization: Bearer <METRICS_TOKEN>`` when set."""
    if settings.METRICS_TOKEN:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        # Bytes: compare_digest refuses non-ASCII str, which made a stray header a 500.
        if not hmac.compare_digest(given.encode(), settings.METRICS_TOKEN.encode()):
            return HttpResponse("Bearer token required.", status=401)
    registry = CollectorRegistry()
    registry.register(PortalCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
