"""The token-request log: one row per HTTP request to a token endpoint, and its summaries.

Rows are written with every secret already redacted (``oauthflow.redaction``), so the
admin, exports and curl renderings built from them never hold a secret. The log is
bounded (``oauthflow.log_summary``): failed requests and the newest few successes per
ConfigVariable stay in full; every request is counted in ``TokenRequestSummary`` (per App
and hour) and, for renewals, in ``RenewalMinute`` (per minute, for the last two days).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from oauthflow.outcomes import Outcome


class TokenRequestKind(models.TextChoices):
    EXCHANGE = "exchange", "Code exchange"  # RFC 6749 §4.1.3
    REFRESH = "refresh", "Refresh"  # RFC 6749 §6
    CLIENT_CREDENTIALS = "client_credentials", "Client credentials"  # RFC 6749 §4.4.2
    REVOCATION = "revocation", "Revocation"  # RFC 7009 §2.1


# Token requests that renew a connection (the sweep's refreshes and client-credentials
# fetches); a renewal that tries several flavors counts once per request.
RENEWAL_KINDS = (TokenRequestKind.REFRESH, TokenRequestKind.CLIENT_CREDENTIALS)


class TokenRequest(models.Model):
    """One request to a token endpoint and its outcome (secrets redacted).

    ``chain_id`` groups the attempts of one run of the flavor chain; ``flavor`` is the
    guide's flavor number (1-6); ``duration_ms`` is wall time in milliseconds.
    """

    chain_id = models.UUIDField(default=uuid.uuid4, db_index=True)
    # Indexed with created_at below (Meta.indexes), not on their own.
    app = models.ForeignKey(
        "connections.App", on_delete=models.CASCADE, related_name="token_requests", db_index=False
    )
    config_variable = models.ForeignKey(
        "connections.ConfigVariable",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="token_requests",
        db_index=False,
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
        indexes = [
            # An App's newest requests (its admin page, its last failed chain).
            models.Index(fields=["app", "created_at"], name="token_request_app_created"),
            # A ConfigVariable's newest requests, and the roll-up's "newest successes of
            # these ConfigVariables" (oauthflow.log_summary).
            models.Index(fields=["config_variable", "created_at"], name="token_request_cv_created"),
            # The dashboard's newest failures: the failures are a small share of the log.
            models.Index(
                fields=["created_at"],
                name="token_request_failed_created",
                condition=Q(outcome__in=[o.value for o in Outcome if o.is_failure]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} flavor {self.flavor}: {self.get_outcome_display()}"


class TokenRequestSummary(models.Model):
    """Token requests of one App in one hour (UTC), by kind, outcome and flavor.

    Written only by the roll-up (``oauthflow.log_summary.token_log_roll_up``), which adds
    each token request exactly once, whether or not its full row is kept. ``count`` is
    requests; ``duration_ms_sum`` and ``duration_ms_max`` are milliseconds;
    ``latency_histogram[i]`` counts the requests of at most ``LATENCY_BOUNDS_MS[i]`` ms
    (and more than the bound before it), its last entry those above the last bound.
    """

    app = models.ForeignKey(
        "connections.App", on_delete=models.CASCADE, related_name="token_request_summaries"
    )
    hour = models.DateTimeField(help_text="The start of the hour (UTC)")
    kind = models.CharField(max_length=32, choices=TokenRequestKind.choices)
    outcome = models.CharField(max_length=32, choices=Outcome.choices)
    flavor = models.PositiveSmallIntegerField()
    count = models.PositiveIntegerField(default=0)
    duration_ms_sum = models.BigIntegerField(default=0)
    duration_ms_max = models.PositiveIntegerField(default=0)
    latency_histogram = models.JSONField(default=list)

    class Meta:
        ordering = ["-hour", "app"]
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "app", "kind", "outcome", "flavor"],
                name="one_token_request_summary_per_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.kind} {self.outcome}: {self.count}"


class RenewalMinute(models.Model):
    """Renewal requests (``RENEWAL_KINDS``) and failed ones in one minute (UTC), every App
    together: the dashboard's per-minute chart. Written by the roll-up; kept two days, so
    at most 2,880 rows whatever the fleet."""

    minute = models.DateTimeField(unique=True)
    renewals = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-minute"]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M}: {self.renewals} renewals, {self.failures} failed"


class TokenLogState(models.Model):
    """Where the roll-up stands (one row): token requests with ``id <= summarised_id`` are
    in the summaries; ``horizon_id`` is the highest id seen at ``horizon_at``, summarised
    by a later run once every transaction that could hold a lower id has ended;
    ``pruned_id``: surplus successes up to it have been deleted."""

    summarised_id = models.BigIntegerField(default=0)
    horizon_id = models.BigIntegerField(default=0)
    horizon_at = models.DateTimeField(null=True, blank=True)
    pruned_id = models.BigIntegerField(default=0)
    rolled_up_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"token log summarised through id {self.summarised_id}"
