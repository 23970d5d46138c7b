"""Webhook endpoints, the events sent to them and one delivery per (endpoint, event).

Ordering rule: an endpoint's deliveries go out oldest first (``created_at``, then ``id``);
a later event waits while an earlier one is still being retried. A delivery that used up
its retries is marked ``failed`` and no longer holds the others back; "send again"
queues it once more.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models

from connections.fields import SecretField
from oauthflow.netguard import scheme_problem


class EventType(models.TextChoices):
    CREATED = "connection.created", "Connection created"
    RECONNECTED = "connection.reconnected", "Connection reconnected"
    RENEWAL_FAILING = "connection.renewal_failing", "Renewal failing (retrying)"
    REAUTHORIZATION_REQUIRED = (
        "connection.reauthorization_required",
        "Reauthorization required",
    )
    RECOVERED = "connection.recovered", "Connection recovered"
    DISCONNECTED = "connection.disconnected", "Connection disconnected"
    REFRESH_TOKEN_EXPIRING = "connection.refresh_token_expiring", "Refresh token expiring"
    TEST = "webhook.test", "Test event (admin)"


SUBSCRIBABLE = [choice for choice in EventType.choices if choice[0] != EventType.TEST]


def validate_webhook_url(value: str) -> None:
    """https; http only to loopback when ``OAUTH_ALLOW_HTTP_LOOPBACK`` is on."""
    URLValidator(schemes=["http", "https"])(value)
    problem = scheme_problem(value)
    if problem:
        raise ValidationError(problem)


def validate_events(value: object) -> None:
    known = {name for name, _ in SUBSCRIBABLE}
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("A list of event names.")
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValidationError(f"Unknown events: {', '.join(unknown)}.")


class WebhookEndpoint(models.Model):
    """A URL of the integrating product that receives the events it subscribed to."""

    name = models.CharField(max_length=200)
    url = models.CharField(max_length=2000, validators=[validate_webhook_url])
    events = models.JSONField(default=list, blank=True, validators=[validate_events])
    # "whsec_<base64>", generated on creation, shown once, never again.
    secret = SecretField(editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set by the admin on the instance it just created, for the one page that shows the
    # secret.
    _created_secret: str

    class Meta:
        ordering = ["name"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.name

    def wants(self, event_type: str) -> bool:
        return event_type == EventType.TEST or event_type in (self.events or [])


class WebhookEvent(models.Model):
    """One event; its ``id`` is the ``webhook-id`` header of every delivery of it."""

    id = models.CharField(max_length=40, primary_key=True, editable=False)
    type = models.CharField(max_length=64, choices=EventType.choices)
    created_at = models.DateTimeField()
    config_variable_id = models.UUIDField(null=True, blank=True)
    payload = models.JSONField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    @staticmethod
    def new_id() -> str:
        return f"msg_{uuid.uuid4().hex}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"


class WebhookDelivery(models.Model):
    """The delivery log: one row per (endpoint, event), updated at every attempt."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=300, blank=True)
    error = models.CharField(max_length=300, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="one_delivery_per_event")
        ]
        indexes = [models.Index(fields=["endpoint", "status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.event.type} → {self.endpoint}"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery (what the receiver answered, redacted and short)."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=300, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"attempt {self.number}"
