"""Events from ConfigVariable transitions, signed delivery per Standard Webhooks.

``emit_transition`` is called by ``connections.notifications.notify_transition`` after a
transition is written; ``emit`` records the event and one delivery per enabled endpoint
that subscribed to it (in the caller's transaction) and, once it commits, queues
``webhooks.deliver`` with the endpoint's ID only. ``deliver_next`` sends an endpoint's
oldest undelivered event (see ``webhooks.models`` for the ordering rule).

Payloads carry IDs, names, slugs, status and the diagnosis, never a token, code or
secret (``payload_for`` reads nothing else).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook

from connect_sessions.selectors import end_user_for
from connections.dispatch import task_enqueue
from connections.models import ConfigVariable, Status, StatusTransition
from connections.transition_kinds import is_reconnect_of_working
from oauthflow import client
from oauthflow.diagnosis import explain
from oauthflow.netguard import BlockedDestination
from oauthflow.redaction import redact_text
from webhooks.models import (
    DeliveryStatus,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 200
DELIVERY_TIMEOUT = 10.0  # seconds a receiver has to answer (Standard Webhooks suggests short)
DELIVER_TASK = "webhooks.deliver"  # webhooks.tasks.deliver


def max_attempts() -> int:
    """Attempts before a delivery is given up (the first plus at least five retries)."""
    return max(6, settings.WEBHOOK_MAX_ATTEMPTS)


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: 10 s, 20 s, 40 s
    … doubling, at most an hour."""
    base = settings.WEBHOOK_RETRY_BASE
    return min(base * 2 ** max(attempts - 1, 0), settings.WEBHOOK_RETRY_MAX)


def generate_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def endpoint_create(
    *, name: str, url: str, events: Iterable[str], enabled: bool = True
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (the caller shows it once; it is stored encrypted)."""
    secret = generate_secret()
    endpoint = WebhookEndpoint.objects.create(
        name=name, url=url, events=list(events), enabled=enabled, secret=secret
    )
    return endpoint, secret


# --- events -------------------------------------------------------------------------


def event_for_transition(
    *, from_status: str, to_status: str, first_connection: bool, reason: str = ""
) -> str | None:
    """The event a transition means, or None (renewals, flow steps, errors). A Reconnect
    of a working connection (connected → connected by a code exchange, told by
    ``reason``) is ``connection.reconnected``."""
    if is_reconnect_of_working(from_status=from_status, to_status=to_status, reason=reason):
        return EventType.RECONNECTED
    if from_status == to_status:
        return None
    if to_status == Status.CONNECTED:
        if from_status == Status.FAILING:
            return EventType.RECOVERED
        return EventType.CREATED if first_connection else EventType.RECONNECTED
    if to_status == Status.FAILING and from_status == Status.CONNECTED:
        return EventType.RENEWAL_FAILING
    if to_status == Status.REAUTHORIZATION_REQUIRED:
        return EventType.REAUTHORIZATION_REQUIRED
    if to_status == Status.DISCONNECTED:
        return EventType.DISCONNECTED
    return None


def _first_connection(config_variable: ConfigVariable) -> bool:
    """True when the transition just written is the first into ``connected`` (from a
    status other than connected: renewals are connected → connected)."""
    return (
        StatusTransition.objects.filter(config_variable=config_variable, to_status=Status.CONNECTED)
        .exclude(from_status=Status.CONNECTED)
        .count()
        <= 1
    )


def emit_transition(
    *, config_variable: ConfigVariable, from_status: str, reason: str = ""
) -> str | None:
    """Record and queue the event for a transition just written (``reason``: its recorded
    reason); returns its type. Cheap for renewals (connected → connected): no query."""
    to_status = config_variable.status
    first = to_status == Status.CONNECTED and from_status not in Status.working()
    event_type = event_for_transition(
        from_status=from_status,
        to_status=to_status,
        first_connection=first and _first_connection(config_variable),
        reason=reason,
    )
    if event_type is None:
        return None
    emit(event_type, config_variable=config_variable)
    return event_type


def payload_for(
    event_type: str, *, event_id: str, at: datetime, config_variable: ConfigVariable | None
) -> dict:
    """The JSON body (Standard Webhooks' ``type``/``timestamp``/``data`` shape).
    ``data.customer.external_id`` is the integrator's tenant ID (None if unset) and
    ``data.end_user`` ``{"id", "email", "display_name"}`` of whoever connected it through
    a connect session (None otherwise)."""
    data: dict[str, object] = {}
    if config_variable is not None:
        key = config_variable.diagnosis or ""
        connection = config_variable.connection
        data = {
            "config_variable_id": str(config_variable.pk),
            "customer": {
                "id": config_variable.customer_id,
                "name": config_variable.customer.name,
                "external_id": config_variable.customer.external_id,
            },
            # Who connected it, when an end user did through a connect session.
            "end_user": end_user_for(config_variable),
            "app": connection.app.slug,
            "connection": connection.slug,
            "status": config_variable.status,
            "diagnosis": {
                "key": key,
                "message": explain(key).customer_message if key else "",
            },
        }
        if event_type == EventType.REFRESH_TOKEN_EXPIRING:
            expiry = config_variable.refresh_token_expires_at
            data["refresh_token_expires_at"] = (
                expiry.astimezone(UTC).isoformat().replace("+00:00", "Z") if expiry else None
            )
    return {
        "type": event_type,
        "id": event_id,
        "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }


def emit(
    event_type: str,
    *,
    config_variable: ConfigVariable | None = None,
    endpoints: Iterable[WebhookEndpoint] | None = None,
) -> WebhookEvent | None:
    """Record the event and a delivery per enabled endpoint that wants it; queue the
    deliveries when the transaction commits. None when no endpoint wants it."""
    if endpoints is None:
        endpoints = WebhookEndpoint.objects.filter(enabled=True)
    targets = [endpoint for endpoint in endpoints if endpoint.wants(event_type)]
    if not targets:
        return None
    now = timezone.now()
    event_id = WebhookEvent.new_id()
    with transaction.atomic():
        event = WebhookEvent.objects.create(
            id=event_id,
            type=event_type,
            created_at=now,
            config_variable_id=config_variable.pk if config_variable else None,
            payload=payload_for(
                event_type, event_id=event_id, at=now, config_variable=config_variable
            ),
        )
        WebhookDelivery.objects.bulk_create(
            [WebhookDelivery(endpoint=target, event=event, created_at=now) for target in targets]
        )
    for target in targets:
        queue(target.pk)
    return event


def queue(endpoint_id: int) -> None:
    """Queue ``webhooks.deliver`` for the endpoint once the transaction commits."""

    def send() -> None:
        try:
            # By name: webhooks.tasks imports this module (see connections.dispatch).
            task_enqueue(DELIVER_TASK, endpoint_id)
        except Exception:  # broker down: the next event or "send again" queues it
            logger.warning("webhooks.not_queued", exc_info=True)

    transaction.on_commit(send)


def send_again(deliveries: Iterable[WebhookDelivery]) -> int:
    """Queue deliveries once more (same event and ``webhook-id``; new timestamp and
    signature), in their original order."""
    count = 0
    endpoint_ids = set()
    for delivery in deliveries:
        delivery.status = DeliveryStatus.PENDING
        delivery.attempts = 0
        delivery.next_retry_at = None
        delivery.save(update_fields=["status", "attempts", "next_retry_at"])
        endpoint_ids.add(delivery.endpoint_id)
        count += 1
    for endpoint_id in endpoint_ids:
        queue(endpoint_id)
    return count


def send_test(endpoint: WebhookEndpoint) -> WebhookEvent | None:
    """A ``webhook.test`` event to this endpoint only."""
    return emit(EventType.TEST, endpoints=[endpoint])


# --- delivery ------------------------------------------------------------------------


def signed_headers(*, secret: str, msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``."""
    at = at.astimezone(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


def _post(url: str, *, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST through the project's client (its network guard included); the status and
    the start of the reply. Raises ``BlockedDestination`` or ``requests.RequestException``."""
    response = client.send(
        url,
        headers={"Content-Type": "application/json", **headers},
        body=body,
        timeout=DELIVERY_TIMEOUT,
    )
    try:
        head = response.raw.read(EXCERPT_CHARS * 2, decode_content=True) or b""
    except Exception:  # an unreadable reply body is not the delivery's outcome
        head = b""
    finally:
        response.close()
    return response.status_code, head.decode("utf-8", "replace")


def _short(text: str, secret: str) -> str:
    return redact_text(text, [secret])[:EXCERPT_CHARS]


def deliver_next(
    endpoint_id: int, *, now: datetime | None = None, wait: bool = True
) -> float | None:
    """One attempt at the endpoint's oldest undelivered event. Returns None when there
    is nothing (more) to send now, 0 after a success (send the next one), or the seconds
    until the head is due again (``wait=False`` ignores ``next_retry_at``: eager mode).

    The endpoint row is locked for the attempt, so two workers never send one
    endpoint's events at once or out of order."""
    now = now or timezone.now()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id).first()
        if endpoint is None or not endpoint.enabled:
            return None
        head = (
            endpoint.deliveries.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING])
            .select_related("event")
            .order_by("created_at", "id")
            .first()
        )
        if head is None:
            return None
        if wait and head.next_retry_at is not None and head.next_retry_at > now:
            return max((head.next_retry_at - now).total_seconds(), 1.0)
        body = json.dumps(head.event.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = signed_headers(secret=endpoint.secret, msg_id=head.event.id, at=now, body=body)
        status, excerpt, error, give_up = None, "", "", False
        started = time.monotonic()
        try:
            status, excerpt = _post(endpoint.url, body=body, headers=headers)
        except BlockedDestination as exc:
            error, give_up = f"blocked: {exc}", True  # no retry helps
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        duration = int((time.monotonic() - started) * 1000)
        head.attempts += 1
        head.last_attempt_at = now
        head.response_status = status
        head.response_excerpt = _short(excerpt, endpoint.secret)
        head.error = _short(error, endpoint.secret)
        delivered = status is not None and 200 <= status < 300
        if delivered:
            head.status, head.delivered_at, head.next_retry_at = (
                DeliveryStatus.DELIVERED,
                now,
                None,
            )
        elif give_up or head.attempts >= max_attempts():
            head.status, head.next_retry_at = DeliveryStatus.FAILED, None
        else:
            head.status = DeliveryStatus.RETRYING
            head.next_retry_at = now + timedelta(seconds=backoff(head.attempts))
        head.save()
        WebhookAttempt.objects.create(
            delivery=head,
            number=head.attempts,
            at=now,
            response_status=status,
            response_excerpt=head.response_excerpt,
            error=head.error,
            duration_ms=duration,
        )
    logger.info(
        "webhooks.attempt %s %s %s",
        head.event.id,
        endpoint.pk,
        head.status,
        extra={"endpoint": endpoint.pk, "event": head.event.id, "status": head.status},
    )
    if head.status == DeliveryStatus.RETRYING:
        return backoff(head.attempts) if wait else 0.0
    return 0.0
