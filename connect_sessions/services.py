"""Connect sessions: created by the integrating backend, opened once by its end user.

``connect_session_create`` is what ``POST /api/v1/connect-sessions`` calls;
``connect_session_open`` what the connect link does; ``connect_session_begin`` runs when
the bound browser presses Connect and ``connect_session_finish`` when the flow has an
outcome. Every write that must happen once (opening, finishing) is a conditional UPDATE,
so two tabs or two requests can never both win.

The session token is ``cst_`` and 43 URL-safe characters (256 random bits); only its
SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from connect_sessions.models import (
    ConnectSession,
    Mode,
    ReturnUrlAllowed,
    SessionOutcome,
    origin_of,
    path_problem,
    url_parts,
)
from connections.models import ConfigVariable, Connection, Customer, Status
from connections.selectors import declined, reconnect_failed

TOKEN_PREFIX = "cst_"  # noqa: S105 - a prefix, not a secret
MAX_ID_LENGTH = 200
MAX_URL_LENGTH = 2000
MAX_CONNECTIONS = 50


@dataclass(frozen=True)
class EndUser:
    """The integrating product's user who will connect: its own ID, and optionally an
    email and a name shown on the connect page and in webhooks."""

    id: str
    email: str = ""
    display_name: str = ""


@dataclass(frozen=True)
class IssuedConnectSession:
    """A new session and its token, which is shown once (only its hash is stored).
    ``connect_link`` is absolute; ``expires_at`` is UTC."""

    session: ConnectSession
    token: str
    connect_link: str
    expires_at: datetime


class ConnectSessionRejected(ValueError):
    """The request to create a session is not acceptable. ``field`` names the input at
    fault (``end_user.id``, ``end_user.email``, ``end_user.display_name``,
    ``customer.external_id``, ``customer.name``, ``connections``,
    ``reconnect_config_variable_id``, ``return_url``, ``mode``); ``str(exc)`` is a
    message for the integrator's developer."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ConnectSessionUnavailable(Exception):
    """The connect link is unknown, expired or already used, or the session has ended.
    One error for all: the end user's page must not tell which."""


def token_hash(token: str) -> str:
    """The stored form of a session token: SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


# --- creating -----------------------------------------------------------------------


def customer_for_external_id(*, external_id: str, name: str = "") -> Customer:
    """The Customer whose ``external_id`` this is, created on first use, named ``name``
    (else the ID). An existing customer keeps its name.

    Customer names are unique in the portal (admins tell customers apart by them), but an
    integrator's display names need not be: a name another customer already has gets the
    ID appended, ``"Acme (tenant-42)"``. The lookup is by ``external_id`` only, so naming
    a customer never reaches an existing one.

    Raises ``ConnectSessionRejected`` for an empty or over-long ID or name."""
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > MAX_ID_LENGTH:
        raise ConnectSessionRejected(
            "customer.external_id",
            f"Give the customer's ID in your product (1 to {MAX_ID_LENGTH} characters).",
        )
    existing = Customer.objects.filter(external_id=external_id).first()
    if existing is not None:
        return existing
    name = (name or "").strip() or external_id
    if len(name) > MAX_ID_LENGTH:
        raise ConnectSessionRejected(
            "customer.name", f"The customer name is longer than {MAX_ID_LENGTH} characters."
        )
    if Customer.objects.filter(name=name).exists():
        suffix = f" ({external_id})"
        name = name[: MAX_ID_LENGTH - len(suffix)] + suffix
    try:
        with transaction.atomic():
            return Customer.objects.create(name=name, external_id=external_id)
    except IntegrityError:
        # Two first sessions for one new customer at once: the other one created it.
        existing = Customer.objects.filter(external_id=external_id).first()
        if existing is None:
            raise ConnectSessionRejected(
                "customer.name",
                f"Another customer is already named {name!r}; give this one another name.",
            ) from None
        return existing


def _checked_end_user(end_user: EndUser) -> EndUser:
    user_id = (end_user.id or "").strip()
    if not user_id or len(user_id) > MAX_ID_LENGTH:
        raise ConnectSessionRejected(
            "end_user.id", f"Give the end user's ID in your product (1 to {MAX_ID_LENGTH} chars)."
        )
    email = (end_user.email or "").strip()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ConnectSessionRejected(
                "end_user.email", f"{email[:100]!r} is not an email address."
            ) from None
    display_name = (end_user.display_name or "").strip()
    if len(display_name) > MAX_ID_LENGTH:
        raise ConnectSessionRejected(
            "end_user.display_name", f"The display name is over {MAX_ID_LENGTH} characters."
        )
    return EndUser(id=user_id, email=email, display_name=display_name)


def _allowed_connections(slugs: list[str]) -> list[Connection]:
    wanted = list(dict.fromkeys(slug.strip() for slug in slugs if isinstance(slug, str)))
    if not wanted or not all(wanted):
        raise ConnectSessionRejected(
            "connections", "Name at least one Connection (by its slug) the end user may connect."
        )
    if len(wanted) > MAX_CONNECTIONS:
        raise ConnectSessionRejected(
            "connections", f"Name at most {MAX_CONNECTIONS} Connections per session."
        )
    found = {c.slug: c for c in Connection.objects.filter(slug__in=wanted)}
    unknown = [slug for slug in wanted if slug not in found]
    if unknown:
        raise ConnectSessionRejected(
            "connections",
            "No Connection with the slug " + ", ".join(repr(s[:100]) for s in unknown) + ".",
        )
    return [found[slug] for slug in wanted]


def return_url_allowed(url: str) -> bool:
    """Whether ``url`` matches an entry of the admin's allow-list
    (``ReturnUrlAllowed.matches``: same scheme, host and port; path prefix)."""
    return any(entry.matches(url) for entry in ReturnUrlAllowed.objects.all())


def _checked_return_url(url: str) -> str:
    url = (url or "").strip()
    if not url or len(url) > MAX_URL_LENGTH or url_parts(url) is None:
        raise ConnectSessionRejected(
            "return_url",
            f"Give the absolute http(s) URL to send the end user back to (at most "
            f"{MAX_URL_LENGTH} characters, no user name or password in it).",
        )
    problem = path_problem(url)
    if problem:
        raise ConnectSessionRejected(
            "return_url", f"{url[:200]} can not be a return URL. {problem}"
        )
    if not return_url_allowed(url):
        raise ConnectSessionRejected(
            "return_url",
            f"{url[:200]} is not on the portal's list of allowed return URLs; an admin adds "
            f"its origin ({origin_of(url)}) or a prefix under Connect sessions → Allowed "
            "return URLs.",
        )
    return url


def _reconnect_target(
    config_variable_id: uuid.UUID | None, customer: Customer, connections: list[Connection]
) -> ConfigVariable | None:
    if config_variable_id is None:
        return None
    # Another customer's connection answers as one that does not exist.
    config_variable = ConfigVariable.objects.filter(
        pk=config_variable_id, customer=customer
    ).first()
    if config_variable is None:
        raise ConnectSessionRejected(
            "reconnect_config_variable_id",
            f"This customer has no connection {config_variable_id}.",
        )
    if config_variable.connection_id not in {c.pk for c in connections}:
        raise ConnectSessionRejected(
            "reconnect_config_variable_id",
            "The connection to reconnect is for a Connection not among the session's "
            "connections; add its slug to them.",
        )
    return config_variable


def portal_url(path: str) -> str:
    """The absolute URL of ``path`` on the portal's public origin: that of
    ``OAUTH_PUBLIC_CALLBACK_URL``. Never the API request's Host: the backend may call the
    API under another name (an internal host, an IP, plain http behind a proxy), and the
    end user's browser must be on the host the app's callback returns to, or the flow's
    session cookie is not there."""
    return origin_of(settings.OAUTH_PUBLIC_CALLBACK_URL) + path


def connect_session_create(
    *,
    customer: Customer,
    end_user: EndUser,
    connection_slugs: list[str],
    return_url: str,
    mode: str = Mode.REDIRECT,
    reconnect_config_variable_id: uuid.UUID | None = None,
) -> IssuedConnectSession:
    """A new connect session for ``end_user`` of ``customer``, allowed to connect the
    Connections ``connection_slugs``, ending at ``return_url`` (``mode`` ``redirect``)
    or with a message to the opener (``popup``). The link works once, for
    ``CONNECT_SESSION_SECONDS`` (default 1800 s).

    Raises ``ConnectSessionRejected`` (nothing is written) for an unknown, empty or
    over-long input, a ``return_url`` that is not allow-listed, or a reconnect
    ConfigVariable of another customer or outside the allowed Connections."""
    end_user = _checked_end_user(end_user)
    if mode not in Mode.values:
        raise ConnectSessionRejected("mode", "mode is 'redirect' or 'popup'.")
    connections = _allowed_connections(list(connection_slugs or []))
    reconnect = _reconnect_target(reconnect_config_variable_id, customer, connections)
    return_url = _checked_return_url(return_url)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        session = ConnectSession.objects.create(
            token_hash=token_hash(token),
            customer=customer,
            end_user_id=end_user.id,
            end_user_email=end_user.email,
            end_user_display_name=end_user.display_name,
            reconnect_config_variable=reconnect,
            return_url=return_url,
            mode=mode,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.CONNECT_SESSION_SECONDS),
        )
        session.connections.set(connections)
    link = portal_url(reverse("connect_sessions:open", args=[token]))
    return IssuedConnectSession(
        session=session, token=token, connect_link=link, expires_at=session.expires_at
    )


# --- using --------------------------------------------------------------------------


def connect_session_open(*, token: str) -> ConnectSession:
    """Spend the link: the session whose token this is, marked opened now.

    One UPDATE … WHERE opened_at IS NULL AND expires_at > now: of two concurrent opens
    exactly one wins. Raises ``ConnectSessionUnavailable`` (nothing changes) for an
    unknown, expired or already opened token."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        raise ConnectSessionUnavailable()
    hashed = token_hash(token)
    now = timezone.now()
    won = ConnectSession.objects.filter(
        token_hash=hashed, opened_at__isnull=True, expires_at__gt=now
    ).update(opened_at=now)
    if won != 1:
        raise ConnectSessionUnavailable()
    return ConnectSession.objects.select_related("customer").get(token_hash=hashed)


def connect_session_begin(
    *, connect_session: ConnectSession, config_variable: ConfigVariable
) -> ConnectSession:
    """Record that the session's end user started connecting ``config_variable``.
    Raises ``ConnectSessionUnavailable`` when the session is finished or expired (a
    conditional UPDATE: a session finishing meanwhile wins)."""
    now = timezone.now()
    updated = ConnectSession.objects.filter(
        pk=connect_session.pk,
        opened_at__isnull=False,
        finished_at__isnull=True,
        expires_at__gt=now,
    ).update(config_variable=config_variable, begun_at=now)
    if updated != 1:
        raise ConnectSessionUnavailable()
    connect_session.config_variable, connect_session.begun_at = config_variable, now
    return connect_session


def connect_session_finish(*, connect_session: ConnectSession, outcome: str) -> ConnectSession:
    """End the session with ``outcome`` (``SessionOutcome``), once: a session already
    finished keeps its first outcome. Returns the session as stored."""
    ConnectSession.objects.filter(pk=connect_session.pk, finished_at__isnull=True).update(
        finished_at=timezone.now(), outcome=outcome
    )
    return ConnectSession.objects.get(pk=connect_session.pk)


def flow_outcome(config_variable: ConfigVariable | None) -> str | None:
    """How the Connect on ``config_variable`` ended (a ``SessionOutcome``), or None
    while it is still at the app or exchanging. A reconnect of a working connection
    keeps ``connected`` throughout, so its pending code tells that it is in flight."""
    if config_variable is None:
        return None
    in_flight = config_variable.status == Status.AUTHORIZING
    if in_flight or config_variable.status in Status.in_progress() or config_variable.pending_code:
        return None
    if declined(config_variable):
        return SessionOutcome.DENIED
    if config_variable.status in Status.working():
        failed = reconnect_failed(config_variable)
        return SessionOutcome.ERROR if failed else SessionOutcome.CONNECTED
    return SessionOutcome.ERROR


def connect_session_settle(*, connect_session: ConnectSession) -> ConnectSession:
    """Finish the session if its Connect has an outcome (``flow_outcome``), or with
    ``error`` once it was abandoned at the app (``_abandoned``); the session as it is
    otherwise."""
    if connect_session.finished_at is not None:
        return connect_session
    config_variable = connect_session.config_variable  # loaded with the session
    outcome = flow_outcome(config_variable)
    if outcome is None and _abandoned(connect_session, config_variable):
        outcome = SessionOutcome.ERROR
    if outcome is None:
        return connect_session
    return connect_session_finish(connect_session=connect_session, outcome=outcome)


def _abandoned(connect_session: ConnectSession, config_variable: ConfigVariable | None) -> bool:
    """Whether the Connect can no longer come back: still waiting at the app, after the
    session expired and the newest state it issued is past ``OAUTH_STATE_MAX_AGE``
    (a consent begun in time may still finish until then)."""
    if config_variable is None or config_variable.status != Status.AUTHORIZING:
        return False  # not started, or the callback came and the exchange will end it
    deadline = connect_session.expires_at
    if connect_session.begun_at is not None:
        state_dies = connect_session.begun_at + timedelta(seconds=settings.OAUTH_STATE_MAX_AGE)
        deadline = max(deadline, state_dies)
    return timezone.now() > deadline


def result_url(connect_session: ConnectSession) -> str:
    """``return_url`` with ``config_variable_id`` and ``outcome`` merged into its query
    (earlier values of the same names replaced; the fragment kept)."""
    parts = urlsplit(connect_session.return_url)
    ours = {"config_variable_id", "outcome"}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
    query += [
        ("config_variable_id", str(connect_session.config_variable_id or "")),
        ("outcome", connect_session.outcome or SessionOutcome.ERROR),
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def popup_message(connect_session: ConnectSession) -> dict[str, str | dict[str, str]]:
    """What the popup posts to its opener, and to which origin (never ``*``):
    ``{"target_origin": …, "message": {"source": "connection-portal", "event":
    "connected" | "error", "config_variable_id": …, "outcome": …}}``."""
    outcome = connect_session.outcome or SessionOutcome.ERROR
    return {
        "target_origin": origin_of(connect_session.return_url),
        "message": {
            "source": "connection-portal",
            "event": "connected" if outcome == SessionOutcome.CONNECTED else "error",
            "config_variable_id": str(connect_session.config_variable_id or ""),
            "outcome": outcome,
        },
    }
