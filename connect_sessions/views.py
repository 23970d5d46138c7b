"""The end user's pages: the connect link, the connect-session page, the finish page.

None needs a portal login; the browser is bound to its connect session when it opens
the link, and unbound when the finish page has shown the outcome
(``connect_sessions.actor``). The page's Connect and the callback are ``oauthflow.views``,
which ask the actor where to go next.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from connect_sessions.actor import bind, bound_session, keep_opener, unbind
from connect_sessions.models import ConnectSession, Mode
from connect_sessions.services import (
    ConnectSessionUnavailable,
    connect_session_open,
    connect_session_settle,
    popup_message,
    result_url,
)
from connections.selectors import CustomerState, portal_rows

FINISH_POLL_SECONDS = 1


def unavailable(request: HttpRequest) -> HttpResponse:
    """One page (410) for a link that is unknown, expired, used or ended: it never
    tells which, so it says nothing about whether a token existed."""
    response = render(request, "connect_sessions/unavailable.html", status=410)
    response["Referrer-Policy"] = "no-referrer"
    return keep_opener(response)


@require_GET
@never_cache
def open_link(request: HttpRequest, token: str) -> HttpResponse:
    """``GET /connect/<token>``: spend the link, bind this browser, and move to a URL
    without the token (kept out of history and Referer)."""
    try:
        connect_session = connect_session_open(token=token)
    except ConnectSessionUnavailable:
        return unavailable(request)
    bind(request, connect_session)
    response = redirect("connect_sessions:page")
    response["Referrer-Policy"] = "no-referrer"
    return keep_opener(response)


def _end_user_label(connect_session: ConnectSession) -> str:
    return (
        connect_session.end_user_display_name
        or connect_session.end_user_email
        or connect_session.end_user_id
    )


@require_GET
@never_cache
def session_page(request: HttpRequest) -> HttpResponse:
    """The customer's allowed Connections with Connect buttons (the portal's look)."""
    connect_session = bound_session(request)
    if connect_session is None:
        return unavailable(request)
    if connect_session.finished_at is not None:
        return redirect("connect_sessions:finish")
    if not connect_session.can_connect:
        return unavailable(request)
    rows = portal_rows(
        customer=connect_session.customer, connections=connect_session.connections.all()
    )
    context = {
        "connect_session": connect_session,
        "customer": connect_session.customer,
        "end_user": _end_user_label(connect_session),
        "rows": rows,
        "State": CustomerState,
    }
    return keep_opener(render(request, "connect_sessions/page.html", context))


@require_GET
@never_cache
def finish(request: HttpRequest) -> HttpResponse:
    """Wait for the Connect's outcome (the page polls ``finish_live``), then end the
    session: redirect mode sends the browser to ``return_url`` with
    ``config_variable_id`` and ``outcome``; popup mode posts them to the opener, at
    the return URL's exact origin, and closes the popup."""
    connect_session = bound_session(request)
    if connect_session is None:
        return unavailable(request)
    connect_session = connect_session_settle(connect_session=connect_session)
    if connect_session.finished_at is None:
        config_variable = connect_session.config_variable
        if config_variable is None:
            return redirect("connect_sessions:page")  # nothing started yet
        context = {
            "connect_session": connect_session,
            "connection": config_variable.connection,
            "poll_seconds": FINISH_POLL_SECONDS,
        }
        return keep_opener(render(request, "connect_sessions/finishing.html", context))
    # Ended: the browser keeps nothing of it (connect_sessions.actor); a reload is a 410.
    unbind(request)
    if connect_session.mode == Mode.REDIRECT:
        return keep_opener(HttpResponseRedirect(result_url(connect_session)))
    context = {
        "connect_session": connect_session,
        "popup": popup_message(connect_session),
        "return_url": result_url(connect_session),
    }
    return keep_opener(render(request, "connect_sessions/popup_done.html", context))


@require_GET
@never_cache
def finish_live(request: HttpRequest) -> HttpResponse:
    """Polled by the finish page: 204 while the Connect runs; once it has an outcome,
    ``HX-Refresh`` reloads the page, which then ends the session."""
    connect_session = bound_session(request)
    if connect_session is not None and connect_session.finished_at is None:
        connect_session = connect_session_settle(connect_session=connect_session)
        if connect_session.finished_at is None:
            return HttpResponse(status=204)
    response = HttpResponse("Finished.", content_type="text/plain")
    response["HX-Refresh"] = "true"
    return response
