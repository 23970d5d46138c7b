"""Connection health at a glance: the reads behind the admin dashboard and /healthz.

Answers "which connections are broken, since when, why, and who is affected" in a few
aggregate queries, whatever the number of connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from connections.models import (
    RENEWABLE_STATUSES,
    ConfigVariable,
    GrantType,
    Heartbeat,
    Status,
)
from connections.refresh_expiry import refresh_tokens_expiring
from oauthflow.models import Outcome, TokenRequest, TokenRequestKind

SWEEP_HEARTBEAT = "renewal_sweep"
ATTENTION = (Status.FAILING, Status.REAUTHORIZATION_REQUIRED, Status.ERROR)


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
    return ConfigVariable.objects.filter(status__in=RENEWABLE_STATUSES, refresh_at__lt=late)


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
class Dashboard:
    """Everything the dashboard shows; counts are numbers of ConfigVariables."""

    by_status: dict[str, int]
    by_app: list[dict[str, object]]
    attention: list[ConfigVariable]
    recent_failures: list[TokenRequest]
    unrenewable: list[ConfigVariable]
    refresh_expiring: list[ConfigVariable]  # refresh token lapses within the warning window
    overdue_count: int
    sweep_age: float | None
    sweep_late: bool


def dashboard_data(*, now: datetime | None = None, limit: int = 25) -> Dashboard:
    """The dashboard's figures and lists (the newest or oldest ``limit`` of each)."""
    now = now or timezone.now()
    by_status = dict(
        ConfigVariable.objects.values_list("status").annotate(n=Count("pk")).order_by()
    )
    by_app = list(
        ConfigVariable.objects.values("connection__app__name")
        .annotate(
            total=Count("pk"),
            connected=Count("pk", filter=Q(status=Status.CONNECTED)),
            broken=Count("pk", filter=Q(status__in=ATTENTION)),
        )
        .order_by("-broken", "connection__app__name")
    )
    attention = list(
        ConfigVariable.objects.filter(status__in=ATTENTION)
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
    return Dashboard(
        by_status={status: by_status.get(status, 0) for status in Status.values},
        by_app=by_app,
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
    )
