"""Telling operators when a connection needs attention, through ``connections.alerts``.

A transition into ``failing``, ``reauthorization_required`` or ``error`` opens the
connection's incident (one alert, however often it recurs); a return to ``connected`` resolves it.
"""

from __future__ import annotations

import logging

from connections.alerts import alert_raise, alert_resolve
from connections.models import ConfigVariable, Status
from webhooks.services import emit_transition

logger = logging.getLogger(__name__)


def notify_transition(*, config_variable: ConfigVariable, from_status: str, reason: str) -> bool:
    """Alert or resolve for this transition; returns whether an alert was sent.
    ``reason`` holds no secret (it is the recorded transition reason)."""
    to_status = config_variable.status
    try:  # the integrator's event webhooks (a failure there never undoes the transition)
        emit_transition(config_variable=config_variable, from_status=from_status, reason=reason)
    except Exception:
        logger.exception("connections.notifications.webhook_event_failed")
    key = f"cv:{config_variable.pk}"
    if to_status == Status.CONNECTED and from_status != Status.CONNECTED:
        alert_resolve(key=key)
        return False
    if to_status not in Status.attention() or to_status == from_status:
        return False
    subject = (
        f"{config_variable.customer} / {config_variable.connection}: "
        f"{config_variable.get_status_display()}"
    )
    body = (
        f"Customer: {config_variable.customer}\n"
        f"Connection: {config_variable.connection} (App: {config_variable.connection.app})\n"
        f"Status: {from_status} → {to_status}\n"
        f"Reason: {reason}\n"
        f"ConfigVariable: {config_variable.pk}\n"
    )
    return alert_raise(key=key, subject=subject, body=body)
