"""Connect sessions: creating them (the API's service), the allow-list, and the link
that works once, until it expires."""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connect_sessions.models import ConnectSession, ReturnUrlAllowed
from connect_sessions.services import (
    ConnectSessionRejected,
    EndUser,
    connect_session_create,
    connect_session_open,
    customer_for_external_id,
)
from connections.models import Customer
from tests.factories import ConfigVariableFactory, ConnectionFactory, CustomerFactory

pytestmark = pytest.mark.django_db

RETURN_URL = "https://app.example.com/integrations/done?tab=crm"


@pytest.fixture
def allowed():
    return ReturnUrlAllowed.objects.create(url="https://app.example.com/integrations")


@pytest.fixture
def crm():
    return ConnectionFactory(slug="crm")


def _create(customer, connection, **overrides):
    values = {
        "customer": customer,
        "end_user": EndUser(id="u-7", email="ann@acme.example", display_name="Ann"),
        "connection_slugs": [connection.slug],
        "return_url": RETURN_URL,
    }
    return connect_session_create(**{**values, **overrides})


def _without_nonce(html: str) -> str:
    return re.sub(r'nonce="[^"]*"', "", html)


def _rejected(field: str, **kwargs) -> ConnectSessionRejected:
    with pytest.raises(ConnectSessionRejected) as caught:
        _create(**kwargs)
    assert caught.value.field == field
    assert ConnectSession.objects.count() == 0  # nothing written
    return caught.value


# --- creating ------------------------------------------------------------------------


def test_a_session_answers_a_token_link_and_expiry_and_stores_only_the_hash(allowed, crm, settings):
    settings.CONNECT_SESSION_SECONDS = 600
    before = timezone.now()
    issued = _create(CustomerFactory(), crm)
    assert issued.token.startswith("cst_")
    assert len(issued.token) > 40
    assert issued.connect_link.endswith(f"/connect/{issued.token}")
    assert issued.connect_link.startswith("http")
    assert timedelta(seconds=599) < issued.expires_at - before <= timedelta(seconds=601)
    row = ConnectSession.objects.get()
    assert row.token_hash == hashlib.sha256(issued.token.encode()).hexdigest()
    # The token is nowhere in the row in the clear.
    stored = " ".join(str(value) for value in ConnectSession.objects.values().get().values())
    assert issued.token not in stored
    assert issued.token[4:] not in stored
    assert list(row.connections.all()) == [crm]
    assert row.end_user == {"id": "u-7", "email": "ann@acme.example", "display_name": "Ann"}


def test_the_link_is_built_on_the_public_callback_urls_origin(settings):
    settings.OAUTH_PUBLIC_CALLBACK_URL = "https://portal.example.org:8443/oauth2/callback"
    ReturnUrlAllowed.objects.create(url="https://app.example.com")
    issued = _create(CustomerFactory(), ConnectionFactory())
    assert issued.connect_link == f"https://portal.example.org:8443/connect/{issued.token}"


def test_customer_for_external_id_gets_or_creates_by_the_integrators_id():
    first = customer_for_external_id(external_id="tenant-42", name="Acme")
    again = customer_for_external_id(external_id="tenant-42", name="Renamed")
    assert first == again
    assert again.name == "Acme"
    unnamed = customer_for_external_id(external_id="tenant-43")
    assert unnamed.name == "tenant-43"
    assert Customer.objects.count() == 2


def test_customer_for_external_id_does_not_adopt_a_customer_by_its_name():
    """Names are display-only: a taken one gets the ID appended, a new customer is made."""
    admins = CustomerFactory(name="Acme")  # made in the admin, no external ID
    created = customer_for_external_id(external_id="tenant-42", name="Acme")
    assert created != admins
    assert created.name == "Acme (tenant-42)"
    assert created.external_id == "tenant-42"
    assert customer_for_external_id(external_id="tenant-42", name="Acme") == created
    with pytest.raises(ConnectSessionRejected) as caught:
        customer_for_external_id(external_id="  ")
    assert caught.value.field == "customer.external_id"


def test_a_return_url_off_the_allow_list_is_rejected_with_its_origin(allowed, crm):
    error = _rejected(
        "return_url",
        customer=CustomerFactory(),
        connection=crm,
        return_url="https://evil.example.net/integrations/done",
    )
    assert "https://evil.example.net" in str(error)
    assert "allowed return URLs" in str(error)


@pytest.mark.parametrize(
    "url",
    [
        "http://app.example.com/integrations/done",  # another scheme
        "https://app.example.com:8443/integrations/done",  # another port
        "https://app.example.com.evil.example/integrations",  # another host
        "https://app.example.com/integrationsX",  # not at a path segment boundary
        "https://app.example.com/other",
        "https://user@app.example.com/integrations",  # credentials in the URL
        "javascript:alert(1)",
        "/integrations/done",  # not absolute
    ],
)
def test_allow_list_matching_is_scheme_host_port_and_path_prefix(allowed, crm, url):
    _rejected("return_url", customer=CustomerFactory(), connection=crm, return_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://app.example.com/integrations",
        "https://APP.example.com:443/integrations/a/b?x=1#top",
    ],
)
def test_allow_list_accepts_urls_under_the_prefix(allowed, crm, url):
    assert _create(CustomerFactory(), crm, return_url=url).session.return_url == url


def test_an_origin_entry_allows_every_path():
    entry = ReturnUrlAllowed(url="http://localhost:8765")
    assert entry.matches("http://localhost:8765/any/where")
    assert not entry.matches("http://localhost:8766/")


def test_unknown_or_no_connections_are_rejected(allowed, crm):
    customer = CustomerFactory()
    error = _rejected(
        "connections", customer=customer, connection=crm, connection_slugs=["crm", "nope"]
    )
    assert "'nope'" in str(error)
    _rejected("connections", customer=customer, connection=crm, connection_slugs=[])


def test_bad_end_user_and_mode_are_rejected(allowed, crm):
    customer = CustomerFactory()
    _rejected("end_user.id", customer=customer, connection=crm, end_user=EndUser(id=""))
    _rejected(
        "end_user.email",
        customer=customer,
        connection=crm,
        end_user=EndUser(id="u", email="not-an-email"),
    )
    _rejected("mode", customer=customer, connection=crm, mode="iframe")


def test_reconnecting_another_customers_connection_is_rejected(allowed, crm):
    theirs = ConfigVariableFactory(connection=crm)
    error = _rejected(
        "reconnect_config_variable_id",
        customer=CustomerFactory(),
        connection=crm,
        reconnect_config_variable_id=theirs.pk,
    )
    assert "no connection" in str(error)
    _rejected(
        "reconnect_config_variable_id",
        customer=CustomerFactory(),
        connection=crm,
        reconnect_config_variable_id=uuid.uuid4(),
    )


def test_reconnecting_a_connection_outside_the_allowed_ones_is_rejected(allowed, crm):
    other = ConfigVariableFactory()  # another Connection
    error = _rejected(
        "reconnect_config_variable_id",
        customer=other.customer,
        connection=crm,
        reconnect_config_variable_id=other.pk,
    )
    assert "not among the session's connections" in str(error)


def test_reconnecting_the_customers_own_connection_is_kept(allowed, crm):
    mine = ConfigVariableFactory(connection=crm)
    issued = _create(mine.customer, crm, reconnect_config_variable_id=mine.pk)
    assert issued.session.reconnect_config_variable == mine


# --- the link ------------------------------------------------------------------------


def test_the_link_opens_once_binds_the_browser_and_drops_the_token_from_the_url(allowed, crm):
    issued = _create(CustomerFactory(name="Acme"), crm)
    browser = Client()
    browser.get("/accounts/login/")  # a session key before the link
    key_before = browser.session.session_key
    response = browser.get(reverse("connect_sessions:open", args=[issued.token]))
    assert response.status_code == 302
    assert response["Location"] == reverse("connect_sessions:page")
    assert issued.token not in response["Location"]
    assert response["Referrer-Policy"] == "no-referrer"
    assert browser.session.session_key != key_before  # cycled: no fixation
    page = browser.get(response["Location"])
    assert page.status_code == 200
    assert crm.name in page.text
    assert "Acme" in page.text
    assert ConnectSession.objects.get().opened_at is not None


def test_a_replayed_link_gets_the_same_page_as_an_unknown_one_and_changes_nothing(allowed, crm):
    issued = _create(CustomerFactory(), crm)
    assert Client().get(reverse("connect_sessions:open", args=[issued.token])).status_code == 302
    opened_at = ConnectSession.objects.get().opened_at
    replay = Client().get(reverse("connect_sessions:open", args=[issued.token]))
    unknown = Client().get(reverse("connect_sessions:open", args=["cst_" + "x" * 43]))
    assert replay.status_code == unknown.status_code == 410
    # The same page (but for the CSP nonce): no hint whether the token existed.
    assert _without_nonce(replay.text) == _without_nonce(unknown.text)
    assert "can no longer be used" in replay.text
    assert ConnectSession.objects.get().opened_at == opened_at
    assert reverse("connect_sessions:page") not in replay.text


def test_an_expired_link_does_not_open(allowed, crm):
    issued = _create(CustomerFactory(), crm)
    ConnectSession.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    browser = Client()
    assert browser.get(reverse("connect_sessions:open", args=[issued.token])).status_code == 410
    assert ConnectSession.objects.get().opened_at is None
    assert browser.get(reverse("connect_sessions:page")).status_code == 410


def test_a_session_expiring_after_it_was_opened_can_not_connect(allowed, crm):
    issued = _create(CustomerFactory(), crm)
    browser = Client()
    browser.get(reverse("connect_sessions:open", args=[issued.token]))
    ConnectSession.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert browser.get(reverse("connect_sessions:page")).status_code == 410
    response = browser.post(reverse("oauthflow:session_connect", args=[crm.slug]))
    assert response.status_code == 410
    assert not crm.config_variables.exists()


def test_two_concurrent_opens_one_wins(allowed, crm, transactional_db):
    issued = _create(CustomerFactory(), crm)
    barrier = threading.Barrier(2)
    results: list[str] = []

    def open_it() -> None:
        barrier.wait()
        try:
            connect_session_open(token=issued.token)
            results.append("won")
        except Exception as exc:  # ConnectSessionUnavailable
            results.append(type(exc).__name__)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=open_it) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ConnectSessionUnavailable", "won"]


def test_a_connect_links_token_is_masked_in_request_logs(allowed, crm):
    from config.logging_filters import redact_query

    issued = _create(CustomerFactory(), crm)
    line = f'"GET /connect/{issued.token} HTTP/1.1" 302 0'
    assert issued.token[4:] not in redact_query(line)
    assert "/connect/[REDACTED]" in redact_query(line)


# --- admin ---------------------------------------------------------------------------


def test_admin_allow_list_add_checks_the_url_and_sessions_are_read_only(admin_client, crm):
    add = reverse("admin:connect_sessions_returnurlallowed_add")
    assert admin_client.get(add).status_code == 200
    bad = admin_client.post(add, {"url": "http://app.example.com/x", "note": ""})
    assert bad.status_code == 200
    assert "loopback" in bad.text  # plain http only to loopback
    good = admin_client.post(add, {"url": "https://app.example.com/embed", "note": "CRM"})
    assert good.status_code == 302
    assert ReturnUrlAllowed.objects.filter(url="https://app.example.com/embed").exists()
    issued = _create(CustomerFactory(), crm, return_url="https://app.example.com/embed/x")
    changelist = reverse("admin:connect_sessions_connectsession_changelist")
    assert admin_client.get(changelist, {"q": "u-7"}).status_code == 200
    change = admin_client.get(
        reverse("admin:connect_sessions_connectsession_change", args=[issued.session.pk])
    )
    assert change.status_code == 200
    assert "u-7" in change.text
    assert issued.token[4:] not in change.text
    assert issued.session.token_hash not in change.text
    assert admin_client.get(reverse("admin:connect_sessions_connectsession_add")).status_code == 403
