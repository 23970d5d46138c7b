"""Who acts in the portal: a signed-in customer user, or a browser bound to a connect
session. The URL decides, never the binding alone:

- The portal's own pages and its Connect (``POST /oauth2/connect/<slug>``) always act for
  the signed-in user's customer (``portal_actor``). Opening a connect link in a browser
  that is signed in to the portal does not change what that user's portal does: a link
  from another tenant can not make the user's own Connect store tokens under that tenant.
- The connect-session pages and the Connect pressed on them
  (``POST /connect-session/connect/<slug>``) act for the bound session's customer
  (``session_actor``), within its allowed Connections.
- The callback acts for whoever started that authorization: a Connect from a
  connect-session page records its state's nonce with the session's ID
  (``flow_started``); ``callback_actor`` finds it again. Any other callback is the
  portal user's.

Binding (``bind``) happens once, when the connect link is opened: the session key is
cycled (no fixation) and the connect session's ID kept in the Django session (beside a
portal login, if any). The finish page drops it (``unbind``) once the session has ended,
so nothing of a finished session stays attached to the browser.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse

from connect_sessions.models import ConnectSession
from connections.models import ConfigVariable, Connection, Customer
from connections.selectors import customer_for_user
from oauthflow.state import state_nonce

SESSION_KEY = "connect_session_id"
FLOWS_KEY = "connect_session_flows"  # state nonce → connect session ID
MAX_FLOWS = 10  # as oauthflow.state.MAX_PENDING: the newest few Connect presses


@dataclass(frozen=True)
class Actor:
    """The customer acted for, and the connect session when the browser is bound to one
    (None: a customer user signed in to the portal)."""

    customer: Customer
    connect_session: ConnectSession | None = None

    def connections(self) -> QuerySet[Connection]:
        """The Connections this actor may connect."""
        if self.connect_session is None:
            return Connection.objects.all()
        return self.connect_session.connections.all()

    def connection(self, slug: str) -> Connection:
        """The Connection ``slug`` if this actor may connect it; else ``Http404``."""
        return get_object_or_404(self.connections().select_related("app"), slug=slug)

    @property
    def home_url(self) -> str:
        """Where "back" leads: the connect-session page, or the portal."""
        if self.connect_session is not None:
            return reverse("connect_sessions:page")
        return reverse("connections:portal")

    def after_connect_url(self, config_variable: ConfigVariable) -> str:
        """Where a Connect (or its callback) lands to watch the outcome."""
        if self.connect_session is not None:
            return reverse("connect_sessions:finish")
        return reverse("connections:detail", args=[config_variable.pk])


def bind(request: HttpRequest, connect_session: ConnectSession) -> None:
    """Tie this browser to ``connect_session`` (a new session key: no fixation)."""
    request.session.cycle_key()
    request.session[SESSION_KEY] = connect_session.pk


def bound_session(request: HttpRequest) -> ConnectSession | None:
    """The connect session this browser opened (finished or expired ones too), or None."""
    pk = request.session.get(SESSION_KEY)
    if not isinstance(pk, int):
        return None
    return (
        ConnectSession.objects.select_related("customer", "config_variable__connection")
        .filter(pk=pk, opened_at__isnull=False)
        .first()
    )


def unbind(request: HttpRequest) -> None:
    """Forget the connect session this browser was bound to (it has ended)."""
    request.session.pop(SESSION_KEY, None)


def portal_actor(request: HttpRequest) -> Actor | None:
    """The signed-in user's customer (``Http404`` for a user outside any customer); None
    for an anonymous browser. A connect-session binding never changes it."""
    if request.user.is_authenticated:
        return Actor(customer=customer_for_user(request.user))
    return None


def session_actor(request: HttpRequest) -> Actor | None:
    """The bound connect session's customer and session (finished or expired ones too:
    the caller checks ``can_connect``); None when this browser opened no connect link."""
    connect_session = bound_session(request)
    if connect_session is None:
        return None
    return Actor(customer=connect_session.customer, connect_session=connect_session)


def flow_started(request: HttpRequest, *, nonce: str, connect_session: ConnectSession) -> None:
    """Record that the authorization whose ``state`` carries ``nonce`` was started from
    ``connect_session``'s page, so its callback acts for that session."""
    flows = dict(request.session.get(FLOWS_KEY, {}))
    flows[nonce] = connect_session.pk
    request.session[FLOWS_KEY] = dict(list(flows.items())[-MAX_FLOWS:])


def callback_actor(request: HttpRequest, *, state: str) -> Actor | None:
    """Who the callback with ``state`` acts for: the connect session that started the
    authorization (``flow_started``; even once it has expired, so a consent begun in
    time still finishes), else the signed-in user (``portal_actor``)."""
    nonce = state_nonce(state)
    flows = dict(request.session.get(FLOWS_KEY, {}))
    pk = flows.pop(nonce, None) if nonce is not None else None
    if pk is not None:
        request.session[FLOWS_KEY] = flows
        connect_session = (
            ConnectSession.objects.select_related("customer").filter(pk=pk).first()
            if isinstance(pk, int)
            else None
        )
        if connect_session is not None:
            return Actor(customer=connect_session.customer, connect_session=connect_session)
    return portal_actor(request)


def keep_opener(response: HttpResponse) -> HttpResponse:
    """Let a popup opened by the integrator's page (another origin) keep its
    ``window.opener`` through the portal's pages: Django's default Cross-Origin-Opener-
    Policy (same-origin) would cut the popup off, and it could not post its outcome."""
    response["Cross-Origin-Opener-Policy"] = "unsafe-none"
    return response
