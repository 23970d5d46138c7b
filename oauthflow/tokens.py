"""Parsing token endpoint replies tolerantly (RFC 6749 §5.1 success, §5.2 error).

Real apps answer in JSON or ``application/x-www-form-urlencoded``, put ``error`` inside a
200, send ``expires_in`` as a number, a numeric string or not at all, spell
``token_type`` in any case, and add fields of their own (``instance_url``). All of that
is accepted here; anything without an ``access_token`` raises ``ProviderError``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from oauthflow.client import HttpReply
from oauthflow.exceptions import ProviderError

TOKEN_FIELDS = frozenset({"access_token", "refresh_token", "id_token"})
STANDARD_FIELDS = TOKEN_FIELDS | {"token_type", "expires_in", "scope"}


@dataclass(frozen=True)
class TokenResponse:
    """A successful token reply.

    ``expires_in`` is in seconds (None: the app gave no lifetime), ``scope`` is what the
    app says it granted (None: as requested, RFC 6749 §5.1), ``extra`` holds non-standard
    fields with no tokens in them.
    """

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - a token type name, not a secret
    expires_in: int | None = None
    refresh_token: str | None = None
    scope: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def decode_body(reply: HttpReply) -> dict[str, Any] | None:
    """The reply's fields as a dict (JSON object, or a form-encoded body), else None."""
    text = reply.body.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            return None
        return data if isinstance(data, dict) else None
    if reply.content_type in ("application/x-www-form-urlencoded", "text/plain") and "=" in text:
        pairs = parse_qsl(text, keep_blank_values=True)
        return dict(pairs) if pairs else None
    return None


MAX_EXPIRES_IN = 10 * 365 * 24 * 3600  # seconds: ten years is "never" for renewal


def _expires_in(value: Any) -> int | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        seconds = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    # "Never" written as a huge number must not overflow the datetime arithmetic later.
    return min(seconds, MAX_EXPIRES_IN) if seconds > 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_token_response(reply: HttpReply, *, url: str = "") -> TokenResponse:
    """Turn ``reply`` into a ``TokenResponse``.

    Raises ``ProviderError`` carrying the RFC 6749 ``error`` code (or "" when the reply
    is not an OAuth error at all: an HTML page, an empty body, a non-2xx status).
    """
    data = decode_body(reply)
    if data is None:
        raise ProviderError(
            f"HTTP {reply.status}: the reply is not a token response", url=url, status=reply.status
        )
    error = _text(data.get("error"))
    token = _text(data.get("access_token"))
    if error or not token:
        description = _text(data.get("error_description")) or ""
        raise ProviderError(
            f"HTTP {reply.status}: {error or 'no access_token in the reply'}"
            + (f" ({description[:300]})" if description else ""),
            url=url,
            status=reply.status,
            error=error or "",
        )
    scope = data.get("scope")
    if isinstance(scope, list):
        scope = " ".join(str(item) for item in scope)
    return TokenResponse(
        access_token=token,
        token_type=(_text(data.get("token_type")) or "bearer").lower()[:40],
        expires_in=_expires_in(data.get("expires_in")),
        refresh_token=_text(data.get("refresh_token")),
        scope=_text(scope),
        extra=_bounded_extra(data),
    )


EXTRA_LIMIT = 4096  # characters of JSON kept per extra field
EXTRA_MAX_DEPTH = 8  # nesting levels kept per extra field


def _depth(value: Any) -> int:
    """How many levels ``value`` has (a scalar 1, ``[1]`` 2); stops counting past
    ``EXTRA_MAX_DEPTH``, so a hostile reply cannot exhaust the stack here."""
    depth, level = 0, [value]
    while level and depth <= EXTRA_MAX_DEPTH:
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        depth += 1
    return depth if not level else EXTRA_MAX_DEPTH + 1


def _bounded_extra(data: dict[str, Any]) -> dict[str, Any]:
    """Non-standard fields worth keeping (``instance_url``), each at most ``EXTRA_LIMIT``
    characters as JSON and ``EXTRA_MAX_DEPTH`` levels deep; anything bigger is an app's
    oddity, not configuration (and a deep one could overflow the stack when stored)."""
    kept = {}
    for name, value in data.items():
        if name in STANDARD_FIELDS or not isinstance(name, str) or len(name) > 100:
            continue
        if any(word in name.lower() for word in ("token", "secret", "password")):
            continue  # an app-specific credential: never kept in the clear
        if _depth(value) > EXTRA_MAX_DEPTH:
            continue
        try:
            dumped = json.dumps(value)
            # PostgreSQL's jsonb refuses \u0000; an app's oddity, not configuration.
            if len(dumped) <= EXTRA_LIMIT and "\\u0000" not in dumped and "\x00" not in name:
                kept[name] = value
        except (TypeError, ValueError, RecursionError):
            continue
    return kept
