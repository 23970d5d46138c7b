"""The flavor chain: one token request per flavor until one returns an access token.

The same code serves the code exchange (RFC 6749 §4.1.3), refresh (§6) and client
credentials (§4.4.2); they differ only in the grant's fields. Every attempt is written
to the token-request log, redacted. Better than trying six flavors blindly:

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
from collections import Counter
from dataclasses import dataclass

from connections.models import App, ConfigVariable
from oauthflow import client
from oauthflow.client import HttpReply, TransportError
from oauthflow.exceptions import ProviderError, ProviderUnavailable
from oauthflow.flavors import Flavor, build_token_request, flavor_order
from oauthflow.models import Outcome, TokenRequest
from oauthflow.redaction import REDACTED, redact_body, redact_fields, redact_headers, redact_text
from oauthflow.tokens import TokenResponse, decode_body, parse_token_response

logger = logging.getLogger(__name__)

KEPT_RESPONSE_HEADERS = ("content-type", "retry-after", "www-authenticate", "location")
CHAIN_ENDING_ERRORS = frozenset({"invalid_grant"})
# What an app answers a body it cannot read (say JSON to a form-only endpoint).
FORMAT_ERRORS = frozenset({"unsupported_grant_type", "invalid_request"})


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


def _mentions_redirect_uri(exc: ProviderError) -> bool:
    return "redirect" in str(exc).lower() and exc.error in ("invalid_grant", "invalid_request")


def _record(
    *,
    chain_id: uuid.UUID,
    app: App,
    config_variable: ConfigVariable | None,
    kind: str,
    flavor: Flavor,
    headers: dict[str, str],
    fields: dict[str, str],
    secrets: tuple[str | None, ...],
    reply: HttpReply | None,
    duration_ms: int,
    outcome: str,
    error: str = "",
    message: str = "",
) -> None:
    # Re-encode with secrets masked, so the stored body has the sent shape, not the values.
    redacted = build_token_request(
        flavor, client_id=app.client_id, client_secret=REDACTED, fields=redact_fields(fields)
    )
    kept_headers = {}
    if reply:
        kept_headers = {
            name: reply.headers[name] for name in KEPT_RESPONSE_HEADERS if name in reply.headers
        }
    TokenRequest.objects.create(
        chain_id=chain_id,
        app=app,
        config_variable=config_variable,
        kind=kind,
        flavor=flavor.number,
        url=app.token_url,
        request_headers=redact_headers(headers),
        request_body=redacted.body.decode(),
        status_code=reply.status if reply else None,
        response_headers=kept_headers,
        response_excerpt=redact_body(reply.body, secrets) if reply else "",
        duration_ms=duration_ms,
        outcome=outcome,
        error=error[:200],
        message=redact_text(message, secrets)[:2000],
    )


def run_token_chain(
    *,
    app: App,
    fields: dict[str, str],
    kind: str,
    config_variable: ConfigVariable | None = None,
) -> ChainResult:
    """Send the grant ``fields`` to ``app.token_url`` flavor by flavor (guide flavors 1-6).

    Returns the first reply carrying an ``access_token``. Raises ``ProviderUnavailable``
    when the failures were transient (no reply, 5xx, 429 with ``retry_after`` seconds),
    else ``ProviderError`` with the RFC 6749 §5.2 ``error`` most attempts returned.
    """
    chain_id = uuid.uuid4()
    secrets = (
        app.client_secret,
        *(fields.get(name) for name in ("code", "code_verifier", "refresh_token")),
    )
    failures: list[ProviderError] = []
    order = flavor_order(preferred=app.preferred_flavor, pinned=app.pinned_flavor)
    for attempt, flavor in enumerate(order, start=1):
        spec = build_token_request(
            flavor, client_id=app.client_id, client_secret=app.client_secret, fields=fields
        )
        headers = {**(app.extra_token_headers or {}), **spec.headers}
        common = {
            "chain_id": chain_id,
            "app": app,
            "config_variable": config_variable,
            "kind": kind,
            "flavor": flavor,
            "headers": headers,
            "fields": fields,
            "secrets": secrets,
        }
        logger.info(
            "oauthflow.token_request.attempt",
            extra={"app": app.slug, "kind": kind, "flavor": flavor.number},
        )
        try:
            reply = client.post(app.token_url, headers=headers, body=spec.body)
        except TransportError as exc:
            _record(
                **common,
                reply=None,
                duration_ms=exc.duration_ms,
                outcome=Outcome.TRANSPORT_ERROR,
                error=exc.kind,
                message=str(exc),
            )
            raise
        try:
            token = parse_token_response(reply, url=app.token_url)
        except ProviderError as exc:
            outcome = (
                Outcome.REJECTED if decode_body(reply) is not None else Outcome.NOT_A_TOKEN_REPLY
            )
            _record(
                **common,
                reply=reply,
                duration_ms=reply.duration_ms,
                outcome=outcome,
                error=exc.error,
                message=str(exc),
            )
            if reply.status == 429:
                raise ProviderUnavailable(
                    str(exc),
                    url=app.token_url,
                    status=429,
                    error=exc.error,
                    retry_after=_retry_after(reply),
                ) from exc
            if exc.error in CHAIN_ENDING_ERRORS or _mentions_redirect_uri(exc):
                raise
            failures.append(exc)
            continue
        _record(**common, reply=reply, duration_ms=reply.duration_ms, outcome=Outcome.SUCCESS)
        if app.pinned_flavor is None and app.preferred_flavor != flavor.number:
            App.objects.filter(pk=app.pk).update(preferred_flavor=flavor.number)
            app.preferred_flavor = flavor.number
        return ChainResult(token=token, flavor=flavor, attempts=attempt, chain_id=chain_id)

    summary = "; ".join(f"#{f.number}: {e}" for f, e in zip(order, failures, strict=True))
    message = f"No flavor returned an access token ({len(failures)} attempts). {summary}"
    if all(e.status is not None and e.status >= 500 for e in failures):
        raise ProviderUnavailable(message, url=app.token_url, status=failures[-1].status)
    # A flavor the app cannot parse says nothing about the credentials: rank its
    # "wrong format" errors last, so a bad secret reads invalid_client whatever the order.
    codes = Counter(e.error for e in failures if e.error)
    ranked = sorted(codes.items(), key=lambda item: (item[0] in FORMAT_ERRORS, -item[1]))
    error = ranked[0][0] if ranked else ""
    raise ProviderError(message, url=app.token_url, status=failures[0].status, error=error)
