"""The authorize redirect and the OAuth callback (RFC 6749 §4.1.1 and §4.1.2)."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from connections.models import Connection, GrantType
from connections.selectors import customer_for_user
from connections.services import (
    config_variable_fetch_start,
    config_variable_get_or_create,
    config_variable_set_inputs,
)
from oauthflow import exchange, inputs, tasks
from oauthflow.diagnosis import explain
from oauthflow.exceptions import AuthorizationDenied, FlowError
from oauthflow.outcomes import classify_callback_error

logger = logging.getLogger(__name__)


def _inputs_form(
    request: HttpRequest,
    connection: Connection,
    values: dict[str, object],
    errors: dict[str, str],
    status: int = 200,
) -> HttpResponse:
    fields = [
        {
            "name": item["name"],
            "label": item.get("label") or item["name"],
            "help": item.get("help", ""),
            "value": values.get(item["name"], ""),
            "error": errors.get(item["name"], ""),
        }
        for item in inputs.declared(connection.app)
    ]
    overall = errors.get("__all__", "")
    context = {"connection": connection, "fields": fields, "overall_error": overall}
    return render(request, "oauthflow/customer_inputs.html", context, status=status)


@login_required
@require_POST
def connect(request: HttpRequest, slug: str) -> HttpResponse:
    """Start connecting the user's customer to ``slug``: off to the app to consent, or,
    for client credentials, straight to fetching a token. An App with customer inputs
    (a subdomain) first asks for them (``oauthflow.inputs``)."""
    customer = customer_for_user(request.user)
    connection = get_object_or_404(Connection.objects.select_related("app"), slug=slug)
    config_variable = config_variable_get_or_create(customer=customer, connection=connection)
    if inputs.declared(connection.app):
        if "inputs" not in request.POST:
            return _inputs_form(request, connection, dict(config_variable.customer_inputs), {})
        submitted = {
            item["name"]: request.POST.get(item["name"], "")
            for item in inputs.declared(connection.app)
        }
        try:
            config_variable_set_inputs(config_variable=config_variable, values=submitted)
        except inputs.InvalidCustomerInput as exc:
            return _inputs_form(request, connection, submitted, exc.errors, status=400)
    if connection.grant_type == GrantType.CLIENT_CREDENTIALS:
        config_variable_fetch_start(config_variable=config_variable)
        transaction.on_commit(
            lambda: tasks.dispatch(
                tasks.renew_config_variable, str(config_variable.pk), force=True, queue="exchange"
            )
        )
        return redirect("connections:detail", pk=config_variable.pk)
    url = exchange.authorization_start(session=request.session, config_variable=config_variable)
    return HttpResponseRedirect(url)


@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """Where the app sends the browser back with ``code`` and ``state`` (or ``error``)."""
    # The OAuth parameters, and the few others an App keeps (QuickBooks' realmId).
    params = {name: value for name, value in list(request.GET.items())[:50] if len(name) <= 64}
    try:
        config_variable = exchange.callback_accept(session=request.session, params=params)
    except AuthorizationDenied as exc:
        if exc.kept_working:
            plain = "Access was not granted; your existing connection was left as it was."
        else:
            plain = explain(classify_callback_error(exc.error)).customer_message
        said = f" (The app said: {exc.description})" if exc.description else ""
        messages.error(request, f"{plain}{said}")
        return redirect("connections:portal")
    except FlowError as exc:
        return render(request, "oauthflow/callback_error.html", {"reason": str(exc)}, status=400)
    transaction.on_commit(
        lambda: tasks.dispatch(tasks.exchange_code, str(config_variable.pk), queue="exchange")
    )
    return redirect("connections:detail", pk=config_variable.pk)
