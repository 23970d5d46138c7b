"""The customer portal: the list of Connections and each connection's page."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from connections.models import Status
from connections.selectors import (
    config_variable_for_customer,
    customer_for_user,
    customer_history,
    customer_view,
    portal_rows,
)
from oauthflow.revocation import config_variable_disconnect_revoking

# Only the exchange runs while the customer watches; "authorizing" means the customer is
# (or was) at the app's consent page, so polling for it would never end.
IN_PROGRESS = (Status.EXCHANGING,)


@login_required
def portal(request: HttpRequest) -> HttpResponse:
    if request.user.is_staff and not hasattr(request.user, "customer_membership"):
        return redirect("admin:index")  # staff without a customer belong in the admin
    customer = customer_for_user(request.user)
    return render(
        request,
        "connections/portal.html",
        {"customer": customer, "rows": portal_rows(customer=customer)},
    )


@login_required
def config_variable_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    customer = customer_for_user(request.user)
    config_variable = config_variable_for_customer(customer=customer, pk=pk)
    return render(
        request,
        "connections/config_variable.html",
        {
            "customer": customer,
            "cv": config_variable,
            "in_progress": config_variable.status in IN_PROGRESS,
            "view": customer_view(config_variable),
            "history": customer_history(config_variable),
        },
    )


@login_required
def config_variable_status(request: HttpRequest, pk: uuid.UUID) -> JsonResponse:
    """The status as JSON, polled by the connection page while a flow is in progress."""
    customer = customer_for_user(request.user)
    config_variable = config_variable_for_customer(customer=customer, pk=pk)
    return JsonResponse(
        {
            "status": config_variable.status,
            "label": config_variable.get_status_display(),
            "in_progress": config_variable.status in IN_PROGRESS,
        }
    )


@login_required
@require_POST
def disconnect(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    customer = customer_for_user(request.user)
    config_variable = config_variable_for_customer(customer=customer, pk=pk)
    outcome = config_variable_disconnect_revoking(
        config_variable=config_variable, reason=f"Disconnected by {request.user} in the portal."
    )
    messages.success(request, f"{config_variable.connection.name} is disconnected.")
    if outcome.revocation_failed:
        messages.warning(
            request,
            "The app did not confirm that it revoked our access; you can also remove it in "
            "the app's own settings.",
        )
    return redirect("connections:portal")
