"""Keeping secrets out of records, logs and curl text.

Token requests are stored for troubleshooting, so everything secret in them (client
secret, authorization code, PKCE verifier, tokens) is replaced by a marker before it is
written anywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from oauthflow.sensitive import secret_name, secret_url

REDACTED = "[REDACTED]"
SECRET_FIELDS = frozenset(
    {
        "client_secret",
        "code",
        "code_verifier",
        "access_token",
        "refresh_token",
        "id_token",
        "assertion",
        "password",
    }
)
SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
EXCERPT_LIMIT = 2000  # characters of a response body kept


def storable(text: str) -> str:
    """``text`` without NUL characters, which PostgreSQL text columns cannot hold."""
    return text.replace("\x00", "\ufffd")


def redact_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` with secret-bearing values replaced by ``REDACTED``."""
    return {
        name: (REDACTED if name in SECRET_FIELDS and value else value)
        for name, value in fields.items()
    }


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """A copy of ``headers``; credentials keep their scheme only (``Basic [REDACTED]``)."""
    cleaned = {}
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS:
            scheme = value.split(" ", 1)[0] if " " in value else ""
            cleaned[name] = f"{scheme} {REDACTED}".strip()
        else:
            cleaned[name] = value
    return cleaned


# A field name that holds a credential, as ``oauthflow.sensitive.secret_name`` decides
# for JSON, for text that is not JSON (form bodies, echoed dicts, logs).
CREDENTIAL_FIELD_PATTERN = (
    r"[\w.-]*(?:token|secret|passw(?:or)?d|passphrase|api[_-]?key|apikey|credential|"
    r"authorization|cookie|verifier|assertion|session_?id)[\w.-]*|code"
)
_QUOTED_FIELD = re.compile(
    rf"""(["'](?!token_type["'])(?:{CREDENTIAL_FIELD_PATTERN})["']\s*[:=]\s*)(["'])(?:\\.|(?!\2).)*\2""",
    re.IGNORECASE,
)
_FORM_FIELD = re.compile(
    rf"((?:^|[&?\s;,])(?!token_type=)(?:{CREDENTIAL_FIELD_PATTERN})=)[^&\s;,]*", re.IGNORECASE
)
# An Authorization header value echoed back (Basic base64 of id:secret, or a bearer).
_CREDENTIAL_HEADER = re.compile(r"\b(Basic|Bearer|Digest)\s+[A-Za-z0-9+/=._~-]{8,}", re.IGNORECASE)


def redact_text(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each non-trivial secret value masked, and every credential-like
    field (quoted or form-encoded, by name), and any echoed ``Basic``/``Bearer``
    credential, whatever the shape of the text."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _QUOTED_FIELD.sub(rf"\1\2{REDACTED}\2", text)
    text = _FORM_FIELD.sub(rf"\1{REDACTED}", text)
    text = _CREDENTIAL_HEADER.sub(rf"\1 {REDACTED}", text)
    return storable(text)


def redact_deep(value: Any, depth: int = 0) -> Any:
    """``value`` with every credential-like field (by name, at any depth) and every
    secret-bearing URL masked (``oauthflow.sensitive``)."""
    if depth > 32:
        return REDACTED
    if isinstance(value, dict):
        return {
            name: (
                REDACTED
                if (isinstance(name, str) and secret_name(name) and item not in (None, ""))
                else redact_deep(item, depth + 1)
            )
            for name, item in value.items()
        }
    if isinstance(value, list):
        return [redact_deep(item, depth + 1) for item in value]
    if isinstance(value, str) and secret_url(value):
        return REDACTED
    return value


def redact_body(body: bytes, secrets: Iterable[str | None]) -> str:
    """A readable, redacted excerpt of a request or response body: JSON is masked
    field by field at any depth; anything else by the known secrets and field names."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict | list):
        try:
            text = json.dumps(redact_deep(data), sort_keys=True)
        except (TypeError, ValueError, RecursionError):
            text = REDACTED
    text = redact_text(text, secrets)
    return text[:EXCERPT_LIMIT]
