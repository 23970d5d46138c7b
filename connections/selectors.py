"""Reads for the portal: always scoped to the signed-in user's Customer."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404
from django.shortcuts import get_object_or_404

from connections.models import ConfigVariable, Connection, Customer, Status
from oauthflow.diagnosis import explain

ATTENTION_STATUSES = (Status.ERROR, Status.REAUTHORIZATION_REQUIRED, Status.FAILING)


def customer_for_user(user: AbstractBaseUser | AnonymousUser) -> Customer:
    """The Customer ``user`` belongs to; 404 for users outside any customer."""
    membership = getattr(user, "customer_membership", None)
    if membership is None:
        raise Http404("Your account does not belong to a customer.")
    return membership.customer


def customer_reason(config_variable: ConfigVariable | None) -> str:
    """Why a connection is not working, in plain words for the customer ("" if it is)."""
    if config_variable is None or config_variable.status not in ATTENTION_STATUSES:
        return ""
    key = config_variable.diagnosis or "rejected"
    return explain(key, app=config_variable.connection.app).customer_message


def portal_rows(*, customer: Customer) -> list[tuple[Connection, ConfigVariable | None, str]]:
    """Every Connection with this customer's ConfigVariable for it (None: never
    connected) and the plain reason it needs attention ("" when it does not)."""
    mine = {
        cv.connection_id: cv
        for cv in ConfigVariable.objects.filter(customer=customer).select_related("connection__app")
    }
    connections = Connection.objects.select_related("app").order_by("name")
    return [
        (connection, mine.get(connection.pk), customer_reason(mine.get(connection.pk)))
        for connection in connections
    ]


def config_variable_for_customer(*, customer: Customer, pk: object) -> ConfigVariable:
    """The customer's own ConfigVariable ``pk``; another customer's is a 404, not a 403."""
    return get_object_or_404(
        ConfigVariable.objects.select_related("connection__app"), pk=pk, customer=customer
    )
