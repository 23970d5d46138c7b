"""Who a Connect acts for when one browser is both signed in to the portal and bound to a
connect session (``connect_sessions.actor``): the URL decides, never the binding alone.
A connect link from another tenant must not take over the portal user's own Connect."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from connect_sessions.models import ConnectSession, ReturnUrlAllowed
from connect_sessions.services import EndUser, connect_session_create, customer_for_external_id
from connections.models import ConfigVariable, Status
from tests.factories import ConnectionFactory, UserFactory

pytestmark = pytest.mark.django_db

RETURN_URL = "https://host.example.com/integrations/done"


@pytest.fixture
def crm():
    ReturnUrlAllowed.objects.create(url="https://host.example.com/integrations")
    return ConnectionFactory(slug="crm", name="CRM")


@pytest.fixture
def attacker():
    """Another tenant, whose key can create connect sessions."""
    return customer_for_external_id(external_id="tenant-x", name="Tenant X")


@pytest.fixture
def victim(customer) -> Client:
    """A portal user of ``customer``, signed in."""
    browser = Client()
    browser.force_login(UserFactory(customer=customer))
    return browser


def _link_opened(browser: Client, customer) -> ConnectSession:
    issued = connect_session_create(
        customer=customer,
        end_user=EndUser(id="evil"),
        connection_slugs=["crm"],
        return_url=RETURN_URL,
    )
    assert browser.get(reverse("connect_sessions:open", args=[issued.token])).status_code == 302
    return issued.session


def _state(response) -> str:
    assert response.status_code == 302, response.content
    return parse_qs(urlsplit(response["Location"]).query)["state"][0]


def test_a_portal_users_own_connect_stays_with_their_customer_after_opening_a_link(
    crm, attacker, customer, victim
):
    session = _link_opened(victim, attacker)
    state = _state(victim.post(reverse("oauthflow:connect", args=["crm"])))
    mine = ConfigVariable.objects.get()
    assert mine.customer == customer
    callback = victim.get(reverse("oauthflow:callback"), {"code": "c-1", "state": state})
    assert callback["Location"] == reverse("connections:detail", args=[mine.pk])
    assert not ConfigVariable.objects.filter(customer=attacker).exists()
    session.refresh_from_db()
    assert session.config_variable is None


def test_a_portal_users_connect_never_answers_410_for_a_finished_session(
    crm, attacker, customer, victim
):
    session = _link_opened(victim, attacker)
    ConnectSession.objects.filter(pk=session.pk).update(expires_at=session.created_at)
    response = victim.post(reverse("oauthflow:connect", args=["crm"]))
    assert response.status_code == 302
    assert ConfigVariable.objects.get().customer == customer


def test_the_session_pages_connect_acts_for_the_session_and_its_callback_finishes_it(
    crm, attacker, victim
):
    session = _link_opened(victim, attacker)
    page = victim.get(reverse("connect_sessions:page"))
    assert reverse("oauthflow:session_connect", args=["crm"]) in page.text
    state = _state(victim.post(reverse("oauthflow:session_connect", args=["crm"])))
    theirs = ConfigVariable.objects.get()
    assert theirs.customer == attacker
    callback = victim.get(reverse("oauthflow:callback"), {"code": "c-1", "state": state})
    assert callback["Location"] == reverse("connect_sessions:finish")
    assert theirs.pk == ConnectSession.objects.get(pk=session.pk).config_variable_id


def test_the_callback_acts_for_whoever_started_the_authorization(crm, attacker, victim):
    """Both Connects on one Connection name: each callback goes where its Connect began."""
    _link_opened(victim, attacker)
    from_session = _state(victim.post(reverse("oauthflow:session_connect", args=["crm"])))
    from_portal = _state(victim.post(reverse("oauthflow:connect", args=["crm"])))
    mine = ConfigVariable.objects.exclude(customer=attacker).get()
    back = victim.get(reverse("oauthflow:callback"), {"code": "c-1", "state": from_portal})
    assert back["Location"] == reverse("connections:detail", args=[mine.pk])
    back = victim.get(reverse("oauthflow:callback"), {"code": "c-2", "state": from_session})
    assert back["Location"] == reverse("connect_sessions:finish")


def test_an_anonymous_bound_browser_gets_no_portal_connect(crm, attacker):
    browser = Client()
    _link_opened(browser, attacker)
    response = browser.post(reverse("oauthflow:connect", args=["crm"]))
    assert response["Location"].startswith(reverse("login"))
    assert not ConfigVariable.objects.exists()


def test_the_session_connect_without_a_bound_session_is_the_410_page(crm, victim):
    response = victim.post(reverse("oauthflow:session_connect", args=["crm"]))
    assert response.status_code == 410
    assert not ConfigVariable.objects.exists()


def test_the_binding_ends_with_the_session(crm, attacker, customer, victim):
    session = _link_opened(victim, attacker)
    _state(victim.post(reverse("oauthflow:session_connect", args=["crm"])))
    ConfigVariable.objects.update(status=Status.CONNECTED)
    done = victim.get(reverse("connect_sessions:finish"))
    assert done.status_code == 302  # to the return URL
    assert ConnectSession.objects.get(pk=session.pk).finished_at is not None
    assert victim.get(reverse("connect_sessions:page")).status_code == 410
    # The portal is the user's own again.
    assert victim.get(reverse("connections:portal")).status_code == 200
    assert victim.post(reverse("oauthflow:connect", args=["crm"])).status_code == 302
    assert ConfigVariable.objects.filter(customer=customer).exists()
