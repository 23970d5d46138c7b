"""The token API for integrations.

``GET /api/v1/config-variables/<id>/token`` returns a valid access token;
``POST /api/v1/config-variables/<id>/token/rejected`` reports that the app answered 401
to a token the portal believes valid (JSON ``{"access_token": …}`` or
``{"fingerprint": "sha256:…"}``) and returns a renewed one, renewing once.

Authenticated with a customer API key (``Authorization: Bearer cpk_…``); a key only
reaches its own customer's ConfigVariables (anything else is a 404).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from connections.api_keys import ApiKeyThrottled, api_key_check, client_ip
from connections.fingerprints import fingerprint
from connections.models import ConfigVariable
from oauthflow.access import AccessToken, AccessTokenRejected, get_access_token
from oauthflow.access import report_rejected_token as _report_rejected_token
from oauthflow.exceptions import ProviderUnavailable, ReauthorizationRequired

MAX_REPORT_BYTES = 16384
FINGERPRINT = re.compile(r"sha256:[0-9a-f]{12}")  # connections.fingerprints.fingerprint


def _error(status: int, error: str, message: str) -> JsonResponse:
    return JsonResponse({"error": error, "message": message}, status=status)


def _authorized(request: HttpRequest, pk: uuid.UUID) -> JsonResponse | None:
    """None when the request's API key reaches ``pk``; else the error response (429 with
    Retry-After while failed keys from this IP or for this key are throttled)."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    raw = raw.strip()
    api_key = None
    if scheme.lower() == "bearer" and raw:
        try:
            api_key = api_key_check(raw, ip=client_ip(request))
        except ApiKeyThrottled as exc:
            response = _error(429, "too_many_requests", str(exc))
            response["Retry-After"] = str(exc.retry_after)
            return response
    if api_key is None:
        response = _error(401, "unauthorized", "Send Authorization: Bearer <API key>.")
        response["WWW-Authenticate"] = 'Bearer realm="connection-portal"'
        return response
    if not ConfigVariable.objects.filter(pk=pk, customer=api_key.customer).exists():
        return _error(404, "not_found", "No such connection for this API key.")
    return None


def _token_response(fetch: Callable[[], AccessToken]) -> JsonResponse:
    try:
        token = fetch()
    except AccessTokenRejected as exc:
        return _error(409, "access_token_rejected", str(exc))
    except ReauthorizationRequired as exc:
        return _error(409, "reauthorization_required", str(exc))
    except ProviderUnavailable as exc:
        response = _error(503, "temporarily_unavailable", str(exc))
        response["Retry-After"] = str(int(exc.retry_after or 30))
        return response
    response = JsonResponse(
        {
            "access_token": token.access_token,
            "token_type": token.token_type,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            "scope": token.scopes,
            "metadata": token.metadata,
        }
    )
    response["Cache-Control"] = "no-store"  # RFC 6749 §5.1
    return response


@csrf_exempt  # bearer-key API: no cookies, so no CSRF; anything but GET is a 405
@require_GET
def config_variable_token(request: HttpRequest, pk: uuid.UUID) -> JsonResponse:
    """A valid access token for ``pk`` (``access.get_access_token``)."""
    return _authorized(request, pk) or _token_response(
        lambda: get_access_token(config_variable_id=pk)
    )


def _reported_fingerprint(request: HttpRequest) -> str | None:
    """The fingerprint of the token the report names, or None for a malformed report."""
    if len(request.body) > MAX_REPORT_BYTES:
        return None
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    token, given = data.get("access_token"), data.get("fingerprint")
    if isinstance(token, str) and token:
        return fingerprint(token)
    if isinstance(given, str) and FINGERPRINT.fullmatch(given):
        return given
    return None


@csrf_exempt  # bearer-key API: no cookies, so no CSRF
@require_POST
def config_variable_token_rejected(request: HttpRequest, pk: uuid.UUID) -> JsonResponse:
    """The app answered 401 to a token of ``pk``: renew once and return the new token
    (``access.report_rejected_token``); a second rejection is a 409."""
    denied = _authorized(request, pk)
    if denied is not None:
        return denied
    reported = _reported_fingerprint(request)
    if reported is None:
        return _error(
            400,
            "invalid_request",
            'Send JSON {"access_token": "<the rejected token>"} or '
            '{"fingerprint": "sha256:<first 12 hex digits of its SHA-256>"}.',
        )
    return _token_response(
        lambda: _report_rejected_token(config_variable_id=pk, token_fingerprint=reported)
    )
