"""Services that change ConfigVariables: status transitions, storing tokens, disconnecting.

Plain functions with keyword-only arguments; views, admin actions and tasks call them.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from connections.fields import column_of
from connections.models import (
    ConfigVariable,
    Connection,
    Customer,
    GrantType,
    Status,
    StatusTransition,
)
from connections.notifications import notify_transition
from oauthflow import inputs
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


def config_variable_set_inputs(
    *, config_variable: ConfigVariable, values: Mapping[str, object]
) -> ConfigVariable:
    """Check the customer's inputs against the App (``oauthflow.inputs.validate``) and
    keep them on the ConfigVariable; renewals use the same values. Raises
    ``InvalidCustomerInput`` (nothing is saved)."""
    cleaned = inputs.validate(config_variable.connection.app, values)
    if cleaned != config_variable.customer_inputs:
        config_variable.customer_inputs = cleaned
        config_variable.save(update_fields=["customer_inputs", "updated_at"])
    return config_variable


@dataclass(frozen=True)
class PreparedTransition:
    """A transition applied to an instance but not yet written: the columns to save
    and the unsaved ``StatusTransition`` recording it."""

    config_variable: ConfigVariable
    from_status: str
    fields: tuple[str, ...]
    record: StatusTransition


def transition_prepare(
    *, config_variable: ConfigVariable, to_status: str, reason: str, **changes: object
) -> PreparedTransition:
    """Set ``to_status`` and ``changes`` on the instance (no query) and return what to
    write. Pure but for the instance, so a failed write can be retried as it is."""
    from_status = config_variable.status
    if to_status == Status.FAILING and from_status != Status.FAILING:
        changes.setdefault("failing_since", timezone.now())
    elif to_status != Status.FAILING and config_variable.failing_since is not None:
        changes.setdefault("failing_since", None)
    config_variable.status = to_status
    changed = []
    deferred = config_variable.get_deferred_fields()  # unknown values: always written
    for name, value in changes.items():
        # Text from apps (error descriptions) may hold NULs, which PostgreSQL refuses.
        value = storable(value) if isinstance(value, str) else value
        if name in deferred or getattr(config_variable, name) != value:
            setattr(config_variable, name, value)
            changed.append(name)  # only what changes is written: less to encrypt and send
    record = StatusTransition(
        config_variable=config_variable,
        from_status=from_status,
        to_status=to_status,
        reason=storable(reason)[:2000],
    )
    return PreparedTransition(
        config_variable, from_status, ("status", "updated_at", *changed), record
    )


def transition_announce(prepared: PreparedTransition) -> None:
    """After the write: alert or resolve (``connections.notifications``) and log."""
    config_variable = prepared.config_variable
    from_status, to_status = prepared.from_status, config_variable.status
    notify_transition(
        config_variable=config_variable, from_status=from_status, reason=prepared.record.reason
    )
    logger.info(
        "connections.config_variable.transition %s %s -> %s",
        config_variable.pk,
        from_status,
        to_status,
        extra={"config_variable": str(config_variable.pk), "from": from_status, "to": to_status},
    )


def config_variable_transition(
    *, config_variable: ConfigVariable, to_status: str, reason: str, **changes: object
) -> ConfigVariable:
    """Set ``to_status`` (and any other ``changes``) and record the transition's reason."""
    prepared = transition_prepare(
        config_variable=config_variable, to_status=to_status, reason=reason, **changes
    )
    with transaction.atomic():
        # Only the fields changed here: a concurrent lease holder's columns stay intact.
        config_variable.save(update_fields=prepared.fields)
        prepared.record.save()
    transition_announce(prepared)
    return config_variable


def _update_rows(prepared: Sequence[PreparedTransition]) -> None:
    """One parameterised UPDATE per row, sent with ``executemany`` (psycopg pipelines
    it: one round trip for the lot). Values go through each field's
    ``get_db_prep_save``, so secrets are encrypted and ``auto_now`` applies as in
    ``save()``; Django's ``bulk_update`` would build a CASE WHEN per row and column,
    which costs more than the renewals it writes."""
    meta = ConfigVariable._meta
    concrete = {field.name: field for field in meta.concrete_fields}
    pk = concrete[meta.pk.name]
    quote = db_connection.ops.quote_name
    groups: dict[tuple[str, ...], list[ConfigVariable]] = defaultdict(list)
    for item in prepared:
        groups[tuple(sorted(set(item.fields)))].append(item.config_variable)
    for names, rows in groups.items():
        fields = [concrete[name] for name in names]
        assignments = ", ".join(f"{quote(column_of(field))} = %s" for field in fields)
        sql = (
            f"UPDATE {quote(meta.db_table)} SET {assignments} "  # noqa: S608 - names from _meta
            f"WHERE {quote(column_of(pk))} = %s"
        )
        params = [
            [field.get_db_prep_save(field.pre_save(row, False), db_connection) for field in fields]
            + [pk.get_db_prep_value(row.pk, db_connection)]
            for row in rows
        ]
        with db_connection.cursor() as cursor:
            cursor.executemany(sql, params)


def transitions_save(prepared: Sequence[PreparedTransition]) -> None:
    """Write prepared transitions in one transaction (one commit for them all): each
    row's changed columns (``_update_rows``), then one INSERT of their records. Safe to
    retry after a ``DatabaseError``: the instances already hold the values to write."""
    if not prepared:
        return
    with transaction.atomic():
        _update_rows(prepared)
        StatusTransition.objects.bulk_create([item.record for item in prepared])


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


# Identity scopes of OpenID Connect: servers (Microsoft among them) never echo them in
# a reply's ``scope``, so their absence there says nothing.
UNECHOED_SCOPES = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})


def token_warnings(
    *, config_variable: ConfigVariable, has_refresh_token: bool, granted: str | None = None
) -> list[str]:
    """Warnings a customer's admin should see about keeping this connection alive:
    no refresh token (with the App's actual offline strategy), scopes saved without
    offline access, and scopes the app says it did not grant (``granted``, as the reply
    said; None: as requested)."""
    connection = config_variable.connection
    app = connection.app
    warnings: list[str] = []
    if connection.grant_type != GrantType.CLIENT_CREDENTIALS and not has_refresh_token:
        diagnosis = explain("no_refresh_token", app=app)
        warnings.append(f"{diagnosis.message} {diagnosis.fix}")
        offline = app.offline_access_warning(" ".join(connection.effective_scopes))
        if offline:
            warnings.append(offline)
    if granted is not None:
        requested = set(connection.effective_scopes)
        missing = sorted(requested - set(granted.split()) - UNECHOED_SCOPES)
        if missing:
            warnings.append(f"The app did not grant: {' '.join(missing)}.")
    return warnings


def expiry_margin(lifetime: int) -> int:
    """``OAUTH_EXPIRY_MARGIN`` seconds, but never more than a quarter of a token's
    ``lifetime``: a 30 s token must not be stored as already expired."""
    return min(settings.OAUTH_EXPIRY_MARGIN, lifetime // 4)


def _refresh_token_expiry(
    config_variable: ConfigVariable, token: TokenResponse, issued_at: datetime
) -> datetime | None:
    """When the refresh token in force lapses (UTC): the reply's lifetime for a new one;
    the old expiry when the reply kept the old refresh token."""
    if token.refresh_token_expires_in:
        return issued_at + timedelta(seconds=token.refresh_token_expires_in)
    if token.refresh_token and token.refresh_token != config_variable.refresh_token:
        return None  # a new refresh token whose lifetime the app did not say
    return config_variable.refresh_token_expires_at


def _schedule(
    *,
    token: TokenResponse,
    issued_at: datetime,
    renewable: bool,
    refresh_expiry: datetime | None,
    renewed: bool,
) -> tuple[datetime | None, datetime | None]:
    """``(expires_at, refresh_at)`` for a token issued at ``issued_at`` (UTC).

    ``expires_in`` 0 with something to renew with means already expired: renew at once;
    a renewal (``renewed``) answered 0 again means the app says 0 for "unknown", which
    is then treated as no lifetime, not renewed in a loop. Renewable connections renew
    at least every ``RENEWAL_MAX_IDLE`` seconds (many apps expire refresh tokens that
    sit unused) and before a known refresh-token expiry."""
    expires_in = token.expires_in
    if expires_in == 0 and renewed:
        expires_in = None
    expires_at = refresh_at = None
    if expires_in is not None:
        expires_at = issued_at + timedelta(seconds=expires_in - expiry_margin(expires_in))
        if renewable:
            refresh_at = (
                issued_at
                if expires_in == 0
                else renewal_time(issued_at=issued_at, expires_in=expires_in)
            )
    if renewable:
        latest = issued_at + timedelta(seconds=settings.RENEWAL_MAX_IDLE)
        lifetime = token.refresh_token_expires_in
        if refresh_expiry is not None and lifetime:
            # A refresh token just issued with a lifetime: renew before it lapses (apps
            # that rotate then issue a fresh one). A kept one is not chased: renewing
            # cannot extend it, and the sweep warns before it lapses.
            latest = min(latest, refresh_expiry - timedelta(seconds=lifetime / 10))
        refresh_at = min(refresh_at, latest) if refresh_at else latest
    return expires_at, refresh_at


def token_changes(
    *, config_variable: ConfigVariable, token: TokenResponse, now: datetime, exchange: bool = False
) -> dict[str, object]:
    """The column values that store the token reply ``token``, whose request was sent at
    ``now`` (UTC): lifetimes count from the moment the request left.

    A new ``refresh_token`` replaces the old one in the same write; none keeps the old
    one (RFC 6749 §6), and a reply repeating the same tokens is a valid no-op renewal.
    ``expires_in`` seconds becomes ``expires_at`` (UTC) less a safety margin
    (``expiry_margin``), and ``refresh_at`` comes from ``_schedule``; no ``expires_in``
    means the access token does not expire. Only an ``exchange`` ends the in-flight
    authorization (code, PKCE verifier, redirect URI): a renewal leaves a Reconnect the
    customer has started untouched. No query.
    """
    refresh_token, scope = token.refresh_token, token.scope
    has_refresh = bool(refresh_token or config_variable.refresh_token)
    renewable = has_refresh or config_variable.connection.grant_type == GrantType.CLIENT_CREDENTIALS
    refresh_expiry = _refresh_token_expiry(config_variable, token, now) if has_refresh else None
    expires_at, refresh_at = _schedule(
        token=token,
        issued_at=now,
        renewable=renewable,
        refresh_expiry=refresh_expiry,
        renewed=not exchange and config_variable.status in Status.renewable(),
    )
    granted = scope.replace(",", " ") if scope is not None else None
    warnings = token_warnings(
        config_variable=config_variable, has_refresh_token=has_refresh, granted=granted
    )
    if token.expires_in is None:
        warnings.append(
            "The app gave no expires_in, so the access token is treated as never expiring"
            + (
                f"; it is still renewed every {settings.RENEWAL_MAX_IDLE // 3600} h to keep "
                "the refresh token in use."
                if has_refresh
                else " and is not renewed on a schedule."
            )
        )
    changes: dict[str, object] = {
        "access_token": token.access_token,
        "token_type": token.token_type,
        "expires_at": expires_at,
        "refresh_at": refresh_at,
        "refresh_token_expires_at": refresh_expiry,
        "scopes_granted": granted
        if granted is not None
        else " ".join(config_variable.connection.effective_scopes),
        "token_extra": token.extra,
        "warnings": warnings,
        "last_error": "",
        "diagnosis": "",
        "failure_count": 0,
        "refreshed_at": now,
    }
    if exchange:
        changes.update(pending_code=None, code_verifier=None, flow_redirect_uri="")
    if refresh_token:
        changes["refresh_token"] = refresh_token
    if config_variable.status != Status.CONNECTED:
        changes["connected_at"] = now
    return changes


def config_variable_store_tokens(
    *,
    config_variable: ConfigVariable,
    token: TokenResponse,
    reason: str,
    issued_at: datetime | None = None,
    exchange: bool = False,
) -> ConfigVariable:
    """Store a token reply (``token_changes``; ``issued_at`` is when its request was
    sent, UTC, default now; ``exchange`` for a code exchange) and mark the
    ConfigVariable ``connected``."""
    changes = token_changes(
        config_variable=config_variable,
        token=token,
        now=issued_at or timezone.now(),
        exchange=exchange,
    )
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


def config_variable_fetch_start(*, config_variable: ConfigVariable) -> ConfigVariable:
    """Mark a client-credentials ConfigVariable ``exchanging``: the customer pressed
    Connect and its first token fetch (RFC 6749 §4.4) is about to be queued."""
    return config_variable_transition(
        config_variable=config_variable,
        to_status=Status.EXCHANGING,
        reason="The customer pressed Connect; fetching a client-credentials token.",
    )


def config_variables_mark_for_reconnection(
    *, config_variables: QuerySet[ConfigVariable], actor: str
) -> int:
    """Move each ConfigVariable (but disconnected ones, left out by the query) to
    ``reauthorization_required``, so its customer sees Reconnect, and stop its renewals;
    ``actor`` (an operator's name) goes in the recorded reason. Returns how many were
    marked."""
    marked = 0
    for config_variable in config_variables.exclude(status=Status.DISCONNECTED):
        config_variable_transition(
            config_variable=config_variable,
            to_status=Status.REAUTHORIZATION_REQUIRED,
            reason=f"Marked for reconnection by {actor} in the admin.",
            diagnosis="operator_reconnect",
            refresh_at=None,
        )
        marked += 1
    return marked


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
        refresh_token_expires_at=None,
        scopes_granted="",
        token_extra={},
        warnings=[],
    )
