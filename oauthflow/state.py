"""The OAuth ``state`` parameter: signed, session-bound, expiring and single-use.

The guide's ``state`` is the bare ConfigVariable ID; that lets an attacker splice their
own account into a victim's connection (RFC 6749 §10.12). Ours is a signed, timestamped
value (Django's signing) holding the ConfigVariable ID and a random nonce; the nonce is
also kept in the browser's session and removed on first use, so a state from another
session, a replay, a tamper or an old one (``OAUTH_STATE_MAX_AGE`` seconds) is refused.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core import signing

from oauthflow.exceptions import InvalidState

SALT = "oauthflow.state"
SESSION_KEY = "oauthflow_states"
MAX_PENDING = 10  # flows one browser session may have open at once
MAX_STATE_LENGTH = 1000


@dataclass(frozen=True)
class IssuedState:
    """A ``state`` value and its nonce (the ConfigVariable keeps the newest flow's)."""

    value: str
    nonce: str


@dataclass(frozen=True)
class ConsumedState:
    """What a valid ``state`` carried."""

    config_variable_id: uuid.UUID
    nonce: str


def state_issue(*, session: SessionBase, config_variable_id: uuid.UUID) -> IssuedState:
    """A new ``state`` for ``config_variable_id``, remembered in ``session``."""
    nonce = secrets.token_urlsafe(16)
    pending = dict(session.get(SESSION_KEY, {}))
    pending[nonce] = str(config_variable_id)
    # Keep the newest few only: each Connect press adds one.
    session[SESSION_KEY] = dict(list(pending.items())[-MAX_PENDING:])
    value = signing.dumps({"cv": str(config_variable_id), "n": nonce}, salt=SALT)
    return IssuedState(value=value, nonce=nonce)


def state_consume(*, session: SessionBase, state: str) -> ConsumedState:
    """Check ``state`` and spend it; returns the ConfigVariable ID and nonce it carries.

    Raises ``InvalidState`` with a reason a person can act on.
    """
    if not state:
        raise InvalidState("This sign-in link is incomplete (its state parameter is missing).")
    if len(state) > MAX_STATE_LENGTH:
        raise InvalidState("This sign-in link is damaged (its state parameter is far too long).")
    try:
        payload = signing.loads(state, salt=SALT, max_age=settings.OAUTH_STATE_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise InvalidState("The sign-in took too long and expired. Press Connect again.") from exc
    except signing.BadSignature as exc:
        raise InvalidState("This sign-in link was altered, so it cannot be trusted.") from exc
    if not isinstance(payload, dict) or not {"cv", "n"} <= payload.keys():
        raise InvalidState("This sign-in link was altered, so it cannot be trusted.")
    pending = dict(session.get(SESSION_KEY, {}))
    if pending.get(payload["n"]) != payload["cv"]:
        raise InvalidState(
            "This sign-in was started in another browser session, or was already used. "
            "Press Connect again from the portal."
        )
    del pending[payload["n"]]
    session[SESSION_KEY] = pending
    try:
        return ConsumedState(config_variable_id=uuid.UUID(payload["cv"]), nonce=payload["n"])
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidState("This sign-in link was altered, so it cannot be trusted.") from exc


def state_nonce(state: str) -> str | None:
    """The nonce a ``state`` carries, read without spending or age-checking it; None when
    it is missing, damaged or altered. Only to find which flow a callback belongs to
    (``connect_sessions.actor.callback_actor``): ``state_consume`` still decides."""
    if not state or len(state) > MAX_STATE_LENGTH:
        return None
    try:
        payload = signing.loads(state, salt=SALT)
    except signing.BadSignature:
        return None
    nonce = payload.get("n") if isinstance(payload, dict) else None
    return nonce if isinstance(nonce, str) else None
