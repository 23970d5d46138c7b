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
from django.db.models import Avg, Count, Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from config.celery import app as celery_app
from connections.alerts import alert_raise, alert_resolve
from connections.dashboard import overdue, sweep_age, sweep_is_late
from connections.models import App, ConfigVariable
from connections.refresh_expiry import refresh_tokens_expiring
from oauthflow.models import TokenRequest

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


def _broker_ok() -> bool | None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None  # no broker: tasks run in-process
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database, broker and sweep age; 503 when any is unhealthy. A late sweep (beat
    down) also opens the ``beat:late`` alert."""
    database = _database_ok()
    keys = _keys_ok() if database else False
    broker = _broker_ok()
    age = sweep_age() if database else None
    eager = settings.CELERY_TASK_ALWAYS_EAGER
    late = database and not eager and sweep_is_late(age)
    if database and not eager:
        if late:
            alert_raise(
                key="beat:late",
                subject="Renewal sweep is late: is Celery beat running?",
                body=f"The renewal sweep last ran {age if age is not None else 'never'} s ago.",
            )
        else:
            alert_resolve(key="beat:late")
    healthy = database and keys and broker is not False and not late
    return JsonResponse(
        {
            "status": "ok" if healthy else "unhealthy",
            "database": "ok" if database else "down",
            "encryption_keys": "ok" if keys else "cannot decrypt stored secrets",
            "broker": {None: "eager (no broker)", True: "ok", False: "down"}[broker],
            "last_sweep_age_seconds": None if age is None else round(age, 1),
            "sweep": "n/a (eager)" if eager else ("late" if late else "ok"),
        },
        status=200 if healthy else 503,
    )


class PortalCollector:
    """Figures read from the database at each scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = timezone.now()
        by_status = GaugeMetricFamily(
            "portal_config_variables", "ConfigVariables by status and App", labels=["status", "app"]
        )
        rows = ConfigVariable.objects.values_list("status", "connection__app__slug").annotate(
            n=Count("pk")
        )
        for status, app, count in rows.order_by():
            by_status.add_metric([status, app], count)
        yield by_status

        requests = GaugeMetricFamily(
            "portal_token_requests",
            "Token requests recorded in the retention window, by App, kind, outcome and flavor",
            labels=["app", "kind", "outcome", "flavor"],
        )
        rows = TokenRequest.objects.values_list("app__slug", "kind", "outcome", "flavor").annotate(
            n=Count("pk")
        )
        for app, kind, outcome, flavor, count in rows.order_by():
            requests.add_metric([app, kind, outcome, str(flavor)], count)
        yield requests

        latency = GaugeMetricFamily(
            "portal_token_request_seconds",
            "Token-request latency over the last hour (avg and max), by App and kind",
            labels=["app", "kind", "stat"],
        )
        since = now - timedelta(seconds=LATENCY_WINDOW_SECONDS)
        rows = (
            TokenRequest.objects.filter(created_at__gte=since, status_code__isnull=False)
            .values_list("app__slug", "kind")
            .annotate(avg=Avg("duration_ms"), max=Max("duration_ms"))
        )
        for app, kind, avg, peak in rows.order_by():
            latency.add_metric([app, kind, "avg"], (avg or 0) / 1000)
            latency.add_metric([app, kind, "max"], (peak or 0) / 1000)
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
        if not hmac.compare_digest(given, settings.METRICS_TOKEN):
            return HttpResponse("Bearer token required.", status=401)
    registry = CollectorRegistry()
    registry.register(PortalCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
