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
