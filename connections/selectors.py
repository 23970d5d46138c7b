"""Reads for the portal: always scoped to the signed-in user's Customer."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Max, Min, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from connections.models import ConfigVariable, Connection, Customer, GrantType, Status
from connections.refresh_expiry import refresh_token_lapses_soon
from connections.services import expiry_margin
from connections.transition_log import RENEWAL
from oauthflow.diagnosis import explain
from oauthflow.outcomes import Key, Outcome


def customer_for_user(user: AbstractBaseUser | AnonymousUser) -> Customer:
    """The Customer ``user`` belongs to; 404 for users outside any customer."""
    membership = getattr(user, "customer_membership", None)
    if membership is None:
        raise Http404("Your account does not belong to a customer.")
    return membership.customer


class CustomerState(enum.StrEnum):
    """The states a customer sees, each named once (the value is the label shown).

    Templates compare against the members (``view.state == State.CONNECTED``, with
    ``State`` in the context), never against the words."""

    NOT_CONNECTED = "Not connected"
    DECLINED = "You declined"
    CONNECTING = "Connecting…"
    CONNECTED = "Connected"
    NEEDS_RECONNECTION = "Needs reconnection"
    COULD_NOT_CONNECT = "Could not connect"

    # Django templates call callables; the class must be looked into, not called.
    do_not_call_in_templates = enum.nonmember(True)


@dataclass(frozen=True)
class CustomerView:
    """A connection as a customer sees it: ``state`` a ``CustomerState``; ``reason`` a
    plain sentence ("" when all is well); ``action`` the main button's label ("" for
    no button, e.g. while connecting); ``primary`` whether that button is the filled
    one (the customer should press it); ``tone`` a CSS hint."""

    state: CustomerState
    tone: str
    reason: str
    action: str
    can_disconnect: bool
    primary: bool = True


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
    if config_variable is None or config_variable.status not in Status.attention():
        return ""
    key = Key.of(config_variable.diagnosis)
    if config_variable.status == Status.ERROR and key.outcome is Outcome.TRANSIENT:
        # A failed first connect is not retried by itself: the customer must try again.
        return "The app had a problem or could not be reached. Please try again in a few minutes."
    return explain(key, app=config_variable.connection.app).customer_message


def customer_view(config_variable: ConfigVariable | None) -> CustomerView:
    """How ``config_variable`` is shown in the portal (None: never connected)."""
    if config_variable is None:
        return CustomerView(
            CustomerState.NOT_CONNECTED, "none", "", "Connect", can_disconnect=False
        )
    status = config_variable.status
    reason = customer_reason(config_variable)
    if status == Status.EXCHANGING:
        return CustomerView(CustomerState.CONNECTING, "busy", "", "", can_disconnect=False)
    if status in Status.working():
        note = "We are having trouble renewing access and keep trying." if reason else ""
        if not note and reconnect_failed(config_variable):
            said = explain(Key.of(config_variable.diagnosis)).customer_message
            note = (
                f"Your last reconnect did not complete: {said} Your existing connection "
                "still works."
            )
        lapsing = not note and refresh_token_lapses_soon(config_variable)
        if lapsing:
            lapses = config_variable.refresh_token_expires_at
            note = (
                f"This connection stops working at {lapses:%Y-%m-%d %H:%M} UTC unless you "
                "press Reconnect before then."
            )
        # Healthy: Reconnect is there but not the button to press (unless it must be).
        return CustomerView(
            CustomerState.CONNECTED, "ok", note, "Reconnect", can_disconnect=True, primary=lapsing
        )
    if status == Status.REAUTHORIZATION_REQUIRED:
        return CustomerView(
            CustomerState.NEEDS_RECONNECTION, "bad", reason, "Reconnect", can_disconnect=True
        )
    if status == Status.ERROR:
        # The admin's "Error": the same state, named the way the customer sees it.
        return CustomerView(
            CustomerState.COULD_NOT_CONNECT, "bad", reason, "Try again", can_disconnect=False
        )
    if declined(config_variable):
        return CustomerView(CustomerState.DECLINED, "none", reason, "Connect", can_disconnect=False)
    return CustomerView(CustomerState.NOT_CONNECTED, "none", "", "Connect", can_disconnect=False)


HISTORY_WORDS: dict[str, str] = {
    Status.PENDING: "Not connected",
    Status.AUTHORIZING: "Sent to the app to allow access",
    Status.EXCHANGING: "Access allowed; connecting",
    Status.CONNECTED: "Connected",
    Status.FAILING: "Trouble renewing access; retrying",
    Status.REAUTHORIZATION_REQUIRED: "Needs reconnection",
    Status.ERROR: "Could not connect",
    Status.DISCONNECTED: "Disconnected",
}
# A client-credentials Connect has no consent step: the portal fetches a token at once.
CLIENT_CREDENTIALS_WORDS = {**HISTORY_WORDS, Status.EXCHANGING: "Fetching a token"}


def _older_than(row: Mapping[str, Any]) -> Q:
    return Q(created_at__lt=row["created_at"]) | Q(created_at=row["created_at"], id__lt=row["id"])


def _newer_than(row: Mapping[str, Any]) -> Q:
    return Q(created_at__gt=row["created_at"]) | Q(created_at=row["created_at"], id__gt=row["id"])


def renewals_sentence(count: int, first: datetime, last: datetime) -> str:
    """One line for a run of ``count`` kept renewals between ``first`` and ``last`` (UTC).

    No count: the log keeps only the newest few renewals of a connection
    (``connections.transition_log``), so "Renewed 3 times" would be wrong for a
    connection renewed 41 times. "Since" the oldest kept renewal stays true however
    many were pruned before it. An exact count would need a counter written by every
    renewal (a column in the renewal's hot UPDATE) and reset by every other transition,
    for a figure the customer does not act on: that it renews, and when it last did, is
    what tells them the connection works."""
    if count == 1:
        return "Access renewed automatically"
    since = f"{first:%H:%M}" if first.date() == last.date() else f"{first:%Y-%m-%d %H:%M}"
    return f"Renewed repeatedly since {since} (last {last:%H:%M})"


def customer_history(
    config_variable: ConfigVariable, *, limit: int = 10, words: Mapping[str, str] | None = None
) -> list[tuple]:
    """The newest ``limit`` events in customer words, newest first: (UTC time, sentence).

    Each run of renewals between two other events is one line ("Renewed repeatedly
    since 09:12 (last 16:37)") dated by its last renewal; only the newest few renewals
    are kept (``renewals_sentence`` says what that means for the words). At most
    ``limit`` + 2 queries, none reading a run's rows: a run is counted by the database.
    """
    client_credentials = config_variable.connection.grant_type == GrantType.CLIENT_CREDENTIALS
    if words is None:  # the customer's words; the admin passes the status labels
        words = CLIENT_CREDENTIALS_WORDS if client_credentials else HISTORY_WORDS
    transitions = config_variable.transitions.all()  # newest first
    events = list(
        transitions.exclude(RENEWAL).values("id", "created_at", "from_status", "to_status")[:limit]
    )
    history: list[tuple] = []
    newer: Mapping[str, Any] | None = None
    for event in [*events, None]:
        if event is None and len(events) == limit:
            break  # the renewals before the oldest shown event are past the limit
        run = transitions.filter(RENEWAL)
        if newer is not None:
            run = run.filter(_older_than(newer))
        if event is not None:
            run = run.filter(_newer_than(event))
        seen = run.order_by().aggregate(
            count=Count("id"), first=Min("created_at"), last=Max("created_at")
        )
        if seen["count"]:
            sentence = renewals_sentence(seen["count"], seen["first"], seen["last"])
            history.append((seen["last"], sentence))
        if event is not None:
            said = words.get(event["to_status"], event["to_status"])
            if event["from_status"] == event["to_status"] == Status.CONNECTED:
                said = "Reconnected"  # a Reconnect of a working connection
            history.append((event["created_at"], said))
        newer = event
    return history[:limit]


@dataclass(frozen=True)
class TokenTimes:
    """When the access token stops being used and why, for the connection page.

    ``use_until`` is our stored expiry (``expires_at``); ``app_expiry`` the app's own,
    ``margin`` seconds later; ``lifetime`` the seconds the app gave the token (None when
    unknown, e.g. no renewal time recorded)."""

    use_until: datetime
    app_expiry: datetime
    margin: int
    lifetime: int | None


def token_times(config_variable: ConfigVariable) -> TokenTimes | None:
    """The access token's expiry both ways: ours (with the safety margin the portal
    keeps) and the app's. None when the app gave no lifetime."""
    expires_at = config_variable.expires_at
    if expires_at is None:
        return None
    issued = config_variable.refreshed_at
    if issued is None or expires_at <= issued:
        margin = expiry_margin(10**9)
        return TokenTimes(expires_at, expires_at + timedelta(seconds=margin), margin, None)
    stored = round((expires_at - issued).total_seconds())
    # expires_at = issued + lifetime - margin(lifetime): find the lifetime back (of two
    # that fit, 4k+3 and 4k+4 s, the rounder one).
    for lifetime in range(stored + expiry_margin(10**9) + 1, stored - 1, -1):
        margin = expiry_margin(lifetime)
        if lifetime - margin == stored:
            return TokenTimes(expires_at, expires_at + timedelta(seconds=margin), margin, lifetime)
    margin = expiry_margin(10**9)
    return TokenTimes(expires_at, expires_at + timedelta(seconds=margin), margin, None)


def version_of(*parts: object) -> str:
    """A short fingerprint of what a live fragment shows: equal means nothing to swap."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def portal_rows(
    *, customer: Customer, connections: QuerySet[Connection] | None = None
) -> list[tuple[Connection, ConfigVariable | None, CustomerView]]:
    """Every Connection (or those of ``connections``: a connect session's) with this
    customer's ConfigVariable for it (None: never connected) and how to show it."""
    mine = {
        cv.connection_id: cv
        for cv in ConfigVariable.objects.filter(customer=customer).select_related("connection__app")
    }
    if connections is None:
        connections = Connection.objects.all()
    connections = connections.select_related("app").order_by("name")
    return [
        (connection, mine.get(connection.pk), customer_view(mine.get(connection.pk)))
        for connection in connections
    ]


def config_variable_for_customer(*, customer: Customer, pk: object) -> ConfigVariable:
    """The customer's own ConfigVariable ``pk``; another customer's is a 404, not a 403."""
    return get_object_or_404(
        ConfigVariable.objects.select_related("connection__app"), pk=pk, customer=customer
    )
