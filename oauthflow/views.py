"""The authorize redirect and the OAuth callback (RFC 6749 §4.1.1 and §4.1.2)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from connect_sessions.actor import (
    Actor,
    callback_actor,
    flow_started,
    keep_opener,
    portal_actor,
    session_actor,
)
from connect_sessions.models import SessionOutcome
from connect_sessions.services import (
    ConnectSessionUnavailable,
    connect_session_begin,
    connect_session_finish,
)
from connect_sessions.views import unavailable
from connections.models import Connection, GrantType
from connections.services import (
    config_variable_fetch_start,
    config_variable_get_or_create,
    config_variable_set_inputs,
)
from oauthflow import exchange, inputs, tasks
from oauthflow.diagnosis import explain
from oauthflow.exceptions import AuthorizationDenied, FlowError
from oauthflow.outcomes import Key, classify_callback_error

logger = logging.getLogger(__name__)


def _inputs_form(
    request: HttpRequest,
    actor: Actor,
    connection: Connection,
    values: Mapping[str, object],
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
    # The form posts back to the Connect it came from (the portal's or the session's).
    name = "oauthflow:connect" if actor.connect_session is None else "oauthflow:session_connect"
    context = {
        "form_action": reverse(name, args=[connection.slug]),
        "connection": connection,
        "fields": fields,
        "overall_error": overall,
        "back_url": actor.home_url,
    }
    return render(request, "oauthflow/customer_inputs.html", context, status=status)


def _presented(actor: Actor, response: HttpResponse) -> HttpResponse:
    # A connect session may run in a popup opened by another origin: keep its opener.
    return keep_opener(response) if actor.connect_session is not None else response


@require_POST
def connect(request: HttpRequest, slug: str) -> HttpResponse:
    """The portal's Connect: start connecting the signed-in user's customer to ``slug``
    (``_connect``). A connect-session binding in this browser plays no part
    (``connect_sessions.actor``)."""
    actor = portal_actor(request)
    if actor is None:
        return redirect_to_login(request.get_full_path())
    return _connect(request, actor, slug)


@require_POST
def session_connect(request: HttpRequest, slug: str) -> HttpResponse:
    """The connect-session page's Connect: for the session this browser is bound to,
    only its Connections (others: 404), and only while it is open and unexpired (else
    the 410 page; nothing changes)."""
    actor = session_actor(request)
    if actor is None or actor.connect_session is None or not actor.connect_session.can_connect:
        return unavailable(request)
    return _connect(request, actor, slug)


def _connect(request: HttpRequest, actor: Actor, slug: str) -> HttpResponse:
    """Start connecting the actor's customer to ``slug``: off to the app to consent, or,
    for client credentials, straight to fetching a token. An App with customer inputs
    (a subdomain) first asks for them (``oauthflow.inputs``)."""
    connection = actor.connection(slug)
    session = actor.connect_session
    config_variable = config_variable_get_or_create(customer=actor.customer, connection=connection)
    if inputs.declared(connection.app):
        if "inputs" not in request.POST:
            values = dict(config_variable.customer_inputs)
            return _presented(actor, _inputs_form(request, actor, connection, values, {}))
        submitted = {
            item["name"]: request.POST.get(item["name"], "")
            for item in inputs.declared(connection.app)
        }
        try:
            config_variable_set_inputs(config_variable=config_variable, values=submitted)
        except inputs.InvalidCustomerInput as exc:
            form = _inputs_form(request, actor, connection, submitted, exc.errors, status=400)
            return _presented(actor, form)
    if session is not None:
        try:
            connect_session_begin(connect_session=session, config_variable=config_variable)
        except ConnectSessionUnavailable:
            return unavailable(request)
    if connection.grant_type == GrantType.CLIENT_CREDENTIALS:
        config_variable_fetch_start(config_variable=config_variable)
        transaction.on_commit(
            lambda: tasks.dispatch(
                tasks.renew_config_variable, str(config_variable.pk), force=True, queue="exchange"
            )
        )
        return _presented(actor, redirect(actor.after_connect_url(config_variable)))
    url = exchange.authorization_start(session=request.session, config_variable=config_variable)
    if session is not None:
        flow_started(request, nonce=config_variable.flow_nonce, connect_session=session)
    return _presented(actor, HttpResponseRedirect(url))


@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """Where the app sends the browser back with ``code`` and ``state`` (or ``error``).
    A browser bound to a connect session goes on to its finish page; a refusal at the
    app ends the session (outcome ``denied``, or ``error`` for other errors)."""
    # The OAuth parameters, and the few others an App keeps (QuickBooks' realmId).
    params = {
        name: value for name, value in list(request.GET.dict().items())[:50] if len(name) <= 64
    }
    actor = callback_actor(request, state=params.get("state", ""))
    session = actor.connect_session if actor is not None else None
    try:
        config_variable = exchange.callback_accept(session=request.session, params=params)
    except AuthorizationDenied as exc:
        if session is not None and session.config_variable_id is not None:
            denied = classify_callback_error(exc.error) is Key.CALLBACK_ACCESS_DENIED
            outcome = SessionOutcome.DENIED if denied else SessionOutcome.ERROR
            connect_session_finish(connect_session=session, outcome=outcome)
            return keep_opener(redirect("connect_sessions:finish"))
        if exc.kept_working:
            plain = "Access was not granted; your existing connection was left as it was."
        else:
            plain = explain(classify_callback_error(exc.error)).customer_message
        said = f" (The app said: {exc.description})" if exc.description else ""
        messages.error(request, f"{plain}{said}")
        return redirect("connections:portal")
    except FlowError as exc:
        back = actor.home_url if actor is not None else None
        context = {"reason": str(exc), "back_url": back}
        page = render(request, "oauthflow/callback_error.html", context, status=400)
        return keep_opener(page) if session is not None else page
    transaction.on_commit(
        lambda: tasks.dispatch(tasks.exchange_code, str(config_variable.pk), queue="exchange")
    )
    if session is not None and session.config_variable_id == config_variable.pk:
        return keep_opener(redirect("connect_sessions:finish"))
    return redirect("connections:detail", pk=config_variable.pk)
