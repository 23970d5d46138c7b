"""System checks for deployments (``manage.py check --deploy``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage
from django.core.checks import Warning as CheckWarning


def metrics_token_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """connections.W001: with DEBUG off and no METRICS_TOKEN, /metrics is public."""
    if settings.DEBUG or settings.METRICS_TOKEN:
        return []
    return [
        CheckWarning(
            "METRICS_TOKEN is empty: /metrics answers anyone (connection counts by App and "
            "status, token-request outcomes).",
            hint="Set METRICS_TOKEN and send it as 'Authorization: Bearer <token>' when "
            "scraping, or keep /metrics off the public network.",
            id="connections.W001",
        )
    ]


def enqueue_guard_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """connections.W002: a renewal task the broker lost (a Redis restart without
    persistence) is sent again only after ``RENEWAL_ENQUEUE_GUARD`` seconds and the next
    sweep; past ``RENEWAL_LEAD_MIN`` the shortest-lived tokens run out first."""
    delay = settings.RENEWAL_ENQUEUE_GUARD + settings.RENEWAL_SWEEP_INTERVAL
    if delay <= settings.RENEWAL_LEAD_MIN:
        return []
    return [
        CheckWarning(
            f"RENEWAL_ENQUEUE_GUARD + RENEWAL_SWEEP_INTERVAL is {delay:g} s, more than "
            f"RENEWAL_LEAD_MIN ({settings.RENEWAL_LEAD_MIN} s): renewals a broker loses "
            "are sent again only after tokens that renew at the minimum lead have expired.",
            hint="Lower RENEWAL_ENQUEUE_GUARD or RENEWAL_SWEEP_INTERVAL, or raise "
            "RENEWAL_LEAD_MIN.",
            id="connections.W002",
        )
    ]
