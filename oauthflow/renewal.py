"""Renewal: a new access token before the old one expires (RFC 6749 §6, §4.4).

Authorization-code connections spend their refresh token; client-credentials
connections fetch a new token. Each renewal claims the ConfigVariable's lease first, so
two workers never spend the same refresh token, and re-checks after the claim that the
renewal is still due. Failures are classified:

* transient (no reply, 5xx, 429): ``refresh_at`` moves out by exponential backoff with
  jitter (at least ``Retry-After``), and after ``RENEWAL_FAILING_AFTER`` in a row the
  status is ``failing``; the sweep picks the row up again when it is due;
* ``invalid_grant`` / ``unauthorized_client`` (revoked or expired grant): status
  ``reauthorization_required``, no more attempts: the customer must reconnect;
* any other refusal (say ``invalid_client`` after a secret changed): ``failing`` with
  backoff, so an admin can fix the App without customers reconnecting.
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from connections.models import RENEWABLE_STATUSES, ConfigVariable, GrantType, Status
from connections.services import config_variable_store_tokens, config_variable_transition
from oauthflow.chain import run_token_chain
from oauthflow.exceptions import ProviderError, ProviderUnavailable, ReauthorizationRequired
from oauthflow.exchange import client_credentials_fields
from oauthflow.lease import lease_claim, lease_release
from oauthflow.models import TokenRequestKind

logger = logging.getLogger(__name__)

PERMANENT_REFRESH_ERRORS = frozenset({"invalid_grant", "unauthorized_client"})


def renewals_due(*, now: datetime | None = None, limit: int | None = None) -> list[uuid.UUID]:
    """IDs of ConfigVariables whose ``refresh_at`` has passed, oldest first.

    Reads through the partial index ``config_variable_due``, so the cost follows the
    number of due rows, not the table size. Rows under a live lease are skipped.
    """
    now = now or timezone.now()
    limit = limit or settings.RENEWAL_SWEEP_BATCH
    rows = (
        ConfigVariable.objects.filter(
            status__in=RENEWABLE_STATUSES, refresh_at__isnull=False, refresh_at__lte=now
        )
        .exclude(lease_expires_at__gte=now)
        .order_by("refresh_at")
        .values_list("pk", flat=True)[:limit]
    )
    return list(rows)


def backoff_seconds(*, failures: int, retry_after: float | None = None) -> float:
    """Seconds to wait after ``failures`` transient failures in a row: exponential from
    ``RENEWAL_BACKOFF_BASE``, capped at ``RENEWAL_BACKOFF_MAX``, with up to 25 % jitter,
    and never less than the app's ``Retry-After``."""
    delay = min(
        settings.RENEWAL_BACKOFF_BASE * 2 ** max(failures - 1, 0), settings.RENEWAL_BACKOFF_MAX
    )
    delay += random.uniform(0, delay / 4)  # noqa: S311 - spreading load, not crypto
    return max(delay, retry_after or 0)


def _grant_fields(config_variable: ConfigVariable) -> tuple[str, dict[str, str]]:
    if config_variable.connection.grant_type == GrantType.CLIENT_CREDENTIALS:
        return TokenRequestKind.CLIENT_CREDENTIALS, client_credentials_fields(config_variable)
    if not config_variable.refresh_token:
        raise ReauthorizationRequired(
            "There is no refresh token to renew with; the app issued none "
            "(ask for offline access), so the customer must reconnect.",
            diagnosis="no_refresh_token",
        )
    return TokenRequestKind.REFRESH, {
        "grant_type": "refresh_token",
        "refresh_token": config_variable.refresh_token,
    }


def _record_transient(config_variable: ConfigVariable, exc: ProviderError) -> ConfigVariable:
    failures = config_variable.failure_count + 1
    delay = backoff_seconds(failures=failures, retry_after=exc.retry_after)
    status = config_variable.status
    if failures >= settings.RENEWAL_FAILING_AFTER:
        status = Status.FAILING
    return config_variable_transition(
        config_variable=config_variable,
        to_status=status,
        reason=f"Renewal failed ({failures} in a row); retrying in {delay:.0f} s: {exc}",
        failure_count=failures,
        last_error=str(exc),
        diagnosis=exc.diagnosis or "rejected",
        refresh_at=timezone.now() + timedelta(seconds=delay),
    )


def _renewal_failed(config_variable: ConfigVariable, exc: ProviderError) -> ConfigVariable:
    if isinstance(exc, ProviderUnavailable):
        return _record_transient(config_variable, exc)
    if isinstance(exc, ReauthorizationRequired) or exc.error in PERMANENT_REFRESH_ERRORS:
        return config_variable_transition(
            config_variable=config_variable,
            to_status=Status.REAUTHORIZATION_REQUIRED,
            reason=f"Renewal refused for good; the customer must reconnect: {exc}",
            last_error=str(exc),
            diagnosis=exc.diagnosis or "refresh_token_revoked",
            refresh_at=None,
        )
    # Any other refusal (say invalid_client after a secret change): an admin can fix the
    # App, so keep retrying with backoff rather than making customers reconnect.
    return _record_transient(config_variable, exc)


def config_variable_renew(
    *, config_variable_id: uuid.UUID | str, force: bool = False
) -> ConfigVariable | None:
    """Renew one ConfigVariable's access token if it is due (or ``force``).

    Returns the updated ConfigVariable, or None when another worker holds the lease or
    nothing was due after the claim. Errors are recorded on the row, not raised.
    """
    lease = lease_claim(config_variable_id=config_variable_id)
    if lease is None:
        return None
    try:
        config_variable = ConfigVariable.objects.select_related("connection__app").get(
            pk=config_variable_id
        )
        due = (
            config_variable.refresh_at is not None and config_variable.refresh_at <= timezone.now()
        )
        if config_variable.status not in RENEWABLE_STATUSES and not (
            force and config_variable.connection.grant_type == GrantType.CLIENT_CREDENTIALS
        ):
            return None
        if not (due or force):
            return None
        try:
            kind, fields = _grant_fields(config_variable)
            result = run_token_chain(
                app=config_variable.connection.app,
                fields=fields,
                kind=kind,
                config_variable=config_variable,
            )
        except ProviderError as exc:
            if config_variable.status not in RENEWABLE_STATUSES:
                # A first client-credentials fetch: nothing to keep alive, say what failed.
                return config_variable_transition(
                    config_variable=config_variable,
                    to_status=Status.ERROR,
                    reason=f"Fetching a client-credentials token failed: {exc}",
                    last_error=str(exc),
                    diagnosis=exc.diagnosis or "rejected",
                    refresh_at=None,
                )
            return _renewal_failed(config_variable, exc)
        token = result.token
        return config_variable_store_tokens(
            config_variable=config_variable,
            access_token=token.access_token,
            refresh_token=token.refresh_token,
            token_type=token.token_type,
            expires_in=token.expires_in,
            scope=token.scope,
            extra=token.extra,
            reason=f"Access token renewed ({kind}, flavor {result.flavor.number}).",
        )
    finally:
        lease_release(config_variable_id=config_variable_id, lease_token=lease)
