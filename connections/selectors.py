"""Reads for the portal: always scoped to the signed-in user's Customer."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404
from django.shortcuts import get_object_or_404

from connections.models import ConfigVariable, Connection, Customer, Status
from connections.refresh_expiry import refresh_token_lapses_soon
from oauthflow.diagnosis import explain
from oauthflow.outcomes import Key, Outcome

ATTENTION_STATUSES = (Status.ERROR, Status.REAUTHORIZATION_REQUIRED, Status.FAILING)


def customer_for_user(user: AbstractBaseUser | AnonymousUser) -> Customer:
    """The Customer ``user`` belongs to; 404 for users outside any customer."""
    membership = getattr(user, "customer_membership", None)
    if membership is None:
        raise Http404("Your account does not belong to a customer.")
    return membership.customer


@dataclass(frozen=True)
class CustomerView:
    """A connection as a customer sees it: ``state`` is one of "Not connected",
    "You declined", "Connecting…", "Connected", "Needs reconnection"; ``reason`` a
    plain sentence ("" when all is well); ``action`` the main button's label; ``tone``
    a CSS hint."""

    state: str
    tone: str
    reason: str
    action: str
    can_disconnect: bool


def declined(config_variable: ConfigVariable | None) -> bool:
    """The customer declined consent at the app on their last Connect."""
    return (
        config_variable is not None
        and config_variable.status == Status.PENDING
        and config_variable.diagnosis == Key.CALLBACK_ACCESS_DENIED
    )


def reconnect_failed(config_variable: ConfigVariable | None) -> bool:
    """A working connection whose last Reconnect failed (its tokens were kept): the
    failure is recorded with no renewal failure counted."""
    return (
        config_variable is not None
        and config_variable.status == Status.CONNECTED
        and bool(config_variable.diagnosis)
        and config_variable.failure_count == 0
        and Key.of(config_variable.diagnosis).outcome is not Outcome.BENIGN
    )


def customer_reason(config_variable: ConfigVariable | None) -> str:
    """Why a connection is not working, in plain words for the customer ("" if it is)."""
    if declined(config_variable):
        return explain(Key.CALLBACK_ACCESS_DENIED).customer_message
    if config_variable is None or config_variable.status not in ATTENTION_STATUSES:
        return ""
    key = Key.of(config_variable.diagnosis)
    if config_variable.status == Status.ERROR and key.outcome is Outcome.TRANSIENT:
        # A failed first connect is not retried by itself: the customer must try again.
        return "The app had a problem or could not be reached. Please try again in a few minutes."
    return explain(key, app=config_variable.connection.app).customer_message


def customer_view(config_variable: ConfigVariable | None) -> CustomerView:
    """How ``config_variable`` is shown in the portal (None: never connected)."""
    status = config_variable.status if config_variable else Status.PENDING
    reason = customer_reason(config_variable)
    if status == Status.EXCHANGING:
        return CustomerView("Connecting…", "busy", "", "Connect again", can_disconnect=False)
    if status in (Status.CONNECTED, Status.FAILING):
        note = "We are having trouble renewing access and keep trying." if reason else ""
        if not note and reconnect_failed(config_variable):
            said = explain(Key.of(config_variable.diagnosis)).customer_message
            note = (
                f"Your last reconnect did not complete: {said} Your existing connection "
                "still works."
            )
        if not note and refresh_token_lapses_soon(config_variable):
            lapses = config_variable.refresh_token_expires_at
            note = (
                f"This connection stops working at {lapses:%Y-%m-%d %H:%M} UTC unless you "
                "press Reconnect before then."
            )
        return CustomerView("Connected", "ok", note, "Reconnect", can_disconnect=True)
    if status == Status.REAUTHORIZATION_REQUIRED:
        return CustomerView("Needs reconnection", "bad", reason, "Reconnect", can_disconnect=True)
    if status == Status.ERROR:
        return CustomerView("Not connected", "bad", reason, "Try again", can_disconnect=False)
    if declined(config_variable):
        return CustomerView("You declined", "none", reason, "Connect", can_disconnect=False)
    return CustomerView("Not connected", "none", "", "Connect", can_disconnect=False)


HISTORY_WORDS = {
    Status.PENDING: "Not connected",
    Status.AUTHORIZING: "Sent to the app to allow access",
    Status.EXCHANGING: "Access allowed; connecting",
    Status.CONNECTED: "Connected",
    Status.FAILING: "Trouble renewing access; retrying",
    Status.REAUTHORIZATION_REQUIRED: "Needs reconnection",
    Status.ERROR: "Could not connect",
    Status.DISCONNECTED: "Disconnected",
}


def customer_history(config_variable: ConfigVariable, *, limit: int = 10) -> list[tuple]:
    """The newest ``limit`` events in customer words: (UTC time, sentence)."""
    history = []
    for transition in config_variable.transitions.all()[:limit]:
        words = HISTORY_WORDS.get(transition.to_status, transition.to_status)
        if transition.to_status == transition.from_status == Status.CONNECTED:
            words = "Access renewed automatically"
        history.append((transition.created_at, words))
    return history


def portal_rows(
    *, customer: Customer
) -> list[tuple[Connection, ConfigVariable | None, CustomerView]]:
    """Every Connection with this customer's ConfigVariable for it (None: never
    connected) and how to show it."""
    mine = {
        cv.connection_id: cv
        for cv in ConfigVariable.objects.filter(customer=customer).select_related("connection__app")
    }
    connections = Connection.objects.select_related("app").order_by("name")
    return [
        (connection, mine.get(connection.pk), customer_view(mine.get(connection.pk)))
        for connection in connections
    ]


def config_variable_for_customer(*, customer: Customer, pk: object) -> ConfigVariable:
    """The customer's own ConfigVariable ``pk``; another customer's is a 404, not a 403."""
    return get_object_or_404(
        ConfigVariable.objects.select_related("connection__app"), pk=pk, customer=customer
    )
