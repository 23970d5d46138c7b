"""Building the authorization request (RFC 6749 §4.1.1, PKCE per RFC 7636 §4).

The query matches the guide's example: ``client_id``, ``redirect_uri``, ``scope``
(space-joined, then form-encoded: ``widget%3Aread+widget%3Awrite``) and ``state``, with the
``response_type=code`` that RFC 6749 requires first, then PKCE, the App's offline switch
and its extra parameters.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from urllib.parse import urlencode

from django.conf import settings

from connections.models import OFFLINE_SCOPE, App, OfflineStrategy
from oauthflow import inputs

OFFLINE_PARAMS: dict[str, tuple[str, str]] = {
    OfflineStrategy.ACCESS_TYPE_OFFLINE: ("access_type", "offline"),
    OfflineStrategy.DURATION_PERMANENT: ("duration", "permanent"),
    OfflineStrategy.TOKEN_ACCESS_TYPE_OFFLINE: ("token_access_type", "offline"),
}


def pkce_verifier() -> str:
    """A ``code_verifier``: 43 characters from the unreserved set (RFC 7636 §4.1)."""
    return secrets.token_urlsafe(32)


def pkce_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` for ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def callback_url() -> str:
    """The ``redirect_uri`` to register at every app (``OAUTH_PUBLIC_CALLBACK_URL``)."""
    return settings.OAUTH_PUBLIC_CALLBACK_URL


def scope_string(app: App, scopes: list[str]) -> str:
    """``scopes`` joined with the App's separator (a space unless the App says otherwise)."""
    return (app.scope_separator or " ").join(scopes)


def asks_offline(app: App, scopes: list[str]) -> bool:
    """Whether this authorization request asks for offline access (a refresh token):
    the ``offline_access`` scope, or the App's offline parameter."""
    return OFFLINE_SCOPE in scopes or app.offline_strategy in OFFLINE_PARAMS


def authorize_url_build(
    *,
    app: App,
    scopes: list[str],
    state: str,
    code_verifier: str | None = None,
    redirect_uri: str | None = None,
    values: Mapping[str, str] | None = None,
) -> str:
    """The URL to send the customer's browser to. ``prompt=consent`` goes with a request
    for offline access when the App says so (OIDC Core §11: OpenID Connect servers grant
    ``offline_access`` only with it; Google issues a refresh token only on consent).
    ``values`` are the customer's inputs (``oauthflow.inputs``); raises
    ``InvalidCustomerInput`` when the URL needs them and they are missing or refused."""
    params: dict[str, str] = {
        "response_type": "code",
        app.client_id_param or "client_id": app.client_id,
        "redirect_uri": redirect_uri or callback_url(),
    }
    if scopes:
        params["scope"] = scope_string(app, scopes)
    params["state"] = state
    if code_verifier:
        params["code_challenge"] = pkce_challenge(code_verifier)
        params["code_challenge_method"] = "S256"
    if app.offline_strategy in OFFLINE_PARAMS:
        name, value = OFFLINE_PARAMS[app.offline_strategy]
        params[name] = value
    if app.prompt_consent and asks_offline(app, scopes):
        params["prompt"] = "consent"
    for name, value in inputs.params(app, app.extra_authorize_params, values).items():
        params.setdefault(name, value)
    base = inputs.endpoint(app, "authorize_url", values)
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}{urlencode(params)}"
