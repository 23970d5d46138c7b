"""Reading token endpoint replies in the shapes providers really send (RFC 6749 §5.1, §5.2).

Real apps answer in JSON or ``application/x-www-form-urlencoded`` (sometimes a form body
labelled ``application/json``), put errors inside a 200, nest error objects (Facebook),
list them (Strava), name them ``status`` (HubSpot) or ``data.error_code`` (TikTok v1),
nest the tokens themselves (Slack's ``authed_user``, TikTok's ``data``), send ``expires``
for ``expires_in`` (Facebook's old text/plain replies) or an absolute ``expires_at``
(Strava), and state the refresh token's own lifetime under three names. All of it is
read here; what an error *means* is decided in ``oauthflow.outcomes``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from oauthflow.client import HttpReply
from oauthflow.exceptions import ProviderError
from oauthflow.sensitive import kept_metadata

TOKEN_FIELDS = frozenset({"access_token", "refresh_token", "id_token"})
REFRESH_LIFETIME_FIELDS = (
    "refresh_token_expires_in",  # GitHub, LinkedIn
    "x_refresh_token_expires_in",  # Intuit QuickBooks
    "refresh_expires_in",  # Keycloak (0: an offline token that does not expire)
)
STANDARD_FIELDS = TOKEN_FIELDS | {
    "token_type",
    "expires_in",
    "expires",
    "expires_at",
    "expires_on",
    "scope",
    *REFRESH_LIFETIME_FIELDS,
}
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600  # seconds: ten years is "never" for renewal
NESTED_TOKEN_DEPTH = 3  # how deep a token object is looked for when none is at the top
SUCCESS_STATUSES = frozenset({"ok", "success", "succeeded", "true", "200"})


@dataclass(frozen=True)
class TokenResponse:
    """A successful token reply.

    ``expires_in`` is the access token's lifetime in seconds (None: the app gave none,
    or ``0`` with no refresh token, which means it never expires; ``0`` with a refresh
    token: already expired, renew before first use). ``refresh_token_expires_in`` is the
    refresh token's lifetime in seconds when the app says (None: unknown). ``token_type``
    is as sent (``bearer_type`` normalises it); ``scope`` is what the app says it granted
    (None: as requested, RFC 6749 §5.1); ``extra`` holds reply metadata with no secret.
    """

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - a token type name, not a secret
    expires_in: int | None = None
    refresh_token: str | None = None
    refresh_token_expires_in: int | None = None
    scope: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplyError:
    """The error a reply carries, whatever its shape: ``code`` lower-cased ("" when
    none), ``text`` the description, ``present`` whether the reply says it failed."""

    code: str = ""
    text: str = ""
    present: bool = False


def _json(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return None
    return data if isinstance(data, dict) else None


def decode_body(reply: HttpReply) -> dict[str, Any] | None:
    """The reply's fields as a dict (a JSON object, or a form-encoded body even when
    labelled JSON or text), else None."""
    text = reply.body.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    if text.startswith("{"):
        return _json(text)
    if "=" in text and not text.startswith("<") and "\n" not in text:
        pairs = parse_qsl(text, keep_blank_values=True)
        return dict(pairs) if pairs else None
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_text(data: dict[str, Any], *names: str) -> str:
    for name in names:
        value = data.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


DESCRIPTION_FIELDS = (
    "error_description",
    "error_message",
    "errorMessage",
    "message",
    "reason",  # Zoom
    "description",  # TikTok v1
    "detail",
    "error_summary",  # Dropbox API errors
)


def _code(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float | str):
        return str(value).strip().lower()[:100]
    return ""


def _nested_error(error: dict[str, Any]) -> ReplyError:
    """Facebook's ``{"error": {"message", "type", "code", "error_subcode"}}``."""
    kind, code = _code(error.get("type")), _code(error.get("code"))
    joined = f"{kind}:{code}" if kind and code else kind or code or _code(error.get("error"))
    subcode = _code(error.get("error_subcode"))
    text = _first_text(error, *DESCRIPTION_FIELDS)
    return ReplyError(
        code=joined, text=f"{text} (subcode {subcode})" if subcode else text, present=True
    )


def _listed_error(errors: list[Any]) -> ReplyError:
    """Strava's ``errors: [{resource, field, code}]``, Fitbit's ``[{errorType, message}]``."""
    first = next((item for item in errors if isinstance(item, dict)), None)
    if first is None:
        return ReplyError(text="; ".join(str(item) for item in errors[:3]), present=True)
    code = _code(first.get("errorType") or first.get("error") or first.get("type"))
    parts = [str(first.get(name)) for name in ("resource", "field", "code") if first.get(name)]
    text = _first_text(first, *DESCRIPTION_FIELDS)
    return ReplyError(
        code=code or _code(first.get("code")),
        text=" ".join([*parts, text]).strip(),
        present=True,
    )


def error_fields(data: dict[str, Any]) -> ReplyError:
    """The error in a decoded reply, from any of the shapes providers use.

    RFC 6749 §5.2 ``error``/``error_description``; Slack's ``ok: false``; Facebook's
    nested ``error`` object (code ``type:code``, e.g. ``oauthexception:190``); an
    ``errors`` list (Strava, Fitbit); HubSpot's ``status``/``message``; TikTok v1's
    ``data.error_code``/``data.description``; ``error_code``/``errorCode``. ``present``
    is False when nothing in the reply says it failed.
    """
    error = data.get("error")
    if isinstance(error, dict):
        return _nested_error(error)
    description = _first_text(data, *DESCRIPTION_FIELDS)
    if isinstance(error, str) and error.strip():
        if any(char.isspace() for char in error.strip()):
            # A sentence where a code belongs ({"error": "Refresh token expired"}).
            text = " ".join(filter(None, [error.strip(), description]))
            return ReplyError(text=text, present=True)
        return ReplyError(code=_code(error), text=description, present=True)
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        listed = _listed_error(errors)
        return ReplyError(listed.code, " ".join(filter(None, [description, listed.text])), True)
    for name in ("error_code", "errorCode", "error_type"):
        if data.get(name) not in (None, "", 0, "0"):
            return ReplyError(code=_code(data.get(name)), text=description, present=True)
    nested = data.get("data")
    if isinstance(nested, dict) and nested.get("error_code") not in (None, "", 0, "0"):
        return ReplyError(
            code=_code(nested.get("error_code")),
            text=_first_text(nested, *DESCRIPTION_FIELDS) or description,
            present=True,
        )
    status = data.get("status")
    if (
        isinstance(status, str)
        and status
        and not status.isdigit()
        and status.lower() not in SUCCESS_STATUSES
        and token_object(data) is None
    ):
        return ReplyError(code=_code(status), text=description, present=True)  # HubSpot
    failed = data.get("ok") is False or data.get("success") is False
    return ReplyError(text=description, present=failed)


def token_object(data: dict[str, Any], *, token_path: str = "") -> dict[str, Any] | None:
    """The object that holds the tokens: at ``token_path`` (dotted, e.g. ``authed_user``)
    when the App sets one and it has an ``access_token``; else the top level when it has
    one; else the first nested object (``NESTED_TOKEN_DEPTH`` levels) that has one
    (Slack user installs' ``authed_user``, TikTok v1's ``data``). None when no object
    holds a string ``access_token``."""
    if token_path:
        node: Any = data
        for part in token_path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and _text(node.get("access_token")):
            return node
    if _text(data.get("access_token")):
        return data
    level = [data]
    for _ in range(NESTED_TOKEN_DEPTH):
        level = [value for item in level for value in item.values() if isinstance(value, dict)]
        for item in level:
            if _text(item.get("access_token")):
                return item
    return None


def _number(value: Any) -> float | None:
    """A finite number from a number or numeric string (None: unusable)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _seconds(value: Any) -> int | None:
    """A lifetime in whole seconds, at most ``MAX_EXPIRES_IN``; a negative one is 0
    (already expired). None: unusable."""
    number = _number(value)
    if number is None:
        return None
    return int(min(max(number, 0), MAX_EXPIRES_IN))


def _lifetime(source: dict[str, Any], *, sent_at: float) -> int | None:
    """``expires_in``, else ``expires`` (Facebook), else an absolute ``expires_at`` or
    ``expires_on`` (Unix seconds, Strava, Entra ID v1) counted from ``sent_at``."""
    for name in ("expires_in", "expires"):
        if source.get(name) not in (None, ""):
            return _seconds(source.get(name))
    for name in ("expires_at", "expires_on"):
        absolute = _number(source.get(name))
        if absolute is not None and absolute > 1_000_000_000:  # Unix time, not a lifetime
            return _seconds(absolute - sent_at)
    return None


def parse_token(
    data: dict[str, Any], *, token_path: str = "", sent_at: float | None = None
) -> TokenResponse | None:
    """The ``TokenResponse`` in a decoded reply, or None when no object in it carries an
    ``access_token``. ``sent_at`` (Unix seconds) is when the request left: absolute
    expiry times are counted from it."""
    source = token_object(data, token_path=token_path)
    if source is None:
        return None
    sent_at = time.time() if sent_at is None else sent_at
    expires_in = _lifetime(source, sent_at=sent_at)
    refresh_token = _text(source.get("refresh_token"))
    if expires_in == 0 and not refresh_token:
        expires_in = None  # "0" with nothing to renew with: the token does not expire
    refresh_lifetime = next(
        (_seconds(source.get(name)) for name in REFRESH_LIFETIME_FIELDS if name in source), None
    )
    scope = source.get("scope", data.get("scope"))
    if isinstance(scope, list):
        scope = " ".join(str(item) for item in scope)
    return TokenResponse(
        access_token=source["access_token"],
        token_type=(_text(source.get("token_type")) or "Bearer")[:40],
        expires_in=expires_in,
        refresh_token=refresh_token,
        refresh_token_expires_in=refresh_lifetime or None,
        scope=_text(scope),
        extra=kept_metadata(data, skip=STANDARD_FIELDS),
    )


# Token types that are HTTP authentication schemes of their own (RFC 9449 DPoP, the
# MAC draft): handed on as sent. Anything else is used as a bearer token.
OWN_SCHEMES = frozenset({"dpop", "mac", "pop"})


def bearer_type(token_type: str | None) -> str:
    """The ``token_type`` to hand integrations: ``Bearer`` for any spelling of bearer
    (some apps answer ``bearer`` yet refuse ``Authorization: bearer …``) and for labels
    that are not HTTP schemes (Slack's ``user`` and ``bot`` tokens are sent as
    ``Bearer``); DPoP and MAC tokens keep their type."""
    if token_type and token_type.strip().lower() in OWN_SCHEMES:
        return token_type.strip()
    return "Bearer"


@dataclass(frozen=True)
class ReadReply:
    """A reply read once: its decoded ``data`` (None: unreadable), its ``error`` and
    the ``token`` it carries (None unless a 2xx reply with no error carries one)."""

    data: dict[str, Any] | None
    error: ReplyError
    token: TokenResponse | None


def read_reply(
    reply: HttpReply, *, token_path: str = "", sent_at: float | None = None
) -> ReadReply:
    """Decode ``reply`` and find its error or its tokens (``sent_at``: Unix seconds the
    request left, for absolute expiry times)."""
    data = decode_body(reply)
    error = error_fields(data) if data is not None else ReplyError()
    token = None
    if data is not None and 200 <= reply.status < 300 and not error.present:
        token = parse_token(data, token_path=token_path, sent_at=sent_at)
    return ReadReply(data, error, token)


def parse_token_response(reply: HttpReply, *, token_path: str = "") -> TokenResponse:
    """The tokens in a 2xx ``reply`` that carries them and no error. Raises
    ``ProviderError`` (with the reply's error code) otherwise; what the refusal means is
    ``oauthflow.outcomes``' to decide (the chain asks it)."""
    read = read_reply(reply, token_path=token_path)
    token, error = read.token, read.error
    if token is None:
        said = error.code or "no access_token in the reply"
        raise ProviderError(f"HTTP {reply.status}: {said}", status=reply.status, error=error.code)
    return token
