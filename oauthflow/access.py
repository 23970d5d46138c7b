"""Tokens on demand: a valid access token for an integration, renewed first if needed.

Renewal runs through the one renewal service under the same lease as the sweep's, so a
caller that arrives while a renewal is in flight waits for its result instead of
spending the refresh token again. It waits for the lease holder's signal
(``oauthflow.renewal_signals``), reading the database again at least every
``FALLBACK_SECONDS`` in case the signal was lost."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from connections.fingerprints import fingerprint
from connections.models import ConfigVariable, Status
from connections.services import config_variable_transition
from oauthflow.exceptions import ProviderError, ProviderUnavailable, ReauthorizationRequired
from oauthflow.lease import lease_held
from oauthflow.outcomes import Key, Outcome
from oauthflow.renewal import config_variables_renew
from oauthflow.renewal_failures import token_still_works
from oauthflow.renewal_signals import FALLBACK_SECONDS, Listener, renewal_listen
from oauthflow.tokens import bearer_type


@dataclass(frozen=True)
class AccessToken:
    """A usable access token: ``expires_at`` is UTC (None: no expiry given);
    ``token_type`` is ``Bearer`` for any spelling of bearer (``tokens.bearer_type``)."""

    access_token: str
    token_type: str
    expires_at: datetime | None
    scopes: str
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


def token_metadata(config_variable: ConfigVariable) -> dict[str, dict[str, Any]]:
    """What an integration needs beside the token, never a secret: the customer's
    inputs (``inputs``), values the app sent on the callback (``callback``, e.g.
    QuickBooks' ``realmId``) and reply metadata (``reply``, e.g. Salesforce's
    ``instance_url``; only the App's ``reply_metadata`` fields when it names some)."""
    keep = config_variable.connection.app.reply_metadata or []
    extra = config_variable.token_extra or {}
    reply = {name: extra[name] for name in keep if name in extra} if keep else dict(extra)
    return {
        "inputs": dict(config_variable.customer_inputs or {}),
        "callback": dict(config_variable.callback_metadata or {}),
        "reply": reply,
    }


def effective_min_valid(config_variable: ConfigVariable, min_valid_seconds: float) -> float:
    """``min_valid_seconds``, but at most half the token's stored lifetime: an app whose
    tokens live 60 s can never give one valid for 60 s more, and asking anew on every
    call would only spend refresh tokens."""
    if config_variable.expires_at and config_variable.refreshed_at:
        lifetime = (config_variable.expires_at - config_variable.refreshed_at).total_seconds()
        return min(min_valid_seconds, max(lifetime, 0) / 2)
    return min_valid_seconds


def _usable(config_variable: ConfigVariable, min_valid_seconds: float) -> bool:
    expires_in = config_variable.expires_in
    return bool(config_variable.access_token) and (
        expires_in is None or expires_in >= effective_min_valid(config_variable, min_valid_seconds)
    )


def _token(config_variable: ConfigVariable) -> AccessToken:
    """The stored token as served. Raises ``ReauthorizationRequired`` for a row that
    holds none (only a Connect gives one)."""
    if not config_variable.access_token:
        raise ReauthorizationRequired(
            "The connection holds no access token; the customer must connect it again.",
            diagnosis=config_variable.diagnosis,
        )
    return AccessToken(
        access_token=config_variable.access_token,
        token_type=bearer_type(config_variable.token_type),
        expires_at=config_variable.expires_at,
        scopes=config_variable.scopes_granted,
        metadata=token_metadata(config_variable),
    )


def _connected(config_variable_id: uuid.UUID | str) -> ConfigVariable:
    """The ConfigVariable, if its tokens work; raises ``ReauthorizationRequired`` (with
    the recorded diagnosis) when it is not connected, ``DoesNotExist`` when absent."""
    config_variable = ConfigVariable.objects.select_related("connection__app").get(
        pk=config_variable_id
    )
    if config_variable.status not in Status.renewable():
        raise ReauthorizationRequired(
            f"The connection is not connected ({config_variable.status}); the customer "
            "must connect it first.",
            diagnosis=config_variable.diagnosis,
        )
    return config_variable


def _backoff_left(config_variable: ConfigVariable) -> float:
    """Seconds until a failed renewal may be tried again (0: no backoff in force)."""
    if not config_variable.failure_count or config_variable.refresh_at is None:
        return 0.0
    return max((config_variable.refresh_at - timezone.now()).total_seconds(), 0.0)


def _held_as_too_early(config_variable: ConfigVariable) -> bool:
    """The app said its token is still good and renewal waits for ``refresh_at``: the
    token is served as it is (asking again would get the same answer)."""
    return (
        Key.of(config_variable.diagnosis).outcome is Outcome.BENIGN
        and token_still_works(config_variable)
        and config_variable.refresh_at is not None
        and config_variable.refresh_at > timezone.now()
    )


def get_access_token(
    *,
    config_variable_id: uuid.UUID | str,
    min_valid_seconds: float = 60,
    wait_seconds: float = 30,
) -> AccessToken:
    """A token valid for at least ``min_valid_seconds``, renewing first if needed.

    Raises ``ConfigVariable.DoesNotExist``; ``ReauthorizationRequired`` when the
    connection is not connected or its renewal was refused for good;
    ``ProviderUnavailable`` (with ``retry_after`` seconds while a failed renewal backs
    off) when renewal failed for now or another worker's renewal did not finish within
    ``wait_seconds``. A token that has not expired yet is returned during a backoff.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        config_variable = _connected(config_variable_id)
        if _usable(config_variable, min_valid_seconds) or _held_as_too_early(config_variable):
            return _token(config_variable)
        backoff = _backoff_left(config_variable)
        if backoff:
            # A renewal just failed and waits out its backoff (and any Retry-After):
            # callers must not hammer the app. Serve the old token while it still works.
            if config_variable.access_token and not config_variable.is_expired:
                return _token(config_variable)
            raise ProviderUnavailable(
                f"Renewal is backing off after a failure: {config_variable.last_error}",
                diagnosis=config_variable.diagnosis,
                retry_after=backoff,
            )
        outcome = config_variables_renew(
            config_variable_ids=[config_variable_id],
            if_expiring_within=effective_min_valid(config_variable, min_valid_seconds),
        )
        if outcome.leased_elsewhere:  # another worker is renewing: wait for its result
            _wait_for_holder(config_variable_id, deadline)
            continue
        renewed = outcome.row(config_variable_id)
        if renewed is not None and renewed.failure_count == 0 and renewed.access_token:
            return _token(renewed)  # just renewed (or "too early"): as fresh as the app gives
        if renewed is not None and not _usable(renewed, min_valid_seconds):
            if renewed.status not in Status.renewable():
                continue  # raises above with the recorded reason
            raise ProviderUnavailable(
                f"Renewal failed for now: {renewed.last_error}", diagnosis=renewed.diagnosis
            )
        # None: renewed by another worker between our read and our claim; read again.


class AccessTokenRejected(ProviderError):
    """An integration reported that the app rejects a token the portal had just renewed
    because of an earlier report: renewing again would loop, so it is reported."""

    default_outcome = Outcome.WRONG_ENDPOINT


def report_rejected_token(
    *, config_variable_id: uuid.UUID | str, token_fingerprint: str, wait_seconds: float = 30
) -> AccessToken:
    """An integration got HTTP 401 with the token whose ``fingerprint`` is
    ``token_fingerprint`` although the portal believes it valid: renew once, by force,
    and return the new token.

    Concurrent reports of the same token cause one renewal (the lease, then a re-check
    that the token is still the reported one). A report naming a token that was already
    replaced gets the current token without a renewal. A report naming the token that a
    report renewal produced is a second rejection: recorded (diagnosis
    ``access_token_rejected``) and raised as ``AccessTokenRejected``, never renewed in a
    loop. Raises as ``get_access_token`` does otherwise.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        config_variable = _connected(config_variable_id)
        current = fingerprint(config_variable.access_token)
        if current != token_fingerprint:
            return get_access_token(config_variable_id=config_variable_id)
        backoff = _backoff_left(config_variable)
        if backoff:
            # A renewal failed just now (maybe this report's): the app must not be hammered.
            raise ProviderUnavailable(
                f"Renewal is backing off after a failure: {config_variable.last_error}",
                diagnosis=config_variable.diagnosis,
                retry_after=backoff,
            )
        if config_variable.forced_renewal_fingerprint == current:
            _record_second_rejection(config_variable)
            raise AccessTokenRejected(
                "The app rejected a token renewed (or kept) after an earlier rejection; not "
                "renewing again. Check the connection's scopes and the app-side permissions.",
                diagnosis=Key.ACCESS_TOKEN_REJECTED,
            )
        outcome = config_variables_renew(config_variable_ids=[config_variable_id], if_token=current)
        if outcome.leased_elsewhere:  # another caller's renewal holds the lease
            _wait_for_holder(config_variable_id, deadline)
            continue
        renewed = outcome.row(config_variable_id)
        if renewed is not None:
            # One forced renewal per token: whatever it gave is the token a further
            # report of the same fingerprint may not renew again.
            ConfigVariable.objects.filter(pk=renewed.pk).update(
                forced_renewal_fingerprint=fingerprint(renewed.access_token)
            )
            if renewed.failure_count or fingerprint(renewed.access_token) == current:
                raise ProviderUnavailable(
                    f"The forced renewal did not give a new token: {renewed.last_error}",
                    diagnosis=renewed.diagnosis,
                    retry_after=_backoff_left(renewed) or None,
                )
            return _token(renewed)


def _wait_for_holder(config_variable_id: uuid.UUID | str, deadline: float) -> None:
    """Another worker holds the row's lease: wait for its signal. Only a contended caller
    listens (a subscription is a broker connection); it listens first and then checks the
    lease again, so a release between the claim and the subscription is not missed."""
    with renewal_listen(config_variable_id=config_variable_id) as listener:
        if lease_held(config_variable_id=config_variable_id):
            _wait(listener, deadline)


def _wait(listener: Listener, deadline: float) -> None:
    """Wait for the lease holder's signal, at most ``FALLBACK_SECONDS`` (then the
    caller reads the database again); raises ``ProviderUnavailable`` once ``deadline``
    (``time.monotonic()``) has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise ProviderUnavailable("A renewal in progress did not finish in time.")
    listener.wait(min(left, FALLBACK_SECONDS))


def _record_second_rejection(config_variable: ConfigVariable) -> None:
    if config_variable.diagnosis == Key.ACCESS_TOKEN_REJECTED:
        return  # already recorded for this token
    config_variable_transition(
        config_variable=config_variable,
        to_status=Status.FAILING,
        reason="An integration reported the app rejecting the token renewed after its "
        "earlier report (HTTP 401 twice); not renewing in a loop.",
        diagnosis=Key.ACCESS_TOKEN_REJECTED,
        last_error="The app rejects freshly renewed access tokens (reported by an integration).",
    )
