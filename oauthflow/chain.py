"""The flavor chain: one token request per flavor until one returns an access token.

The same code serves the code exchange (RFC 6749 §4.1.3), refresh (§6) and client
credentials (§4.4.2); they differ only in the grant's fields. Every attempt is written
to the token-request log, redacted and diagnosed. Better than trying six flavors blindly:

* the App's ``pinned_flavor`` is the only one tried when set;
* the flavor that last worked (``preferred_flavor``) goes first, so a healthy App
  costs one request per exchange;
* replies no flavor can fix end the chain at once: ``invalid_grant`` (the code or
  refresh token is expired, used or revoked), a redirect-URI mismatch, a 429, or no
  reply at all (DNS, TLS, connection, timeout).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from functools import lru_cache

from connections.models import App, ConfigVariable
from oauthflow import client
from oauthflow.client import HttpReply, TransportError
from oauthflow.diagnosis import Attempt, classify_attempt, classify_chain
from oauthflow.exceptions import ProviderError, ProviderUnavailable
from oauthflow.flavors import Flavor, build_token_request, flavor_order
from oauthflow.models import Outcome, TokenRequest
from oauthflow.redaction import (
    REDACTED,
    redact_body,
    redact_fields,
    redact_headers,
    redact_text,
    storable,
)
from oauthflow.tokens import TokenResponse, decode_body, parse_token_response

logger = logging.getLogger(__name__)

KEPT_RESPONSE_HEADERS = ("content-type", "retry-after", "www-authenticate", "location")
CHAIN_ENDING_KEYS = frozenset({"code_rejected", "refresh_token_revoked", "redirect_uri_mismatch"})


@dataclass(frozen=True)
class ChainResult:
    """The tokens and the flavor that produced them; ``attempts`` requests were sent."""

    token: TokenResponse
    flavor: Flavor
    attempts: int
    chain_id: uuid.UUID


def _retry_after(reply: HttpReply) -> float | None:
    value = reply.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


@lru_cache(maxsize=512)
def _redacted_body(flavor: Flavor, client_id: str, fields: tuple[tuple[str, str], ...]) -> str:
    """The request body re-encoded with secrets masked: the stored body has the sent
    shape, not the values. Cached: every renewal of an App logs the same one."""
    redacted = build_token_request(
        flavor, client_id=client_id, client_secret=REDACTED, fields=dict(fields)
    )
    return redacted.body.decode()


@dataclass
class _ChainRun:
    """One run's shared context: records each attempt, redacted, with its diagnosis."""

    app: App
    config_variable: ConfigVariable | None
    kind: str
    fields: dict[str, str]
    chain_id: uuid.UUID
    sink: list[TokenRequest] | None = None  # collect unsaved, for one bulk INSERT

    @property
    def secrets(self) -> tuple[str | None, ...]:
        names = ("code", "code_verifier", "refresh_token")
        return (self.app.client_secret, *(self.fields.get(name) for name in names))

    def record(
        self,
        *,
        flavor: Flavor,
        headers: dict[str, str],
        reply: HttpReply | None,
        duration_ms: int,
        outcome: str,
        error: str = "",
        message: str = "",
    ) -> Attempt:
        excerpt = redact_body(reply.body, self.secrets) if reply else ""
        message = redact_text(message, self.secrets)
        attempt = Attempt(
            flavor=flavor.number,
            status=reply.status if reply else None,
            error=error,
            outcome=outcome,
            content_type=reply.content_type if reply else "",
            text=f"{message} {excerpt}",
        )
        redacted_fields = tuple(redact_fields(self.fields).items())
        record = TokenRequest(
            chain_id=self.chain_id,
            app=self.app,
            config_variable=self.config_variable,
            kind=self.kind,
            flavor=flavor.number,
            url=self.app.token_url,
            request_headers=redact_headers(headers),
            request_body=_redacted_body(flavor, self.app.client_id, redacted_fields),
            status_code=attempt.status,
            response_headers={
                name: reply.headers[name]
                for name in KEPT_RESPONSE_HEADERS
                if reply and name in reply.headers
            },
            response_excerpt=excerpt,
            duration_ms=duration_ms,
            outcome=outcome,
            error=storable(error)[:200],
            message=message[:2000],
            diagnosis=classify_attempt(attempt, kind=self.kind),
        )
        if self.sink is None:
            record.save()
        else:
            self.sink.append(record)
        return attempt


def flavor_remember(*, app: App, flavor: Flavor) -> None:
    """Make ``flavor`` the App's preferred flavor, tried first next time (one UPDATE,
    none when the App pins a flavor or already prefers this one)."""
    if app.pinned_flavor is None and app.preferred_flavor != flavor.number:
        App.objects.filter(pk=app.pk).update(preferred_flavor=flavor.number)
        app.preferred_flavor = flavor.number


def run_token_chain(
    *,
    app: App,
    fields: dict[str, str],
    kind: str,
    config_variable: ConfigVariable | None = None,
    records: list[TokenRequest] | None = None,
) -> ChainResult:
    """Send the grant ``fields`` to ``app.token_url`` flavor by flavor (guide flavors 1-6).

    Each attempt is logged as a ``TokenRequest``: saved at once, or, when ``records``
    is given, appended to it unsaved. With ``records`` the chain makes no query at all,
    so it may run on any thread: the caller saves the records (``bulk_create``) and
    calls ``flavor_remember`` with the result's flavor (batch renewal).

    Returns the first reply carrying an ``access_token``. Raises ``ProviderUnavailable``
    when the failures were transient (no reply, 5xx, 429 with ``retry_after`` seconds),
    else ``ProviderError``; both carry the RFC 6749 §5.2 ``error`` and a ``diagnosis``
    key (``oauthflow.diagnosis``).
    """
    run = _ChainRun(app, config_variable, kind, fields, uuid.uuid4(), records)
    attempts: list[Attempt] = []
    failures: list[ProviderError] = []
    order = flavor_order(preferred=app.preferred_flavor, pinned=app.pinned_flavor)
    for number, flavor in enumerate(order, start=1):
        spec = build_token_request(
            flavor, client_id=app.client_id, client_secret=app.client_secret or "", fields=fields
        )
        headers = {**(app.extra_token_headers or {}), **spec.headers}
        logger.info(
            "oauthflow.token_request.attempt app=%s kind=%s flavor=%s",
            app.slug,
            kind,
            flavor.number,
            extra={"app": app.slug, "kind": kind, "flavor": flavor.number},
        )
        try:
            reply = client.post(app.token_url, headers=headers, body=spec.body)
        except TransportError as exc:
            attempt = run.record(
                flavor=flavor,
                headers=headers,
                reply=None,
                duration_ms=exc.duration_ms,
                outcome=Outcome.TRANSPORT_ERROR,
                error=exc.kind,
                message=str(exc),
            )
            exc.diagnosis = classify_attempt(attempt, kind=kind)
            raise
        try:
            token = parse_token_response(reply, url=app.token_url)
        except ProviderError as exc:
            # The app's error text may echo what we sent; it travels on into statuses,
            # transition reasons and alerts, so it is redacted here, where secrets are known.
            exc.args = (redact_text(str(exc), run.secrets),)
            readable = decode_body(reply) is not None
            attempt = run.record(
                flavor=flavor,
                headers=headers,
                reply=reply,
                duration_ms=reply.duration_ms,
                outcome=Outcome.REJECTED if readable else Outcome.NOT_A_TOKEN_REPLY,
                error=exc.error,
                message=str(exc),
            )
            attempts.append(attempt)
            key = classify_attempt(attempt, kind=kind)
            if reply.status == 429:
                raise ProviderUnavailable(
                    str(exc),
                    url=app.token_url,
                    status=429,
                    error=exc.error,
                    retry_after=_retry_after(reply),
                    diagnosis=key,
                ) from exc
            if reply.status >= 500 and flavor.number == app.preferred_flavor:
                # The flavor that works for this App failed server-side: a transient
                # outage, which other flavors cannot fix (they would only add load).
                raise ProviderUnavailable(
                    str(exc), url=app.token_url, status=reply.status, diagnosis=key
                ) from exc
            if key in CHAIN_ENDING_KEYS:
                exc.diagnosis = key
                exc.args = (f"{exc} No flavor can fix this, so the chain stopped.",)
                raise
            failures.append(exc)
            continue
        run.record(
            flavor=flavor,
            headers=headers,
            reply=reply,
            duration_ms=reply.duration_ms,
            outcome=Outcome.SUCCESS,
        )
        if records is None:
            flavor_remember(app=app, flavor=flavor)
        return ChainResult(token=token, flavor=flavor, attempts=number, chain_id=run.chain_id)

    key = classify_chain(attempts, kind=kind)
    summary = "; ".join(f"#{f.number}: {e}" for f, e in zip(order, failures, strict=True))
    message = f"No flavor returned an access token ({len(failures)} attempts). {summary}"
    if key == "server_error":
        raise ProviderUnavailable(
            message, url=app.token_url, status=failures[-1].status, diagnosis=key
        )
    # The most telling RFC error: the one behind the chain's diagnosis.
    error = next(
        (
            e.error
            for e, a in zip(failures, attempts, strict=True)
            if e.error and classify_attempt(a, kind=kind) == key
        ),
        next((e.error for e in failures if e.error), ""),
    )
    raise ProviderError(
        message, url=app.token_url, status=failures[0].status, error=error, diagnosis=key
    )
