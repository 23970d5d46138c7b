"""Revoking a connection's tokens at the app on disconnect (RFC 7009).

The refresh token is revoked (which, per RFC 7009 §2.1, should also end the access
tokens of the same grant), else the access token. The request authenticates the client
like the App's remembered flavor (form bodies only: RFC 7009 §2.1 takes form
parameters) and is recorded, redacted, like every token request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from connections.models import ConfigVariable
from connections.services import config_variable_disconnect
from oauthflow import client, inputs
from oauthflow.client import TransportError
from oauthflow.flavors import FLAVORS_BY_NUMBER, BodyFormat, Flavor, build_token_request
from oauthflow.models import TokenRequest, TokenRequestKind
from oauthflow.outcomes import Key, classify_transport, revocation_outcome
from oauthflow.redaction import REDACTED, redact_body, redact_fields, redact_headers


def _form_flavor(preferred: int | None) -> Flavor:
    flavor = FLAVORS_BY_NUMBER.get(preferred or 1, FLAVORS_BY_NUMBER[1])
    if flavor.body_format is BodyFormat.JSON:
        flavor = FLAVORS_BY_NUMBER[flavor.number - 1]  # the same credentials, form body
    return flavor


def config_variable_revoke(*, config_variable: ConfigVariable) -> bool:
    """Ask the App's ``revocation_url`` to revoke the ConfigVariable's token.

    Returns True when the app confirmed (HTTP 200, RFC 7009 §2.2); False when the App has
    no revocation endpoint, there is no token, or the request failed (recorded; the
    caller disconnects anyway, since the customer asked to).
    """
    app = config_variable.connection.app
    token = config_variable.refresh_token or config_variable.access_token
    if not app.revocation_url or not token:
        return False
    try:
        revocation_url = inputs.endpoint(app, "revocation_url", config_variable.customer_inputs)
    except inputs.InvalidCustomerInput:
        return False
    hint = "refresh_token" if config_variable.refresh_token else "access_token"
    fields = {"token": token, "token_type_hint": hint}
    flavor = _form_flavor(app.pinned_flavor or app.preferred_flavor)
    spec = build_token_request(
        flavor,
        client_id=app.client_id,
        client_secret=app.client_secret or "",
        fields=fields,
        client_id_param=app.client_id_param,
        client_secret_param=app.client_secret_param,
    )
    secrets = (app.client_secret, token)
    record = TokenRequest(
        chain_id=uuid.uuid4(),
        app=app,
        config_variable=config_variable,
        kind=TokenRequestKind.REVOCATION,
        flavor=flavor.number,
        url=revocation_url,
        request_headers=redact_headers(spec.headers),
        request_body=build_token_request(
            flavor,
            client_id=app.client_id,
            client_secret=REDACTED,
            fields=redact_fields({**fields, "token": REDACTED}),
            client_id_param=app.client_id_param,
            client_secret_param=app.client_secret_param,
        ).body.decode(),
    )
    try:
        reply = client.post(revocation_url, headers=spec.headers, body=spec.body)
    except TransportError as exc:
        record.outcome = classify_transport(exc.kind).outcome
        record.error, record.message = exc.kind, str(exc)
        record.diagnosis = Key.REVOCATION_FAILED
        record.duration_ms = exc.duration_ms
        record.save()
        return False
    ok = reply.status == 200
    record.status_code = reply.status
    record.duration_ms = reply.duration_ms
    record.response_excerpt = redact_body(reply.body, secrets)
    record.outcome = revocation_outcome(reply.status)
    record.message = "Token revoked." if ok else f"HTTP {reply.status} from the revocation URL"
    record.diagnosis = Key.OK if ok else Key.REVOCATION_FAILED
    record.save()
    return ok


@dataclass(frozen=True)
class Disconnected:
    """A disconnect's outcome: ``revocation_failed`` means the app offers revocation but
    did not confirm it, so the token may still work there until it expires."""

    config_variable: ConfigVariable
    revoked: bool
    revocation_failed: bool


def config_variable_disconnect_revoking(
    *, config_variable: ConfigVariable, reason: str
) -> Disconnected:
    """Disconnect, revoking the token at the app first where it offers RFC 7009."""
    had_token = bool(config_variable.refresh_token or config_variable.access_token)
    revoked = config_variable_revoke(config_variable=config_variable)
    failed = bool(config_variable.connection.app.revocation_url) and had_token and not revoked
    suffix = " The token was revoked at the app." if revoked else ""
    if failed:
        suffix = " Revoking the token at the app failed; it may work there until it expires."
    config_variable = config_variable_disconnect(
        config_variable=config_variable, reason=reason + suffix
    )
    return Disconnected(config_variable, revoked=revoked, revocation_failed=failed)
