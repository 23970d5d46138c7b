"""The token-request log: one row per HTTP request to a token endpoint.

Rows are written with every secret already redacted (``oauthflow.redaction``), so the
admin, exports and curl renderings built from them never hold a secret.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from oauthflow.outcomes import Outcome


class TokenRequestKind(models.TextChoices):
    EXCHANGE = "exchange", "Code exchange"  # RFC 6749 §4.1.3
    REFRESH = "refresh", "Refresh"  # RFC 6749 §6
    CLIENT_CREDENTIALS = "client_credentials", "Client credentials"  # RFC 6749 §4.4.2
    REVOCATION = "revocation", "Revocation"  # RFC 7009 §2.1


class TokenRequest(models.Model):
    """One request to a token endpoint and its outcome (secrets redacted).

    ``chain_id`` groups the attempts of one run of the flavor chain; ``flavor`` is the
    guide's flavor number (1-6); ``duration_ms`` is wall time in milliseconds.
    """

    chain_id = models.UUIDField(default=uuid.uuid4, db_index=True)
    app = models.ForeignKey(
        "connections.App", on_delete=models.CASCADE, related_name="token_requests"
    )
    config_variable = models.ForeignKey(
        "connections.ConfigVariable",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="token_requests",
    )
    kind = models.CharField(max_length=32, choices=TokenRequestKind.choices)
    flavor = models.PositiveSmallIntegerField()
    method = models.CharField(max_length=8, default="POST")
    url = models.URLField(max_length=2000)
    request_headers = models.JSONField(default=dict)
    request_body = models.TextField(blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_excerpt = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=32, choices=Outcome.choices)
    error = models.CharField(
        max_length=200, blank=True, help_text="The app's error code (RFC 6749 §5.2 or its own)"
    )
    message = models.TextField(blank=True)
    diagnosis = models.CharField(
        max_length=64, blank=True, help_text="oauthflow.outcomes.Key: why, for the admin"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} flavor {self.flavor}: {self.get_outcome_display()}"
