"""The customer portal: the list of Connections and each connection's page.

Both pages stay true while open: htmx polls a server-rendered fragment of each
(``…/live``) and swaps it in. The page sends the fingerprint of what it shows
(``X-Live-Version``); an unchanged fragment is a 204, so nothing is swapped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from connections.models import ConfigVariable, Customer, Status
from connections.selectors import (
    CustomerState,
    config_variable_for_customer,
    customer_for_user,
    customer_history,
    customer_view,
    portal_rows,
    token_times,
    version_of,
)
from oauthflow.revocation import config_variable_disconnect_revoking

# Seconds between polls of a live fragment: quicker while a Connect is finishing.
POLL_SECONDS = 5
POLL_SECONDS_IN_PROGRESS = 1
LIVE_VERSION_HEADER = "X-Live-Version"


def live_fragment(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A fragment polled by htmx: GET only, never cached; a signed-out poll is a 401
    that asks htmx to reload the page once (``HX-Refresh``), which lands on the login
    page instead of swapping it into the fragment."""

    @wraps(view)
    @require_GET
    @never_cache
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            response = HttpResponse("Signed out.", status=401, content_type="text/plain")
            response["HX-Refresh"] = "true"
            return response
        return view(request, *args, **kwargs)

    return wrapped


def _unchanged(request: HttpRequest, context: dict[str, Any]) -> bool:
    return request.headers.get(LIVE_VERSION_HEADER) == context["version"]


def _portal_context(customer: Customer) -> dict[str, Any]:
    rows = portal_rows(customer=customer)
    in_progress = any(view.state == CustomerState.CONNECTING for _, _, view in rows)
    version = version_of(
        [
            (c.pk, c.name, c.description, c.app.name, cv and cv.pk, cv and cv.refresh_at, view)
            for c, cv, view in rows
        ]
    )
    return {
        "customer": customer,
        "rows": rows,
        "State": CustomerState,
        "poll_seconds": POLL_SECONDS_IN_PROGRESS if in_progress else POLL_SECONDS,
        "version": version,
    }


def _detail_context(customer: Customer, config_variable: ConfigVariable) -> dict[str, Any]:
    view = customer_view(config_variable)
    history = customer_history(config_variable)
    times = token_times(config_variable)
    in_progress = config_variable.status in Status.in_progress()
    cv = config_variable
    version = version_of(
        view,
        history,
        times,
        cv.scopes_granted,
        cv.refresh_at,
        cv.refreshed_at,
        cv.refresh_token_expires_at,
    )
    return {
        "customer": customer,
        "cv": config_variable,
        "in_progress": in_progress,
        "view": view,
        "history": history,
        "times": times,
        "State": CustomerState,
        "poll_seconds": POLL_SECONDS_IN_PROGRESS if in_progress else POLL_SECONDS,
        "version": version,
    }


@login_required
def portal(request: HttpRequest) -> HttpResponse:
    if request.user.is_staff and not hasattr(request.user, "customer_membership"):
        return redirect("admin:index")  # staff without a customer belong in the admin
    customer = customer_for_user(request.user)
    return render(request, "connections/portal.html", _portal_context(customer))


@live_fragment
def portal_live(request: HttpRequest) -> HttpResponse:
    """The portal list's cards, polled by the open list page (204: nothing changed)."""
    context = _portal_context(customer_for_user(request.user))
    if _unchanged(request, context):
        return HttpResponse(status=204)
    return render(request, "connections/_portal_live.html", context)


@login_required
def config_variable_detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    customer = customer_for_user(request.user)
    config_variable = config_variable_for_customer(customer=customer, pk=pk)
    return render(
        request, "connections/config_variable.html", _detail_context(customer, config_variable)
    )


@live_fragment
def config_variable_live(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """The connection page's status and history, polled by the open page (204: nothing
    changed; another customer's connection: 404)."""
    customer = customer_for_user(request.user)
    config_variable = config_variable_for_customer(customer=customer, pk=pk)
    context = _detail_context(customer, config_variable)
    if _unchanged(request, context):
        return HttpResponse(status=204)
    return render(request, "connections/_config_variable_live.html", context)


@login_required
def config_variable_status(request: HttpRequest, pk: uuid.UUID) -> JsonResponse:
    """The status as JSON, polled by the connection page while a flow is in progress."""
    customer = customer_for_user(request.user)
    config_variable = config_variable_for_customer(customer=customer, pk=pk)
    return JsonResponse(
        {
            "status": config_variable.status,
            "label": config_variable.get_status_display(),
            "in_progress": config_variable.status in Status.in_progress(),
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
