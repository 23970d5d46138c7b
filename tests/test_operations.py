"""Operators: the health dashboard, filters, alerts once per incident, /healthz, /metrics."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
import responses
from celery.exceptions import Retry
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from connections.alerts import alert_raise, alert_resolve, webhook_signature
from connections.dashboard import heartbeat_beat
from connections.models import AlertIncident, Heartbeat, Status
from connections.services import config_variable_transition
from connections.tasks import send_alert_webhook
from oauthflow.models import TokenRequest
from tests.factories import ConfigVariableFactory, CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def broken():
    cv = ConfigVariableFactory(status=Status.CONNECTED, customer=CustomerFactory(name="Initech"))
    config_variable_transition(
        config_variable=cv,
        to_status=Status.FAILING,
        reason="503 three times",
        diagnosis="server_error",
    )
    TokenRequest.objects.create(
        app=cv.connection.app,
        config_variable=cv,
        kind="refresh",
        flavor=1,
        url=cv.connection.app.token_url,
        outcome="transient",
        status_code=503,
        diagnosis="server_error",
    )
    return cv


def test_dashboard_answers_which_are_broken_since_when_why_and_who(admin_client, broken):
    html = admin_client.get(reverse("admin:connections_dashboard")).content.decode()
    assert "Initech" in html  # who
    assert "Failing (retrying)" in html  # what
    assert broken.failing_since is not None
    assert broken.failing_since.strftime("%Y-%m-%d %H:%M") in html  # since when
    assert "token endpoint failed (HTTP 5xx)" in html  # why
    assert "has never run" in html  # no sweep yet: beat looks down


def test_dashboard_needs_view_permission(client, broken):
    from tests.factories import UserFactory

    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:connections_dashboard")).status_code == 403


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("failing_for=any", 1),
        ("failing_for=1h", 0),
        ("expires_within=1h", 1),
        ("expires_within=expired", 0),
    ],
)
def test_changelist_filters(admin_client, broken, query, expected):
    broken.expires_at = timezone.now() + timedelta(minutes=30)
    broken.save()
    ConfigVariableFactory(status=Status.CONNECTED)
    response = admin_client.get(
        reverse("admin:connections_configvariable_changelist") + "?" + query
    )
    assert response.context["cl"].result_count == expected


def test_one_alert_per_incident_and_no_storm_when_flapping(
    settings, django_capture_on_commit_callbacks
):
    settings.OPERATOR_EMAILS = ["ops@example.com"]
    cv = ConfigVariableFactory(status=Status.CONNECTED)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):  # failing → connected → failing … within the cooldown
            config_variable_transition(config_variable=cv, to_status=Status.FAILING, reason="503")
            config_variable_transition(config_variable=cv, to_status=Status.CONNECTED, reason="ok")
    assert len(mail.outbox) == 1
    assert AlertIncident.objects.get().occurrences == 3


def test_a_resolved_incident_alerts_again_after_the_cooldown(
    settings, django_capture_on_commit_callbacks
):
    settings.OPERATOR_EMAILS = ["ops@example.com"]
    settings.ALERT_COOLDOWN_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True):
        assert alert_raise(key="k", subject="s", body="b")
        alert_resolve(key="k")
        assert alert_raise(key="k", subject="s", body="b")
    assert len(mail.outbox) == 2


@responses.activate
def test_webhook_is_signed_and_retried(settings):
    settings.ALERT_WEBHOOK_URL = "https://hooks.example.com/portal"
    settings.ALERT_WEBHOOK_SECRET = "whsec-test"
    incident = AlertIncident.objects.create(key="cv:1", subject="Acme / CRM: Failing")
    responses.post(settings.ALERT_WEBHOOK_URL, status=502)
    responses.post(settings.ALERT_WEBHOOK_URL, status=200)
    with pytest.raises(Retry) as retry:  # a 502 is retried later, with backoff
        send_alert_webhook.apply(args=[incident.pk, "details"])
    assert 0 <= retry.value.when <= 5  # first backoff step (5 s), with Celery's full jitter
    assert send_alert_webhook.apply(args=[incident.pk, "details"]).get() == 200
    assert len(responses.calls) == 2
    request = responses.calls[1].request
    expected = "sha256=" + hmac.new(b"whsec-test", request.body, hashlib.sha256).hexdigest()
    assert (
        request.headers["X-Portal-Signature"]
        == expected
        == webhook_signature(request.body, "whsec-test")
    )
    assert json.loads(request.body)["subject"] == "Acme / CRM: Failing"


@responses.activate
def test_a_raised_alert_reaches_the_webhook(settings, django_capture_on_commit_callbacks):
    settings.ALERT_WEBHOOK_URL = "https://hooks.example.com/portal"
    responses.post(settings.ALERT_WEBHOOK_URL, status=200)
    with django_capture_on_commit_callbacks(execute=True):
        assert alert_raise(key="beat:late", subject="Renewal sweep is late", body="details")
    assert json.loads(responses.calls[0].request.body)["incident"] == "beat:late"


def test_customer_contact_can_be_told_to_reconnect(admin_client, broken):
    broken.customer.contact_email = "it@initech.example"
    broken.customer.save()
    admin_client.post(
        reverse("admin:connections_configvariable_changelist"),
        {"action": "tell_customer_to_reconnect", "_selected_action": [broken.pk]},
    )
    assert mail.outbox[-1].to == ["it@initech.example"]
    assert broken.connection.name in mail.outbox[-1].body


def test_healthz_ok_in_eager_mode(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_healthz_503_when_beat_is_down_and_one_alert_from_the_watchdog(
    client, settings, django_capture_on_commit_callbacks
):
    from connections.watchdog import watchdog_run

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "memory://"
    settings.OPERATOR_EMAILS = ["ops@example.com"]
    Heartbeat.objects.create(name="renewal_sweep", at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        first = client.get(reverse("healthz"))
    assert first.status_code == 503
    assert first.json()["sweep"] == "late"
    assert first.json()["blame"] == "Celery beat is not running"
    assert len(mail.outbox) == 0  # a GET never alerts
    with django_capture_on_commit_callbacks(execute=True):
        watchdog_run(broker=True)
        watchdog_run(broker=True)
    assert len(mail.outbox) == 1  # once per incident
    heartbeat_beat()
    watchdog_run(broker=True)
    assert client.get(reverse("healthz")).json()["sweep"] == "ok"
    assert AlertIncident.objects.get(key="beat:late").resolved_at is not None


def test_a_fresh_deploy_gets_a_grace_period_and_a_down_broker_is_blamed(
    client, settings, django_capture_on_commit_callbacks
):
    from connections.watchdog import machinery_state, watchdog_run

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.OPERATOR_EMAILS = ["ops@example.com"]
    assert machinery_state(broker=True).sweep == "starting"  # never swept, just deployed
    Heartbeat.objects.filter(name="portal_started").update(
        at=timezone.now() - timedelta(seconds=settings.SWEEP_GRACE_SECONDS + 1)
    )
    state = machinery_state(broker=False)
    assert (state.sweep, state.blame) == ("late", "the broker is down")
    with django_capture_on_commit_callbacks(execute=True):
        watchdog_run(broker=False)
    assert [m.subject for m in mail.outbox] == [
        "[connection portal] The Celery broker is unreachable: renewals cannot be sent"
    ]


def test_healthz_reports_overdue_renewals_without_failing_the_web_process(client):
    ConfigVariableFactory(status="connected", refresh_at=timezone.now() - timedelta(minutes=10))
    body = client.get(reverse("healthz")).json()
    assert body["overdue_renewals"] == 1


def test_metrics_exposes_statuses_requests_latency_and_sweep_lag(client, broken, settings):
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get(reverse("metrics")).status_code == 401
    text = client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer scrape-me").content.decode()
    assert (
        f'portal_config_variables{{app="{broken.connection.app.slug}",status="failing"}} 1.0'
        in text
    )
    assert 'kind="refresh"' in text
    assert 'outcome="transient"' in text
    assert "portal_sweep_age_seconds -1.0" in text
    assert "portal_renewals_overdue" in text


@responses.activate
def test_a_failed_revocation_on_disconnect_is_reported(admin_client):
    cv = ConfigVariableFactory(
        status=Status.CONNECTED,
        refresh_token="rt-to-revoke",
        connection__app__revocation_url="https://app.example.com/oauth2/revoke",
    )
    responses.post("https://app.example.com/oauth2/revoke", status=500)
    response = admin_client.post(
        reverse("admin:connections_configvariable_changelist"),
        {"action": "disconnect", "_selected_action": [cv.pk]},
        follow=True,
    )
    assert "Revoking the token at the app failed" in response.content.decode()
    cv.refresh_from_db()
    assert cv.status == Status.DISCONNECTED
    record = TokenRequest.objects.get(kind="revocation")
    assert record.diagnosis == "revocation_failed"
    assert "rt-to-revoke" not in record.request_body


def test_marked_connections_tell_the_customer_to_reconnect(admin_client, portal_client, customer):
    cv = ConfigVariableFactory(customer=customer, status=Status.CONNECTED)
    admin_client.post(
        reverse("admin:connections_configvariable_changelist"),
        {"action": "mark_for_reconnection", "_selected_action": [cv.pk]},
    )
    html = portal_client.get(reverse("connections:portal")).content.decode()
    assert "Needs reconnection" in html
    assert "Please press Reconnect" in html


def test_marking_for_reconnection_leaves_disconnected_connections_alone(admin_client):
    working = ConfigVariableFactory(status=Status.CONNECTED)
    gone = ConfigVariableFactory(status=Status.DISCONNECTED)
    response = admin_client.post(
        reverse("admin:connections_configvariable_changelist"),
        {"action": "mark_for_reconnection", "_selected_action": [working.pk, gone.pk]},
        follow=True,
    )
    assert "1 connection(s) marked" in response.content.decode()
    working.refresh_from_db()
    gone.refresh_from_db()
    assert (working.status, working.refresh_at) == (Status.REAUTHORIZATION_REQUIRED, None)
    assert gone.status == Status.DISCONNECTED
    assert "by admin in the admin" in working.transitions.first().reason


def test_the_token_api_answers_other_methods_with_405(client):
    cv = ConfigVariableFactory()
    assert client.post(reverse("api:config_variable_token", args=[cv.pk])).status_code == 405


def test_a_revoked_api_key_cannot_be_revived_in_the_admin(admin_client):
    from connections.api_keys import api_key_create

    key, _ = api_key_create(customer=CustomerFactory(), name="ci")
    key.revoked = True
    key.save()
    admin_client.post(
        reverse("admin:connections_apikey_change", args=[key.pk]),
        {"name": "ci", "revoked": ""},
    )
    key.refresh_from_db()
    assert key.revoked


def test_a_connection_that_could_not_connect_alerts_operators_once(
    settings, django_capture_on_commit_callbacks
):
    from connections.services import config_variable_transition

    settings.OPERATOR_EMAILS = ["ops@example.com"]
    cv = ConfigVariableFactory(status="exchanging")
    with django_capture_on_commit_callbacks(execute=True):
        config_variable_transition(
            config_variable=cv, to_status="error", reason="Code exchange failed", diagnosis="x"
        )
        config_variable_transition(config_variable=cv, to_status="authorizing", reason="again")
        config_variable_transition(config_variable=cv, to_status="error", reason="failed again")
    assert len(mail.outbox) == 1  # one incident, however often it recurs
    assert "Could not connect" in mail.outbox[0].subject
