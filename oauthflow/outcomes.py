"""What a token reply means, decided once (DESIGN.md, "Outcomes, decided once").

Every reply of a token endpoint (status, headers, body) and every transport failure is
turned here, and only here, into a ``Verdict``: a diagnosis ``Key`` (what went wrong, in
the admin's words, see ``oauthflow.diagnosis``) and an ``Outcome`` (what the caller does
about it). The chain, renewal, the exchange, access, the portal, alerts and metrics read
the verdict's attributes; no other module keeps a set of error strings.

The shape follows Sentry's ``ApiError.from_response``: classify at the boundary, hand
typed results inward. Which reply means what is the data in ``oauthflow.reply_rules``
(RFC 6749 §5.2 codes and the shapes real providers send outside it).
"""

from __future__ import annotations

import email.utils
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from django.db import models


class Outcome(models.TextChoices):
    """What one token reply (or a whole chain) means for the caller."""

    SUCCEEDED = "succeeded", "Succeeded"
    NEXT_FLAVOR = "next_flavor", "Refused; the next flavor may help"
    GRANT_DEAD = "grant_dead", "Grant dead (code spent, refresh token revoked or expired)"
    TRANSIENT = "transient", "Transient (retry later)"
    BENIGN = "benign", "Benign (too early; tokens kept)"
    WRONG_ENDPOINT = "wrong_endpoint", "Wrong endpoint or App setting (no flavor helps)"

    @property
    def ends_chain(self) -> bool:
        """No other flavor can change this answer: stop after this request."""
        return self is not Outcome.NEXT_FLAVOR

    @property
    def is_failure(self) -> bool:
        """Counts as a failed request (renewal failure counters, metrics, alerts)."""
        return self not in (Outcome.SUCCEEDED, Outcome.BENIGN)

    @property
    def needs_reconnect(self) -> bool:
        """Only the customer can cure it, by connecting again."""
        return self is Outcome.GRANT_DEAD

    @property
    def retry_later(self) -> bool:
        """Trying the same request later may work without anyone changing anything."""
        return self in (Outcome.TRANSIENT, Outcome.BENIGN)

    @classmethod
    def failures(cls) -> list[Outcome]:
        """The outcomes that count as failed requests (for queries)."""
        return [outcome for outcome in cls if outcome.is_failure]


class Key(StrEnum):
    """Diagnosis keys: stored on token requests and ConfigVariables, explained by
    ``oauthflow.diagnosis.explain``. ``outcome`` is the key's usual outcome (a rule may
    decide otherwise for one grant, say a 5xx on a flavor never seen to work)."""

    OK = "ok"
    WRONG_TOKEN_URL = "wrong_token_url"
    BAD_CLIENT_CREDENTIALS = "bad_client_credentials"
    CODE_REJECTED = "code_rejected"
    REDIRECT_URI_MISMATCH = "redirect_uri_mismatch"
    NOT_A_TOKEN_ENDPOINT = "not_a_token_endpoint"
    NOT_A_TOKEN_REPLY = "not_a_token_reply"
    FORMAT_REJECTED = "format_rejected"
    ALL_FORMATS_REJECTED = "all_formats_rejected"
    SERVER_ERROR = "server_error"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    TLS_ERROR = "tls_error"
    DNS_ERROR = "dns_error"
    CONNECTION_ERROR = "connection_error"
    BLOCKED_DESTINATION = "blocked_destination"
    REVOCATION_FAILED = "revocation_failed"
    OPERATOR_RECONNECT = "operator_reconnect"
    UNAUTHORIZED_CLIENT = "unauthorized_client"
    INVALID_SCOPE = "invalid_scope"
    REFRESH_TOKEN_REVOKED = "refresh_token_revoked"
    REFRESH_TOKEN_EXPIRING = "refresh_token_expiring"
    NO_REFRESH_TOKEN = "no_refresh_token"
    TOO_EARLY = "too_early"
    ACCESS_TOKEN_REJECTED = "access_token_rejected"
    INVALID_CUSTOMER_INPUT = "invalid_customer_input"
    CONNECTION_BUSY = "connection_busy"
    STUCK_EXCHANGE = "stuck_exchange"
    REJECTED = "rejected"
    # Errors the app sends back to the callback (RFC 6749 §4.1.2.1).
    CALLBACK_ACCESS_DENIED = "callback_access_denied"
    CALLBACK_INVALID_SCOPE = "callback_invalid_scope"
    CALLBACK_UNAUTHORIZED_CLIENT = "callback_unauthorized_client"
    CALLBACK_INVALID_REQUEST = "callback_invalid_request"
    CALLBACK_SERVER_ERROR = "callback_server_error"
    CALLBACK_TEMPORARILY_UNAVAILABLE = "callback_temporarily_unavailable"
    CALLBACK_UNSUPPORTED_RESPONSE_TYPE = "callback_unsupported_response_type"
    CALLBACK_ERROR = "callback_error"

    @property
    def outcome(self) -> Outcome:
        return KEY_OUTCOMES.get(self, Outcome.NEXT_FLAVOR)

    @classmethod
    def of(cls, value: str | None) -> Key:
        """The key stored as ``value`` (unknown or blank: ``REJECTED``)."""
        try:
            return cls(value or "rejected")
        except ValueError:
            return cls.REJECTED


KEY_OUTCOMES: dict[Key, Outcome] = {
    Key.OK: Outcome.SUCCEEDED,
    Key.WRONG_TOKEN_URL: Outcome.WRONG_ENDPOINT,
    Key.CODE_REJECTED: Outcome.GRANT_DEAD,
    Key.REDIRECT_URI_MISMATCH: Outcome.WRONG_ENDPOINT,
    Key.NOT_A_TOKEN_ENDPOINT: Outcome.WRONG_ENDPOINT,
    Key.SERVER_ERROR: Outcome.TRANSIENT,
    Key.RATE_LIMITED: Outcome.TRANSIENT,
    Key.TIMEOUT: Outcome.TRANSIENT,
    Key.TLS_ERROR: Outcome.TRANSIENT,
    Key.DNS_ERROR: Outcome.TRANSIENT,
    Key.CONNECTION_ERROR: Outcome.TRANSIENT,
    Key.BLOCKED_DESTINATION: Outcome.WRONG_ENDPOINT,
    Key.OPERATOR_RECONNECT: Outcome.GRANT_DEAD,
    Key.UNAUTHORIZED_CLIENT: Outcome.WRONG_ENDPOINT,
    Key.INVALID_SCOPE: Outcome.WRONG_ENDPOINT,
    Key.REFRESH_TOKEN_REVOKED: Outcome.GRANT_DEAD,
    Key.NO_REFRESH_TOKEN: Outcome.GRANT_DEAD,
    Key.TOO_EARLY: Outcome.BENIGN,
    Key.ACCESS_TOKEN_REJECTED: Outcome.WRONG_ENDPOINT,
    Key.INVALID_CUSTOMER_INPUT: Outcome.WRONG_ENDPOINT,
    Key.CONNECTION_BUSY: Outcome.TRANSIENT,
    Key.STUCK_EXCHANGE: Outcome.TRANSIENT,
    Key.CALLBACK_SERVER_ERROR: Outcome.TRANSIENT,
    Key.CALLBACK_TEMPORARILY_UNAVAILABLE: Outcome.TRANSIENT,
    Key.CALLBACK_ACCESS_DENIED: Outcome.BENIGN,
}
TRANSPORT_KEYS = {
    "timeout": Key.TIMEOUT,
    "tls": Key.TLS_ERROR,
    "dns": Key.DNS_ERROR,
    "connection": Key.CONNECTION_ERROR,
    "blocked": Key.BLOCKED_DESTINATION,
}
CALLBACK_KEYS = {
    "access_denied": Key.CALLBACK_ACCESS_DENIED,
    "invalid_scope": Key.CALLBACK_INVALID_SCOPE,
    "unauthorized_client": Key.CALLBACK_UNAUTHORIZED_CLIENT,
    "invalid_request": Key.CALLBACK_INVALID_REQUEST,
    "server_error": Key.CALLBACK_SERVER_ERROR,
    "temporarily_unavailable": Key.CALLBACK_TEMPORARILY_UNAVAILABLE,
    "unsupported_response_type": Key.CALLBACK_UNSUPPORTED_RESPONSE_TYPE,
}
# A chain whose every flavor was refused is explained by its most telling refusal.
CHAIN_PRIORITY = (
    Key.BAD_CLIENT_CREDENTIALS,
    Key.UNAUTHORIZED_CLIENT,
    Key.NOT_A_TOKEN_ENDPOINT,
    Key.NOT_A_TOKEN_REPLY,
    Key.REJECTED,
)


@dataclass(frozen=True)
class Verdict:
    """One reply (or transport failure) classified.

    ``error`` is the provider's error code as sent (RFC 6749 §5.2 ``error``, Slack's
    ``error``, HubSpot's ``status``, Facebook's ``type:code``; "" when none), ``text``
    its description, ``retry_after`` seconds to wait (``Retry-After`` header as seconds
    or an HTTP-date, or a ``retry_after`` body field; None when the reply gave none).
    """

    key: Key
    outcome: Outcome
    error: str = ""
    text: str = ""
    status: int | None = None
    retry_after: float | None = None
    flavor: int | None = None

    @property
    def answered(self) -> bool:
        """An HTTP reply came (so a code sent may have been spent)."""
        return self.status is not None


def classify_transport(kind: str, *, flavor: int | None = None, text: str = "") -> Verdict:
    """No reply: ``kind`` is ``oauthflow.client.TransportError.kind``, ``text`` what
    failed."""
    key = TRANSPORT_KEYS.get(kind, Key.CONNECTION_ERROR)
    return Verdict(key=key, outcome=key.outcome, error=kind, text=text, flavor=flavor)


def revocation_outcome(status: int) -> Outcome:
    """A revocation reply's outcome (RFC 7009 §2.2: 200 is success; §2.2.1: 503 means
    try again later)."""
    if status == 200:
        return Outcome.SUCCEEDED
    return Outcome.TRANSIENT if status >= 500 or status == 429 else Outcome.WRONG_ENDPOINT


def classify_callback_error(error: str) -> Key:
    """The key for ``error=`` on the callback (RFC 6749 §4.1.2.1)."""
    return CALLBACK_KEYS.get(error, Key.CALLBACK_ERROR)


def retry_after_seconds(
    headers: Mapping[str, str], data: Mapping[str, Any] | None = None, *, now: float | None = None
) -> float | None:
    """Seconds to wait: the ``Retry-After`` header (RFC 9110 §10.2.3: seconds or an
    HTTP-date), else a ``retry_after`` field in the body (Discord, in seconds). None
    when the reply names no wait; never negative, capped at a day."""
    value = (headers.get("retry-after") or "").strip()
    seconds: float | None = None
    if value:
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None and when.tzinfo is not None:
                seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds is None and data:
        body_value = data.get("retry_after")
        if isinstance(body_value, int | float) and not isinstance(body_value, bool):
            seconds = float(body_value)
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), 86400.0)


@dataclass(frozen=True)
class ChainVerdict:
    """What a whole chain of refused requests concluded.

    ``verdict`` is the deciding reply (its key and outcome are the chain's); ``detail``
    says what else the attempts showed (say, an earlier ``invalid_client`` before the
    code was found spent).
    """

    verdict: Verdict
    detail: str = ""

    @property
    def key(self) -> Key:
        return self.verdict.key

    @property
    def outcome(self) -> Outcome:
        return self.verdict.outcome


def _informative(verdict: Verdict) -> bool:
    return verdict.outcome is Outcome.NEXT_FLAVOR and verdict.key not in (
        Key.FORMAT_REJECTED,
        Key.SERVER_ERROR,
    )


def conclude(verdicts: Sequence[Verdict]) -> ChainVerdict:
    """The chain's conclusion from its refused attempts, in the order sent.

    A verdict that ends the chain decides it; when an earlier flavor said something
    telling (``invalid_client`` on flavor 1, then ``invalid_grant`` on flavor 2: the
    first request spent the code), that is kept in ``detail``. When every flavor was
    refused: all 5xx is ``SERVER_ERROR`` (transient); all unreadable formats is
    ``ALL_FORMATS_REJECTED``; else the most telling refusal (``CHAIN_PRIORITY``, then
    the most frequent), its outcome ``NEXT_FLAVOR``: no flavor worked.
    """
    if not verdicts:
        return ChainVerdict(Verdict(key=Key.REJECTED, outcome=Outcome.NEXT_FLAVOR))
    last = verdicts[-1]
    earlier = [v for v in verdicts[:-1] if _informative(v)]
    if last.outcome.ends_chain:
        detail = ""
        if earlier and last.outcome is Outcome.GRANT_DEAD:
            first = earlier[0]
            said = f"{first.error}: {first.text}" if first.text else first.error or first.key
            detail = (
                f"Flavor #{first.flavor} was refused first ({said[:300]}), and that request "
                "consumed the code; fix that, then reconnect."
            )
        return ChainVerdict(last, detail)
    if all(v.key is Key.SERVER_ERROR for v in verdicts):
        return ChainVerdict(replace(last, outcome=Outcome.TRANSIENT))
    meaningful = [v for v in verdicts if _informative(v)]
    if not meaningful:
        first = verdicts[0]
        return ChainVerdict(replace(first, key=Key.ALL_FORMATS_REJECTED, retry_after=None))
    counts = Counter(v.key for v in meaningful)
    for key in CHAIN_PRIORITY:
        if key in counts:
            return ChainVerdict(next(v for v in meaningful if v.key is key))
    top = counts.most_common(1)[0][0]
    return ChainVerdict(next(v for v in meaningful if v.key is top))
