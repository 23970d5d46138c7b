"""Faults that used to lose a customer's action: a broker that is down, a worker that
died mid-exchange, a Reconnect racing a renewal."""

from __future__ import annotations

import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.db import connection as db_connection
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from connections.models import ConfigVariable, Status
from oauthflow import tasks
from oauthflow.exchange import config_variable_exchange_code
from oauthflow.lease import lease_claim, lease_release
from oauthflow.recovery import Recovery, exchanges_recover
from oauthflow.renewal import config_variables_renew
from tests.factories import ConfigVariableFactory, ConnectionFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://app.example.com/oauth2/token"
TOKENS = {"access_token": "new-access", "refresh_token": "new-refresh", "expires_in": 3600}


@pytest.fixture
def broker_down():
    """A real broker connection to a port where nothing listens (no eager mode)."""
    down = {
        "task_always_eager": False,
        "broker_url": "redis://127.0.0.1:9/0",
        "broker_transport_options": {"max_retries": 0},
        "task_publish_retry": False,
    }
    saved = {name: celery_app.conf[name] for name in down}
    _forget_connections()
    celery_app.conf.update(down)
    yield
    celery_app.conf.update(saved)
    _forget_connections()


def _forget_connections() -> None:
    """Drop the app's cached broker connections: they keep the URL they were made with."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@responses.activate
def test_a_callback_while_the_broker_is_down_still_connects(
    portal_client, broker_down, django_capture_on_commit_callbacks
):
    connection = ConnectionFactory()
    location = portal_client.post(reverse("oauthflow:connect", args=[connection.slug]))["Location"]
    state = parse_qs(urlsplit(location).query)["state"][0]
    responses.post(TOKEN_URL, json=TOKENS)
    with django_capture_on_commit_callbacks(execute=True):
        response = portal_client.get(reverse("oauthflow:callback"), {"code": "c", "state": state})
    assert response.status_code == 302
    cv = ConfigVariable.objects.get()
    assert cv.status == Status.CONNECTED, cv.last_error
    assert cv.pending_code is None


@responses.activate
def test_a_client_credentials_connect_while_the_broker_is_down_still_connects(
    portal_client, broker_down, django_capture_on_commit_callbacks
):
    connection = ConnectionFactory(
        grant_type="client_credentials", app__grant_type="client_credentials"
    )
    responses.post(TOKEN_URL, json={"access_token": "cc", "expires_in": 3600})
    with django_capture_on_commit_callbacks(execute=True):
        response = portal_client.post(reverse("oauthflow:connect", args=[connection.slug]))
    assert response.status_code == 302
    assert ConfigVariable.objects.get().status == Status.CONNECTED


def _reconnecting(portal_client, customer, *, renewal_due: bool = False):
    """A working connection whose customer has just pressed Reconnect: the row and the
    authorize URL the browser was sent to."""
    now = timezone.now()
    cv = ConfigVariableFactory(
        customer=customer,
        connection=ConnectionFactory(app__use_pkce=True),
        status=Status.CONNECTED,
        access_token="old",
        refresh_token="r0",
        expires_at=now + timedelta(seconds=30 if renewal_due else 3600),
        refresh_at=now - timedelta(seconds=1) if renewal_due else now + timedelta(minutes=50),
    )
    url = reverse("oauthflow:connect", args=[cv.connection.slug])
    return cv, portal_client.post(url)["Location"]


@responses.activate
def test_a_renewal_during_a_reconnect_leaves_its_code_and_verifier_alone(portal_client, customer):
    cv, location = _reconnecting(portal_client, customer, renewal_due=True)
    cv.refresh_from_db()
    verifier = cv.code_verifier
    assert verifier
    responses.post(TOKEN_URL, json={"access_token": "renewed", "expires_in": 3600})
    config_variables_renew(config_variable_ids=[cv.pk])  # the customer is at the consent page
    cv.refresh_from_db()
    assert cv.code_verifier == verifier
    state = parse_qs(urlsplit(location).query)["state"][0]
    responses.post(TOKEN_URL, json=TOKENS)
    portal_client.get(reverse("oauthflow:callback"), {"code": "c2", "state": state})
    config_variable_exchange_code(config_variable_id=cv.pk)
    cv.refresh_from_db()
    assert (cv.status, cv.access_token, cv.refresh_token) == (
        Status.CONNECTED,
        "new-access",
        "new-refresh",
    )
    sent = responses.calls[-1].request.body
    sent = sent.decode() if isinstance(sent, bytes) else sent
    assert f"code_verifier={verifier}" in sent
    assert len(responses.calls) == 2  # one renewal, one exchange: no extra requests


@pytest.mark.skipif(
    db_connection.vendor == "sqlite", reason="SQLite's shared in-memory test database locks tables"
)
@pytest.mark.django_db(transaction=True)
@responses.activate
def test_an_exchange_waits_for_a_renewal_holding_the_lease():
    cv = ConfigVariableFactory(status=Status.EXCHANGING, pending_code="the-code")
    lease = lease_claim(config_variable_id=cv.pk)
    responses.post(TOKEN_URL, json=TOKENS)

    def renewal_ends() -> None:
        lease_release(config_variable_id=cv.pk, lease_token=lease)
        db_connection.close()

    timer = threading.Timer(0.5, renewal_ends)
    timer.start()
    config_variable_exchange_code(config_variable_id=cv.pk)
    timer.join()
    cv.refresh_from_db()
    assert cv.status == Status.CONNECTED, cv.last_error


def test_an_exchange_blocked_too_long_tells_the_customer(settings):
    settings.EXCHANGE_LEASE_WAIT = 0.2
    cv = ConfigVariableFactory(status=Status.EXCHANGING, pending_code="the-code")
    lease_claim(config_variable_id=cv.pk, seconds=60)
    with responses.RequestsMock():
        config_variable_exchange_code(config_variable_id=cv.pk)
    cv.refresh_from_db()
    assert (cv.status, cv.diagnosis) == (Status.ERROR, "connection_busy")
    assert cv.pending_code is None


@responses.activate
def test_the_sweep_recovers_a_row_a_dead_worker_left_in_exchanging(settings):
    old = timezone.now() - timedelta(seconds=settings.STUCK_EXCHANGE_AFTER + 5)
    with_code = ConfigVariableFactory(status=Status.EXCHANGING, pending_code="c")
    client_credentials = ConfigVariableFactory(
        status=Status.EXCHANGING,
        connection=ConnectionFactory(
            grant_type="client_credentials", app__grant_type="client_credentials"
        ),
    )
    nothing = ConfigVariableFactory(status=Status.EXCHANGING)
    fresh = ConfigVariableFactory(status=Status.EXCHANGING, pending_code="c")
    ConfigVariable.objects.exclude(pk=fresh.pk).update(updated_at=old)
    decided = dict(exchanges_recover())
    assert decided == {
        with_code.pk: Recovery.EXCHANGE,
        client_credentials.pk: Recovery.FETCH,
        nothing.pk: Recovery.FAILED,
    }
    nothing.refresh_from_db()
    assert (nothing.status, nothing.diagnosis) == (Status.ERROR, "stuck_exchange")
    assert exchanges_recover() == []  # touched: not sent again by the next sweep
    responses.post(TOKEN_URL, json=TOKENS)
    ConfigVariable.objects.filter(pk=with_code.pk).update(updated_at=old)
    tasks.sweep_renewals()  # eager: the recovery's exchange runs here
    with_code.refresh_from_db()
    assert with_code.status == Status.CONNECTED


@responses.activate
def test_a_failed_reconnect_of_a_working_connection_is_told_to_the_customer(
    portal_client, customer
):
    cv, location = _reconnecting(portal_client, customer)
    state = parse_qs(urlsplit(location).query)["state"][0]
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    portal_client.get(reverse("oauthflow:callback"), {"code": "c", "state": state})
    config_variable_exchange_code(config_variable_id=cv.pk)
    cv.refresh_from_db()
    assert (cv.status, cv.access_token) == (Status.CONNECTED, "old")
    page = portal_client.get(reverse("connections:detail", args=[cv.pk])).content.decode()
    assert "Your last reconnect did not complete" in page
    assert "still works" in page


@pytest.mark.skipif(
    db_connection.vendor == "sqlite", reason="SQLite's shared in-memory test database locks tables"
)
@pytest.mark.django_db(transaction=True)
def test_a_slow_renewal_keeps_its_short_lease_alive_and_a_dead_one_frees_the_row(settings):
    import time

    settings.RENEWAL_LEASE_SECONDS = 1
    cv = ConfigVariableFactory(
        status=Status.CONNECTED,
        access_token="a0",
        refresh_token="r0",
        refresh_at=timezone.now() - timedelta(seconds=1),
    )
    taken: list[object] = []

    def slow(request):
        time.sleep(2.5)  # longer than the lease: only the heartbeat keeps it
        taken.append(lease_claim(config_variable_id=cv.pk))  # another worker tries
        return 200, {}, '{"access_token": "a1", "expires_in": 3600}'

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, TOKEN_URL, callback=slow)
        config_variables_renew(config_variable_ids=[cv.pk])
    assert taken == [None]  # the live holder's lease was never free
    db_connection.close()
    # A holder that dies (no heartbeat): its lease frees the row within the lease.
    assert lease_claim(config_variable_id=cv.pk) is not None
    time.sleep(1.2)
    assert lease_claim(config_variable_id=cv.pk) is not None


@responses.activate
def test_a_successful_reconnect_reads_reconnected_not_renewed(portal_client, customer):
    from connections.selectors import customer_history

    cv, location = _reconnecting(portal_client, customer)
    state = parse_qs(urlsplit(location).query)["state"][0]
    responses.post(TOKEN_URL, json=TOKENS)
    portal_client.get(reverse("oauthflow:callback"), {"code": "c", "state": state})
    config_variable_exchange_code(config_variable_id=cv.pk)
    assert next(words for _, words in customer_history(cv)) == "Reconnected"
