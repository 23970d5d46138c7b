"""Which fields of a token reply are secrets and which are metadata, decided once.

Tokens and credential-like fields, at any depth (Slack's ``authed_user.access_token``,
``incoming_webhook.url``, an ``api_key``, ``credentials.key``), are never kept as
metadata; they are stored encrypted in their own columns or dropped. What an integration
needs (``instance_url``, ``api_domain``, ``team.id``, ``realmId``) is kept and shown.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

EXTRA_LIMIT = 4096  # characters of JSON kept per top-level field
EXTRA_MAX_DEPTH = 8  # nesting levels kept per field
# Names that hold credentials: matched against each word of a field's name.
SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "credential",
        "credentials",
        "key",
        "apikey",
        "authorization",
        "jwt",
        "cookie",
        "verifier",
        "assertion",
    }
)
SECRET_NAME_PARTS = (
    "token",
    "secret",
    "password",
    "passphrase",
    "apikey",
    "api_key",
    "private",
    "credential",
    "cookie",
)
SECRET_URL_PATH = re.compile(r"/[^/]*hook[^/]*/|/services/", re.IGNORECASE)
SECRET_QUERY_NAMES = re.compile(r"token|key|sig|secret|code", re.IGNORECASE)
# Whole names that hold session credentials (``session_state``, an OpenID Connect session
# identifier the integration may need, is not one of them).
SECRET_NAMES = frozenset({"session", "sid", "session_id", "sessionid", "session_key"})
# Names that look credential-like but are public identifiers.
PUBLIC_NAMES = frozenset({"token_type", "key_id", "kid", "public_key", "publishable_key"})


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)  # camelCase → camel_case
    return [word for word in re.split(r"[^a-zA-Z0-9]+", spaced.lower()) if word]


def secret_name(name: str) -> bool:
    """True when a field called ``name`` holds a credential (``access_token``,
    ``apiKey``, ``client-secret``, ``key``), by its name alone."""
    lowered = name.lower()
    if lowered in PUBLIC_NAMES:
        return False
    if lowered in SECRET_NAMES:
        return True
    if any(part in lowered for part in SECRET_NAME_PARTS):
        return True
    return any(word in SECRET_WORDS for word in _words(name))


def secret_url(value: str) -> bool:
    """True for a URL whose path or query is itself a credential (a webhook URL such as
    ``https://hooks.example.com/services/T0/B0/XXXX``, ``?token=…``)."""
    if not value[:8].lower().startswith(("http://", "https://")):
        return False
    try:
        parts = urlsplit(value)
        host = (parts.hostname or "").lower()
    except ValueError:
        return True  # unparseable: not worth the risk of showing it
    if parts.password or SECRET_URL_PATH.search(parts.path) or "hook" in host:
        return True
    return any(SECRET_QUERY_NAMES.search(name) for name, _ in parse_qsl(parts.query))


def _scrub(value: Any, depth: int) -> Any:
    """``value`` without credential-like fields; raises ``ValueError`` past the depth."""
    if depth > EXTRA_MAX_DEPTH:
        raise ValueError("too deep")
    if isinstance(value, dict):
        return {
            str(name): _scrub(item, depth + 1)
            for name, item in value.items()
            if isinstance(name, str) and len(name) <= 100 and not secret_name(name)
            if not (isinstance(item, str) and secret_url(item))
        }
    if isinstance(value, list):
        return [
            _scrub(item, depth + 1)
            for item in value
            if not (isinstance(item, str) and secret_url(item))
        ]
    return value


def kept_metadata(data: dict[str, Any], *, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The reply fields worth keeping as metadata: every field but those in ``skip``
    (the standard ones), without credentials at any depth, each at most
    ``EXTRA_LIMIT`` characters of JSON and ``EXTRA_MAX_DEPTH`` levels deep (anything
    bigger is an app's oddity, not configuration)."""
    kept: dict[str, Any] = {}
    for name, value in data.items():
        if not isinstance(name, str) or name in skip:
            continue
        if len(name) > 100 or "\x00" in name or secret_name(name):
            continue
        if isinstance(value, str) and secret_url(value):
            continue
        try:
            cleaned = _scrub(value, 1)
            dumped = json.dumps(cleaned)
        except (TypeError, ValueError, RecursionError):
            continue
        # PostgreSQL's jsonb refuses \u0000; an app's oddity, not configuration.
        if len(dumped) <= EXTRA_LIMIT and "\\u0000" not in dumped:
            kept[name] = cleaned
    return kept
