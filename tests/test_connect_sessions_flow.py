"""A connect session end to end in Django's test client: open the link, Connect, the
app's callback, the finish page; and what a bound browser may not do."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
import standardwebhooks
from django.test import Client
from django.urls import reverse

from connect_sessions.models import ConnectSession, ReturnUrlAllowed, SessionOutcome
from connect_sessions.services import EndUser, connect_session_create, customer_for_external_id
from connections.models import ConfigVariable, GrantType, Status
from tests.factories import AppFactory, ConfigVariableFactory, ConnectionFactory
from webhooks.models import EventType
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://app.example.com/oauth2/token"
RETURN_URL = "https://host.example.com/integrations/done?tab=crm"
HOOK_URL = "https://hooks.example.com/portal"


@pytest.fixture
def crm():
    ReturnUrlAllowed.objects.create(url="https://host.example.com/integrations")
    return ConnectionFactory(slug="crm", name="CRM")


@pytest.fixture
def customer():
    return customer_for_external_id(external_id="tenant-42", name="Acme")


def _session(customer, slugs, **overrides):
    values = {
        "customer": customer,
        "end_user": EndUser(id="u-7", email="ann@acme.example", display_name="Ann"),
        "connection_slugs": slugs,
        "return_url": RETURN_URL,
    }
    return connect_session_create(**{**values, **overrides})


def _opened(issued) -> Client:
    browser = Client()
    response = browser.get(reverse("connect_sessions:open", args=[issued.token]))
    assert response.status_code == 302
    return browser


def _connect(browser: Client, slug: str) -> str:
    """Press Connect; the state the app is sent."""
    response = browser.post(reverse("oauthflow:session_connect", args=[slug]))
    assert response.status_code == 302, response.content
    return parse_qs(urlsplit(response["Location"]).query)["state"][0]


def _callback(browser: Client, capture, **params):
    with capture(execute=True):
        return browser.get(reverse("oauthflow:callback"), params)


def _token_reply():
    responses.post(TOKEN_URL, json={"access_token": "at-1", "refresh_token": "rt-1"})


@responses.activate
def test_redirect_mode_ends_at_the_return_url_with_the_outcome(
    crm, customer, django_capture_on_commit_callbacks
):
    _token_reply()
    issued = _session(customer, ["crm"])
    browser = _opened(issued)
    page = browser.get(reverse("connect_sessions:page"))
    assert "CRM" in page.text
    assert "Ann" in page.text
    assert page["Cross-Origin-Opener-Policy"] == "unsafe-none"
    state = _connect(browser, "crm")
    response = _callback(browser, django_capture_on_commit_callbacks, code="c-1", state=state)
    assert response["Location"] == reverse("connect_sessions:finish")
    cv = ConfigVariable.objects.get()
    assert cv.status == Status.CONNECTED
    assert cv.customer == customer
    done = browser.get(reverse("connect_sessions:finish"))
    assert done.status_code == 302
    target = urlsplit(done["Location"])
    assert target.netloc == "host.example.com"
    assert target.path == "/integrations/done"
    assert parse_qs(target.query) == {
        "tab": ["crm"],
        "config_variable_id": [str(cv.pk)],
        "outcome": ["connected"],
    }
    session = ConnectSession.objects.get()
    assert session.finished_at is not None
    assert session.outcome == SessionOutcome.CONNECTED
    assert session.config_variable == cv
    # Finished: the browser is unbound; no further Connect, the pages are gone.
    assert browser.post(reverse("oauthflow:session_connect", args=["crm"])).status_code == 410
    assert browser.get(reverse("connect_sessions:page")).status_code == 410
    assert browser.get(reverse("connect_sessions:finish")).status_code == 410


@responses.activate
def test_popup_mode_posts_to_the_exact_origin_of_the_return_url(
    crm, customer, django_capture_on_commit_callbacks
):
    _token_reply()
    issued = _session(customer, ["crm"], mode="popup")
    browser = _opened(issued)
    state = _connect(browser, "crm")
    _callback(browser, django_capture_on_commit_callbacks, code="c-1", state=state)
    done = browser.get(reverse("connect_sessions:finish"))
    assert done.status_code == 200
    assert done["Cross-Origin-Opener-Policy"] == "unsafe-none"
    data = json.loads(
        re.search(
            r'<script id="connect-result" type="application/json">(.*?)</script>', done.text
        ).group(1)
    )
    cv = ConfigVariable.objects.get()
    assert data == {
        "target_origin": "https://host.example.com",
        "message": {
            "source": "connection-portal",
            "event": "connected",
            "config_variable_id": str(cv.pk),
            "outcome": "connected",
        },
    }
    assert 'postMessage(result.message, "*")' not in done.text
    nonce = re.search(r'<script nonce="([^"]+)">', done.text).group(1)
    assert f"'nonce-{nonce}'" in done["Content-Security-Policy"]
    assert "window.opener.postMessage(result.message, result.target_origin)" in done.text


def test_access_denied_at_the_app_ends_the_session_denied(
    crm, customer, django_capture_on_commit_callbacks
):
    issued = _session(customer, ["crm"])
    browser = _opened(issued)
    state = _connect(browser, "crm")
    response = _callback(
        browser, django_capture_on_commit_callbacks, error="access_denied", state=state
    )
    assert response["Location"] == reverse("connect_sessions:finish")
    done = browser.get(reverse("connect_sessions:finish"))
    assert parse_qs(urlsplit(done["Location"]).query)["outcome"] == ["denied"]
    assert ConnectSession.objects.get().outcome == SessionOutcome.DENIED


@responses.activate
def test_a_failed_exchange_ends_the_session_in_error(
    crm, customer, django_capture_on_commit_callbacks
):
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    browser = _opened(_session(customer, ["crm"]))
    state = _connect(browser, "crm")
    _callback(browser, django_capture_on_commit_callbacks, code="c-1", state=state)
    done = browser.get(reverse("connect_sessions:finish"))
    assert parse_qs(urlsplit(done["Location"]).query)["outcome"] == ["error"]


def test_the_finish_page_waits_while_the_exchange_runs(crm, customer):
    browser = _opened(_session(customer, ["crm"]))
    state = _connect(browser, "crm")
    # No on-commit execution: the exchange has not run yet (a worker would run it).
    browser.get(reverse("oauthflow:callback"), {"code": "c-1", "state": state})
    waiting = browser.get(reverse("connect_sessions:finish"))
    assert waiting.status_code == 200
    assert "Finishing your connection to CRM" in waiting.text
    assert browser.get(reverse("connect_sessions:finish_live")).status_code == 204
    ConfigVariable.objects.update(status=Status.CONNECTED, pending_code=None)
    live = browser.get(reverse("connect_sessions:finish_live"))
    assert live["HX-Refresh"] == "true"
    assert ConnectSession.objects.get().outcome == SessionOutcome.CONNECTED


@responses.activate
def test_client_credentials_connect_goes_to_the_finish_page(
    customer, crm, django_capture_on_commit_callbacks
):
    machine = ConnectionFactory(
        slug="machine",
        grant_type=GrantType.CLIENT_CREDENTIALS,
        app=AppFactory(grant_type=GrantType.CLIENT_CREDENTIALS, authorize_url=""),
    )
    responses.post(TOKEN_URL, json={"access_token": "at-cc", "expires_in": 3600})
    browser = _opened(_session(customer, ["machine"]))
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(reverse("oauthflow:session_connect", args=["machine"]))
    assert response["Location"] == reverse("connect_sessions:finish")
    assert ConfigVariable.objects.get(connection=machine).status == Status.CONNECTED
    done = browser.get(reverse("connect_sessions:finish"))
    assert parse_qs(urlsplit(done["Location"]).query)["outcome"] == ["connected"]


def test_a_bound_browser_can_not_connect_a_connection_it_was_not_allowed(crm, customer):
    other = ConnectionFactory(slug="other")
    browser = _opened(_session(customer, ["crm"]))
    assert browser.post(reverse("oauthflow:session_connect", args=[other.slug])).status_code == 404
    assert not ConfigVariable.objects.exists()
    assert "other" not in browser.get(reverse("connect_sessions:page")).text.lower()


def test_a_bound_browser_sees_nothing_of_the_portal_or_other_customers(crm, customer):
    theirs = ConfigVariableFactory(connection=crm)  # another customer's
    browser = _opened(_session(customer, ["crm"]))
    # The portal's pages need a portal login; the session is not one.
    for url in (
        reverse("connections:portal"),
        reverse("connections:detail", args=[theirs.pk]),
        reverse("connections:status", args=[theirs.pk]),
    ):
        assert browser.get(url).status_code == 302  # to the login page
    _connect(browser, "crm")
    mine = ConfigVariable.objects.exclude(pk=theirs.pk).get()
    assert mine.customer == customer  # never the other customer's connection
    theirs.refresh_from_db()
    assert theirs.status == Status.PENDING


def test_an_unbound_browser_is_sent_to_log_in(crm):
    response = Client().post(reverse("oauthflow:connect", args=["crm"]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@responses.activate
def test_the_webhook_names_the_customers_external_id_and_the_end_user(
    crm, customer, django_capture_on_commit_callbacks
):
    _token_reply()
    received = []

    def receive(request):
        received.append(request)
        return (200, {}, "")

    responses.add_callback(responses.POST, HOOK_URL, callback=receive)
    _, secret = endpoint_create(name="Host", url=HOOK_URL, events=[EventType.CREATED])
    issued = _session(customer, ["crm"])
    browser = _opened(issued)
    state = _connect(browser, "crm")
    _callback(browser, django_capture_on_commit_callbacks, code="c-1", state=state)
    assert len(received) == 1
    request = received[0]
    payload = standardwebhooks.Webhook(secret).verify(request.body, dict(request.headers))
    data = payload["data"]
    assert data["customer"]["external_id"] == "tenant-42"
    assert data["end_user"] == {"id": "u-7", "email": "ann@acme.example", "display_name": "Ann"}
    assert issued.token not in request.body.decode()
    assert "at-1" not in request.body.decode()


def test_a_bound_browser_types_customer_inputs_like_a_portal_user(customer, crm):
    zendesk = ConnectionFactory(
        slug="zendesk",
        app=AppFactory(
            authorize_url="https://{subdomain}.zendesk.com/oauth/authorizations/new",
            token_url="https://{subdomain}.zendesk.com/oauth/tokens",
            customer_inputs=[
                {"name": "subdomain", "label": "Your subdomain", "pattern": "^[a-z0-9-]{1,63}$"}
            ],
            allowed_host_suffix="zendesk.com",
        ),
    )
    browser = _opened(_session(customer, ["zendesk"]))
    form = browser.post(reverse("oauthflow:session_connect", args=["zendesk"]))
    assert form.status_code == 200
    assert "Your subdomain" in form.text
    assert f'href="{reverse("connect_sessions:page")}"' in form.text  # back to the session
    bad = browser.post(
        reverse("oauthflow:session_connect", args=["zendesk"]), {"inputs": "1", "subdomain": "a b"}
    )
    assert bad.status_code == 400
    response = browser.post(
        reverse("oauthflow:session_connect", args=["zendesk"]), {"inputs": "1", "subdomain": "acme"}
    )
    assert response["Location"].startswith("https://acme.zendesk.com/oauth/authorizations/new?")
    cv = ConfigVariable.objects.get(connection=zendesk)
    assert cv.customer == customer
    assert ConnectSession.objects.get().config_variable == cv


def test_a_bound_browser_is_never_pointed_at_the_portal_login(crm, customer):
    """The header of an end user's pages does not link to the portal (which would ask
    for a login they do not have)."""
    browser = _opened(_session(customer, ["crm"]))
    page = browser.get(reverse("connect_sessions:page"), follow=True)
    assert page.status_code == 200
    portal = reverse("connections:portal")
    assert f'href="{portal}"' not in page.content.decode()


def test_an_abandoned_connect_ends_in_error_once_no_callback_can_come(crm, customer, settings):
    """Connect pressed, consent never given: once the session has expired and the
    state's max age has passed, the finish page ends with outcome error; the poll stops."""
    from datetime import timedelta

    from django.utils import timezone

    settings.OAUTH_STATE_MAX_AGE = 600
    browser = _opened(_session(customer, ["crm"]))
    _connect(browser, "crm")
    waiting = browser.get(reverse("connect_sessions:finish"))
    assert "Finishing your connection to CRM" in waiting.text
    now = timezone.now()
    # Expired, but the state (issued 5 minutes ago) could still come back: keep waiting.
    ConnectSession.objects.update(
        expires_at=now - timedelta(seconds=1), begun_at=now - timedelta(minutes=5)
    )
    assert browser.get(reverse("connect_sessions:finish_live")).status_code == 204
    ConnectSession.objects.update(begun_at=now - timedelta(minutes=11))
    live = browser.get(reverse("connect_sessions:finish_live"))
    assert live["HX-Refresh"] == "true"
    done = browser.get(reverse("connect_sessions:finish"))
    assert parse_qs(urlsplit(done["Location"]).query)["outcome"] == ["error"]
    assert ConnectSession.objects.get().outcome == SessionOutcome.ERROR
