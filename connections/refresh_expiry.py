"""Refresh tokens with a fixed lifetime: telling people before one lapses.

Some apps give refresh tokens a lifetime of their own (``refresh_token_expires_in``:
GitHub, LinkedIn; ``x_refresh_token_expires_in``: Intuit; ``refresh_expires_in``:
Keycloak). Renewal cannot outlive it: only a reconnect gives a new one. The sweep calls
``refresh_tokens_warn``: each connection whose refresh token lapses within
``REFRESH_TOKEN_EXPIRY_WARNING`` seconds opens one operator incident and emails the
customer's contact once; a reconnect that brings a later expiry resolves it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from connections.alerts import alert_raise, alert_resolve, customer_tell_reconnect
from connections.models import AlertIncident, ConfigVariable, Status
from webhooks.models import EventType
from webhooks.services import emit

logger = logging.getLogger(__name__)

INCIDENT_PREFIX = "refresh-expiring:"
WARN_BATCH = 500  # rows warned per sweep; the next sweep takes the rest


def refresh_tokens_expiring(*, now: datetime | None = None) -> QuerySet[ConfigVariable]:
    """Working connections whose refresh token lapses within
    ``REFRESH_TOKEN_EXPIRY_WARNING`` seconds (or has lapsed), soonest first."""
    now = now or timezone.now()
    horizon = now + timedelta(seconds=settings.REFRESH_TOKEN_EXPIRY_WARNING)
    return ConfigVariable.objects.filter(
        status__in=Status.renewable(),
        refresh_token_expires_at__isnull=False,
        refresh_token_expires_at__lt=horizon,
    ).order_by("refresh_token_expires_at")


def refresh_token_lapses_soon(
    config_variable: ConfigVariable, *, now: datetime | None = None
) -> bool:
    """True when ``config_variable``'s refresh token lapses within the warning window."""
    expiry = config_variable.refresh_token_expires_at
    if expiry is None or config_variable.status not in Status.renewable():
        return False
    horizon = (now or timezone.now()) + timedelta(seconds=settings.REFRESH_TOKEN_EXPIRY_WARNING)
    return expiry < horizon


def refresh_tokens_warn(*, now: datetime | None = None) -> int:
    """Open an incident (and email the customer once) per connection whose refresh
    token lapses soon; resolve those that no longer do. Returns how many were newly
    warned."""
    now = now or timezone.now()
    rows = list(
        refresh_tokens_expiring(now=now).select_related("customer", "connection__app")[:WARN_BATCH]
    )
    warned = 0
    for config_variable in rows:
        expiry = f"{config_variable.refresh_token_expires_at:%Y-%m-%d %H:%M:%S} UTC"
        subject = (
            f"{config_variable.customer} / {config_variable.connection}: sign-in lapses {expiry}"
        )
        body = (
            f"Customer: {config_variable.customer}\n"
            f"Connection: {config_variable.connection} (App: {config_variable.connection.app})\n"
            f"The refresh token lapses at {expiry}; renewals cannot extend it. The customer "
            "must press Reconnect before then.\n"
            f"ConfigVariable: {config_variable.pk}\n"
        )
        if alert_raise(key=f"{INCIDENT_PREFIX}{config_variable.pk}", subject=subject, body=body):
            warned += 1
            try:  # the integrator's event webhooks
                emit(EventType.REFRESH_TOKEN_EXPIRING, config_variable=config_variable)
            except Exception:
                logger.exception("connections.refresh_expiry.webhook_event_failed")
            try:
                customer_tell_reconnect(
                    customer=config_variable.customer,
                    connections=[f"{config_variable.connection.name} (before {expiry})"],
                    lapsing=True,
                )
            except OSError:  # SMTP down: the operators' incident is open; log, go on
                logger.warning("connections.refresh_expiry.email_failed", exc_info=True)
    _resolve_renewed(now=now)
    return warned


def _resolve_renewed(*, now: datetime) -> None:
    open_keys = AlertIncident.objects.filter(
        key__startswith=INCIDENT_PREFIX, resolved_at__isnull=True
    ).values_list("key", flat=True)[:WARN_BATCH]
    ids = {key.removeprefix(INCIDENT_PREFIX): key for key in open_keys}
    if not ids:
        return
    still = {
        str(pk)
        for pk in refresh_tokens_expiring(now=now)
        .filter(pk__in=list(ids))
        .values_list("pk", flat=True)
    }
    for pk, key in ids.items():
        if pk not in still:
            alert_resolve(key=key)
