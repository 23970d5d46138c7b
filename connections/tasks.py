"""Celery tasks of the connections app: delivering alert webhooks, with retries."""

from __future__ import annotations

import requests
from celery import shared_task
from django.conf import settings

from connections.alerts import webhook_payload, webhook_signature
from connections.models import AlertIncident
from oauthflow.client import webhook_post


class WebhookRejected(Exception):
    """The webhook answered non-2xx: retried like a transport failure."""


@shared_task(
    name="connections.send_alert_webhook",
    autoretry_for=(requests.RequestException, WebhookRejected),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def send_alert_webhook(incident_id: int, body: str) -> int:
    """POST the incident to ``ALERT_WEBHOOK_URL``, signed with ``ALERT_WEBHOOK_SECRET``."""
    incident = AlertIncident.objects.get(pk=incident_id)
    payload = webhook_payload(incident, body)
    headers = {}
    if settings.ALERT_WEBHOOK_SECRET:
        headers["X-Portal-Signature"] = webhook_signature(payload, settings.ALERT_WEBHOOK_SECRET)
    status = webhook_post(settings.ALERT_WEBHOOK_URL, body=payload, headers=headers)
    if not 200 <= status < 300:
        raise WebhookRejected(f"webhook answered HTTP {status}")
    return status
