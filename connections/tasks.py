"""Celery tasks of the connections app: delivering alert webhooks, with retries."""

from __future__ import annotations

import requests
from celery import shared_task

from connections.alerts import ALERT_WEBHOOK_TASK, WebhookRejected, alert_webhook_send


@shared_task(
    name=ALERT_WEBHOOK_TASK,
    autoretry_for=(requests.RequestException, WebhookRejected),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def send_alert_webhook(incident_id: int, body: str) -> int:
    """Send the incident's webhook (``alerts.alert_webhook_send``); returns the HTTP status."""
    return alert_webhook_send(incident_id=incident_id, body=body)
