"""Who acts in the portal: a signed-in customer user, or a browser bound to a connect
session. One place decides it (``actor_for``) for the Connect and callback views, so a
bound browser reaches only its session's customer and allowed Connections.

Binding (``bind``) happens once, when the connect link is opened: the session key is
cycled (no fixation) and the connect session's ID kept in the Django session.
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

SESSION_KEY = "connect_session_id"


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

    def config_variable(self, pk: object) -> ConfigVariable:
        """This actor's ConfigVariable ``pk``; another customer's, or (bound) one of a
        Connection the session does not allow, is ``Http404``."""
        return get_object_or_404(
            ConfigVariable.objects.select_related("connection__app"),
            pk=pk,
            customer=self.customer,
            connection__in=self.connections(),
        )

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


def actor_for(request: HttpRequest) -> Actor | None:
    """The bound connect session's customer if this browser opened a connect link, else
    the signed-in user's customer (``Http404`` for a user outside any customer); None
    for an anonymous browser."""
    connect_session = bound_session(request)
    if connect_session is not None:
        return Actor(customer=connect_session.customer, connect_session=connect_session)
    if request.user.is_authenticated:
        return Actor(customer=customer_for_user(request.user))
    return None


def keep_opener(response: HttpResponse) -> HttpResponse:
    """Let a popup opened by the integrator's page (another origin) keep its
    ``window.opener`` through the portal's pages: Django's default Cross-Origin-Opener-
    Policy (same-origin) would cut the popup off, and it could not post its outcome."""
    response["Cross-Origin-Opener-Policy"] = "unsafe-none"
    return response
