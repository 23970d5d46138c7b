"""Telling operators when a connection needs attention.

On a transition into ``failing`` or ``reauthorization_required`` an email goes to
``OPERATOR_EMAILS`` (Django's mail, ``EMAIL_URL``), and a warning is logged either way.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail

from connections.models import ConfigVariable, Status

logger = logging.getLogger(__name__)

ALERT_STATUSES = (Status.FAILING, Status.REAUTHORIZATION_REQUIRED)


def notify_transition(*, config_variable: ConfigVariable, from_status: str, reason: str) -> bool:
    """Alert operators if ``config_variable`` just entered an alert status; returns
    whether an email was sent. ``reason`` must hold no secret (it never does: it is the
    recorded transition reason)."""
    to_status = config_variable.status
    if to_status not in ALERT_STATUSES or to_status == from_status:
        return False
    subject = (
        f"[connection portal] {config_variable.customer} / {config_variable.connection}: "
        f"{config_variable.get_status_display()}"
    )
    logger.warning(
        "connections.config_variable.needs_attention",
        extra={"config_variable": str(config_variable.pk), "status": to_status},
    )
    if not settings.OPERATOR_EMAILS:
        return False
    body = (
        f"Customer: {config_variable.customer}\n"
        f"Connection: {config_variable.connection} (App: {config_variable.connection.app})\n"
        f"Status: {from_status} → {to_status}\n"
        f"Reason: {reason}\n"
        f"ConfigVariable: {config_variable.pk}\n"
    )
    send_mail(subject[:200], body, None, settings.OPERATOR_EMAILS, fail_silently=True)
    return True
