"""Services that change ConfigVariables: status transitions, storing tokens, disconnecting.

Plain functions with keyword-only arguments; views, admin actions and tasks call them.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connections.models import (
    ConfigVariable,
    Connection,
    Customer,
    GrantType,
    Status,
    StatusTransition,
)
from connections.notifications import notify_transition
from oauthflow.diagnosis import explain
from oauthflow.redaction import storable
from oauthflow.tokens import TokenResponse

logger = logging.getLogger(__name__)


def config_variable_get_or_create(*, customer: Customer, connection: Connection) -> ConfigVariable:
    """The customer's ConfigVariable for ``connection``, created ``pending`` if new."""
    config_variable, _ = ConfigVariable.objects.get_or_create(
        customer=customer, connection=connection
    )
    return config_variable


def config_variable_transition(
    *, config_variable: ConfigVariable, to_status: str, reason: str, **changes: object
) -> ConfigVariable:
    """Set ``to_status`` (and any other ``changes``) and record the transition's reason."""
    from_status = config_variable.status
    if to_status == Status.FAILING and from_status != Status.FAILING:
        changes.setdefault("failing_since", timezone.now())
    elif to_status != Status.FAILING and config_variable.failing_since is not None:
        changes.setdefault("failing_since", None)
    config_variable.status = to_status
    for name, value in changes.items():
        # Text from apps (error descriptions) may hold NULs, which PostgreSQL refuses.
        setattr(config_variable, name, storable(value) if isinstance(value, str) else value)
    with transaction.atomic():
        # Only the fields changed here: a concurrent lease holder's columns stay intact.
        config_variable.save(update_fields=["status", "updated_at", *changes])
        StatusTransition.objects.create(
            config_variable=config_variable,
            from_status=from_status,
            to_status=to_status,
            reason=storable(reason)[:2000],
        )
    notify_transition(config_variable=config_variable, from_status=from_status, reason=reason)
    logger.info(
        "connections.config_variable.transition %s %s -> %s",
        config_variable.pk,
        from_status,
        to_status,
        extra={"config_variable": str(config_variable.pk), "from": from_status, "to": to_status},
    )
    return config_variable


def renewal_time(*, issued_at: datetime, expires_in: int) -> datetime:
    """When to renew a token that lives ``expires_in`` seconds from ``issued_at`` (UTC).

    The lead before expiry is ``RENEWAL_LEAD_FRACTION`` of the lifetime, clamped to
    [``RENEWAL_LEAD_MIN``, ``RENEWAL_LEAD_MAX``] seconds and never more than half the
    lifetime, plus up to ``RENEWAL_JITTER`` seconds at random so tokens issued together
    do not all renew in the same second.
    """
    lead = expires_in * settings.RENEWAL_LEAD_FRACTION
    lead = min(max(lead, settings.RENEWAL_LEAD_MIN), settings.RENEWAL_LEAD_MAX, expires_in / 2)
    jitter = random.uniform(0, min(settings.RENEWAL_JITTER, lead / 2))  # noqa: S311 - not crypto
    return issued_at + timedelta(seconds=expires_in - lead - jitter)


def token_warnings(*, config_variable: ConfigVariable, has_refresh_token: bool) -> list[str]:
    """Warnings a customer's admin should see about keeping this connection alive."""
    connection = config_variable.connection
    app = connection.app
    warnings = []
    if connection.grant_type == GrantType.CLIENT_CREDENTIALS:
        return warnings
    if not has_refresh_token:
        diagnosis = explain("no_refresh_token", app=app)
        warnings.append(f"{diagnosis.message} {diagnosis.fix}")
    offline = app.offline_access_warning(" ".join(connection.effective_scopes))
    if offline:
        warnings.append(offline)
    return warnings


def config_variable_store_tokens(
    *, config_variable: ConfigVariable, token: TokenResponse, reason: str
) -> ConfigVariable:
    """Store a token reply and mark the ConfigVariable ``connected``.

    A new ``refresh_token`` replaces the old one in the same write; none keeps the old
    one (RFC 6749 §6). ``expires_in`` seconds becomes ``expires_at`` (UTC) less
    ``OAUTH_EXPIRY_MARGIN``; no ``expires_in`` means no expiry and no renewal.
    """
    now = timezone.now()
    refresh_token, expires_in, scope = token.refresh_token, token.expires_in, token.scope
    renewable = bool(refresh_token or config_variable.refresh_token) or (
        config_variable.connection.grant_type == GrantType.CLIENT_CREDENTIALS
    )
    expires_at = refresh_at = None
    if expires_in:
        expires_at = now + timedelta(seconds=max(expires_in - settings.OAUTH_EXPIRY_MARGIN, 0))
        if renewable:
            refresh_at = renewal_time(issued_at=now, expires_in=expires_in)
    requested = " ".join(config_variable.connection.effective_scopes)
    warnings = token_warnings(
        config_variable=config_variable,
        has_refresh_token=bool(refresh_token or config_variable.refresh_token),
    )
    if not expires_in:
        warnings.append(
            "The app gave no expires_in, so the access token is treated as never expiring "
            "and is not renewed on a schedule."
        )
    if scope is not None and set(requested.split()) - set(scope.replace(",", " ").split()):
        missing = sorted(set(requested.split()) - set(scope.replace(",", " ").split()))
        warnings.append(f"The app did not grant: {' '.join(missing)}.")
    changes: dict[str, object] = {
        "access_token": token.access_token,
        "token_type": token.token_type,
        "expires_at": expires_at,
        "refresh_at": refresh_at,
        "scopes_granted": (scope.replace(",", " ") if scope is not None else requested),
        "token_extra": token.extra,
        "warnings": warnings,
        "last_error": "",
        "diagnosis": "",
        "failure_count": 0,
        "pending_code": None,
        "code_verifier": None,
        "refreshed_at": now,
    }
    if refresh_token:
        changes["refresh_token"] = refresh_token
    if config_variable.status != Status.CONNECTED:
        changes["connected_at"] = now
    return config_variable_transition(
        config_variable=config_variable, to_status=Status.CONNECTED, reason=reason, **changes
    )


def config_variable_fail(
    *,
    config_variable: ConfigVariable,
    to_status: str,
    reason: str,
    error: Exception,
    fallback_diagnosis: str,
    **changes: object,
) -> ConfigVariable:
    """Record a failed token request: ``to_status``, the error as ``last_error`` and its
    diagnosis key (``error.diagnosis``, else ``fallback_diagnosis``)."""
    return config_variable_transition(
        config_variable=config_variable,
        to_status=to_status,
        reason=f"{reason}: {error}",
        last_error=str(error),
        diagnosis=getattr(error, "diagnosis", "") or fallback_diagnosis,
        **changes,
    )


def config_variable_disconnect(*, config_variable: ConfigVariable, reason: str) -> ConfigVariable:
    """Forget the tokens and mark the ConfigVariable ``disconnected``."""
    return config_variable_transition(
        config_variable=config_variable,
        to_status=Status.DISCONNECTED,
        reason=reason,
        access_token=None,
        refresh_token=None,
        pending_code=None,
        code_verifier=None,
        expires_at=None,
        refresh_at=None,
        scopes_granted="",
        token_extra={},
        warnings=[],
    )
