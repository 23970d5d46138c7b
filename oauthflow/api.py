"""The token API for integrations: ``GET /api/v1/config-variables/<id>/token``.

Authenticated with a customer API key (``Authorization: Bearer cpk_…``); a key only
reaches its own customer's ConfigVariables (anything else is a 404).
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from connections.api_keys import api_key_authenticate
from connections.models import ConfigVariable
from oauthflow.access import get_access_token
from oauthflow.exceptions import ProviderUnavailable, ReauthorizationRequired


def _error(status: int, error: str, message: str) -> JsonResponse:
    return JsonResponse({"error": error, "message": message}, status=status)


@csrf_exempt  # bearer-key API: no cookies, so no CSRF; anything but GET is a 405
@require_GET
def config_variable_token(request: HttpRequest, pk: uuid.UUID) -> JsonResponse:
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    api_key = api_key_authenticate(raw.strip()) if scheme.lower() == "bearer" else None
    if api_key is None:
        response = _error(401, "unauthorized", "Send Authorization: Bearer <API key>.")
        response["WWW-Authenticate"] = 'Bearer realm="connection-portal"'
        return response
    if not ConfigVariable.objects.filter(pk=pk, customer=api_key.customer).exists():
        return _error(404, "not_found", "No such connection for this API key.")
    try:
        token = get_access_token(config_variable_id=pk)
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
        }
    )
    response["Cache-Control"] = "no-store"  # RFC 6749 §5.1
    return response
