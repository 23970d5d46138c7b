"""What the API writes on a caller's behalf, beyond one existing service call."""

from __future__ import annotations

import uuid

from django.db import transaction

from api.authentication import ApiPrincipal
from connect_sessions.services import (
    ConnectSessionRejected,
    EndUser,
    IssuedConnectSession,
    connect_session_create,
    customer_for_external_id,
)


class CustomerNotAllowed(Exception):
    """A customer key named another customer: it acts for its own customer only."""


def connect_session_issue(
    *,
    principal: ApiPrincipal,
    customer_external_id: str | None,
    customer_name: str,
    end_user: EndUser,
    connection_slugs: list[str],
    return_url: str,
    mode: str,
    reconnect_config_variable_id: uuid.UUID | None,
) -> IssuedConnectSession:
    """A connect session for the caller's customer: a customer key's own (a
    ``customer_external_id`` naming any other customer raises ``CustomerNotAllowed``),
    or for an environment key the customer with ``customer_external_id``, created on
    first use (``ConnectSessionRejected`` with field ``customer`` when it is missing).

    One transaction: a session the service rejects (``ConnectSessionRejected``) leaves
    no customer created for it either."""
    with transaction.atomic():
        if principal.customer is not None:
            customer = principal.customer
            if customer_external_id is not None and customer_external_id != customer.external_id:
                known = (
                    f"external_id {customer.external_id!r}"
                    if customer.external_id
                    else "which has no external_id"
                )
                raise CustomerNotAllowed(
                    f"A customer key creates sessions for its own customer only ({known}); "
                    'leave out "customer" or use an environment key.'
                )
        else:
            if customer_external_id is None:
                raise ConnectSessionRejected(
                    "customer",
                    'An environment key must name the customer: "customer": '
                    '{"external_id": "<your ID for it>", "name": "<its name>"}.',
                )
            customer = customer_for_external_id(
                external_id=customer_external_id, name=customer_name
            )
        return connect_session_create(
            customer=customer,
            end_user=end_user,
            connection_slugs=connection_slugs,
            return_url=return_url,
            mode=mode,
            reconnect_config_variable_id=reconnect_config_variable_id,
        )
