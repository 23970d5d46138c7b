"""What a failed renewal becomes (RFC 6749 §6, §4.4), decided from the chain's outcome.

* grant dead (a revoked or expired refresh token): ``reauthorization_required``, no
  more attempts: the customer must reconnect;
* benign (the app says "too early") about a token that still works: tokens and status
  kept, renewal rescheduled for after the access token expires, no failure counted;
* transient (no reply, 5xx, 429), and refusals an admin can fix (a changed secret, a
  wrong URL): ``refresh_at`` moves out by exponential backoff with jitter (at least
  ``Retry-After``), and after ``RENEWAL_FAILING_AFTER`` in a row the status is
  ``failing``;
* a first client-credentials fetch that fails has nothing to keep alive: ``error``.

The rules only prepare the transition (``PreparedTransition``): the renewal writer
(``oauthflow.renewal_writer``) writes it with the batch, releasing the row's lease in
the same transaction.
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from connections.models import ConfigVariable, Status
from connections.services import PreparedTransition, transition_prepare
from oauthflow.exceptions import ProviderError
from oauthflow.outcomes import Key, Outcome


def backoff_seconds(*, failures: int, retry_after: float | None = None) -> float:
    """Seconds to wait after ``failures`` transient failures in a row: exponential from
    ``RENEWAL_BACKOFF_BASE``, capped at ``RENEWAL_BACKOFF_MAX``, with up to 25 % jitter,
    and never less than the app's ``Retry-After``."""
    delay = min(
        settings.RENEWAL_BACKOFF_BASE * 2 ** max(failures - 1, 0), settings.RENEWAL_BACKOFF_MAX
    )
    delay += random.uniform(0, delay / 4)  # noqa: S311 - spreading load, not crypto
    return max(delay, retry_after or 0)


def _failed(
    config_variable: ConfigVariable,
    exc: ProviderError,
    *,
    to_status: str,
    reason: str,
    fallback_diagnosis: str,
    **changes: object,
) -> PreparedTransition:
    """``to_status`` with the error as ``last_error`` and its diagnosis key."""
    return transition_prepare(
        config_variable=config_variable,
        to_status=to_status,
        reason=f"{reason}: {exc}",
        last_error=str(exc),
        diagnosis=exc.diagnosis or fallback_diagnosis,
        **changes,
    )


def _transient(config_variable: ConfigVariable, exc: ProviderError) -> PreparedTransition:
    failures = config_variable.failure_count + 1
    delay = backoff_seconds(failures=failures, retry_after=exc.retry_after)
    status = config_variable.status
    if failures >= settings.RENEWAL_FAILING_AFTER:
        status = Status.FAILING
    return transition_prepare(
        config_variable=config_variable,
        to_status=status,
        reason=f"Renewal failed ({failures} in a row); retrying in {delay:.0f} s: {exc}",
        failure_count=failures,
        last_error=str(exc),
        diagnosis=exc.diagnosis or Key.REJECTED,
        refresh_at=timezone.now() + timedelta(seconds=delay),
    )


def token_still_works(config_variable: ConfigVariable) -> bool:
    """Whether the access token is still within the lifetime the app gave it (our
    ``expires_at`` keeps a safety margin before that). A "too early" answer about a
    token past it is not benign: it is counted as a failure."""
    expires_at = config_variable.expires_at
    if expires_at is None:
        return bool(config_variable.access_token)
    return expires_at + timedelta(seconds=settings.OAUTH_EXPIRY_MARGIN) > timezone.now()


def _too_early(config_variable: ConfigVariable, exc: ProviderError) -> PreparedTransition:
    """The app refused to renew a token that still works: keep tokens and status,
    try again once the access token has expired, count no failure."""
    now = timezone.now()
    later = now + timedelta(seconds=settings.RENEWAL_BACKOFF_BASE)
    expires_at = config_variable.expires_at
    retry_at = max(expires_at, later) if expires_at else later
    if exc.retry_after:
        retry_at = max(retry_at, now + timedelta(seconds=exc.retry_after))
    return transition_prepare(
        config_variable=config_variable,
        to_status=config_variable.status,
        reason=f"The app said it is too early to renew; the tokens are kept and renewal "
        f"is rescheduled for {retry_at:%Y-%m-%d %H:%M:%S} UTC: {exc}",
        diagnosis=Key.TOO_EARLY,
        refresh_at=retry_at,
    )


def renewal_failure_prepare(
    config_variable: ConfigVariable, exc: ProviderError
) -> PreparedTransition:
    """What the failed renewal ``exc`` makes of ``config_variable`` (see the module
    docstring): applied to the instance, returned for the writer to save."""
    first_fetch = config_variable.status not in Status.renewable()
    if first_fetch:
        # A first client-credentials fetch has nothing to keep alive: say what failed.
        return _failed(
            config_variable,
            exc,
            to_status=Status.ERROR,
            reason="Fetching a client-credentials token failed",
            fallback_diagnosis=Key.REJECTED,
            refresh_at=None,
        )
    if exc.outcome is Outcome.GRANT_DEAD:
        return _failed(
            config_variable,
            exc,
            to_status=Status.REAUTHORIZATION_REQUIRED,
            reason="Renewal refused for good; the customer must reconnect",
            fallback_diagnosis=Key.REFRESH_TOKEN_REVOKED,
            refresh_at=None,
        )
    if exc.outcome is Outcome.BENIGN and token_still_works(config_variable):
        return _too_early(config_variable, exc)
    # Transient, or a refusal an admin can fix (a changed secret, a wrong URL): keep
    # retrying with backoff rather than making customers reconnect.
    return _transient(config_variable, exc)
