"""The sandbox's OAuth 2.0 request validator: DOT's, plus an optional offline rule."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from oauth2_provider.oauth2_validators import OAuth2Validator

OFFLINE_SCOPE = "offline_access"


class SandboxValidator(OAuth2Validator):
    """DOT's validator. With ``SANDBOX_REFRESH_NEEDS_OFFLINE_ACCESS`` on, a refresh
    token is issued only when ``offline_access`` was granted, as many real apps do; a
    refresh token's lifetime (``SANDBOX_REFRESH_TOKEN_SECONDS``) is stated in the reply
    as ``refresh_token_expires_in`` (the dict saved here is the reply's body)."""

    def _save_bearer_token(self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any):
        granted = str(token.get("scope", "")).split()
        needs_offline = settings.SANDBOX_REFRESH_NEEDS_OFFLINE_ACCESS
        if needs_offline and request.grant_type != "refresh_token" and OFFLINE_SCOPE not in granted:
            token.pop("refresh_token", None)
        if token.get("refresh_token") and settings.SANDBOX_REFRESH_TOKEN_SECONDS:
            token["refresh_token_expires_in"] = settings.SANDBOX_REFRESH_TOKEN_SECONDS
        return super()._save_bearer_token(token, request, *args, **kwargs)
