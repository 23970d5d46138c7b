"""Alerts: one per incident, by email to the operators and an optional signed webhook.

An incident is keyed (``cv:<id>`` for a connection, ``beat:late`` for the sweep): the
first occurrence sends, repeats only count, and a resolved incident that comes back
within ``ALERT_COOLDOWN_SECONDS`` reopens silently, so a flapping connection does not
send a storm. Webhooks carry a JSON body signed with HMAC-SHA256
(``X-Portal-Signature: sha256=<hex>``), sent by the Celery task
``connections.send_alert_webhook`` (``alert_webhook_send``), which retries with backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from connections.dispatch import task_enqueue
from connections.models import AlertIncident, Customer
from oauthflow.client import webhook_post

logger = logging.getLogger(__name__)

ALERT_WEBHOOK_TASK = "connections.send_alert_webhook"  # connections.tasks


class WebhookRejected(Exception):
    """The alert webhook answered non-2xx: retried like a transport failure."""


def webhook_signature(body: bytes, secret: str) -> str:
    """The ``X-Portal-Signature`` header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_payload(incident: AlertIncident, body: str) -> bytes:
    """The JSON the webhook receives (no secret, token or code ever appears in it)."""
    return json.dumps(
        {
            "incident": incident.key,
            "subject": incident.subject,
            "opened_at": incident.opened_at.isoformat(),
            "details": body,
        },
        sort_keys=True,
    ).encode()


def alert_raise(*, key: str, subject: str, body: str) -> bool:
    """Open (or count) the incident ``key``; returns True when an alert was sent."""
    now = timezone.now()
    with transaction.atomic():
        incident = AlertIncident.objects.select_for_update().filter(key=key).first()
        if incident is not None and incident.resolved_at is None:
            AlertIncident.objects.filter(pk=incident.pk).update(
                occurrences=F("occurrences") + 1, last_seen_at=now
            )
            return False
        cooldown = timedelta(seconds=settings.ALERT_COOLDOWN_SECONDS)
        flapping = (
            incident is not None
            and incident.resolved_at is not None
            and incident.resolved_at > now - cooldown
        )
        if incident is None:
            incident = AlertIncident.objects.create(key=key, subject=subject[:300])
        else:
            incident.resolved_at = None
            incident.subject = subject[:300]
            incident.occurrences += 1
            if not flapping:
                incident.opened_at = now
            incident.save()
        if flapping:
            return False
        transaction.on_commit(lambda: _send(incident, body))
    return True


def alert_resolve(*, key: str) -> None:
    """Close the incident ``key`` (the next occurrence alerts again, after the cooldown)."""
    AlertIncident.objects.filter(key=key, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )


def _send(incident: AlertIncident, body: str) -> None:
    logger.warning("connections.alert %s", incident.subject)
    if settings.OPERATOR_EMAILS:
        send_mail(
            f"[connection portal] {incident.subject}"[:200],
            body,
            None,
            settings.OPERATOR_EMAILS,
            fail_silently=True,
        )
    if settings.ALERT_WEBHOOK_URL:
        try:
            task_enqueue(ALERT_WEBHOOK_TASK, incident.pk, body)
        except Exception:  # the broker may be what the alert is about: the email stands
            logger.warning("connections.alert.webhook_not_queued", exc_info=True)


def alert_webhook_send(*, incident_id: int, body: str) -> int:
    """POST the incident to ``ALERT_WEBHOOK_URL``, signed with ``ALERT_WEBHOOK_SECRET``
    (``webhook_signature``); returns the HTTP status. Raises ``WebhookRejected`` on a
    non-2xx answer and ``requests.RequestException`` when it cannot be sent."""
    incident = AlertIncident.objects.get(pk=incident_id)
    payload = webhook_payload(incident, body)
    headers = {}
    if settings.ALERT_WEBHOOK_SECRET:
        headers["X-Portal-Signature"] = webhook_signature(payload, settings.ALERT_WEBHOOK_SECRET)
    status = webhook_post(settings.ALERT_WEBHOOK_URL, body=payload, headers=headers)
    if not 200 <= status < 300:
        raise WebhookRejected(f"webhook answered HTTP {status}")
    return status


def customer_tell_reconnect(
    *, customer: Customer, connections: list[str], lapsing: bool = False
) -> bool:
    """Email the customer's contact that connections need reconnecting (``lapsing``:
    they will stop working soon); returns whether an email went out (False when the
    customer has no contact address)."""
    if not customer.contact_email or not connections:
        return False
    what = "will stop working soon" if lapsing else "stopped working"
    send_mail(
        "Please reconnect: " + ", ".join(connections)[:150],
        f"Hello,\n\nThese connections {what} and need you to sign in again:\n"
        + "".join(f"  - {name}\n" for name in connections)
        + "\nOpen the connection portal and press Reconnect on each.\n",
        None,
        [customer.contact_email],
        fail_silently=False,
    )
    return True
