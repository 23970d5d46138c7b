"""Event webhooks (issue 12): Standard Webhooks signatures, events from transitions,
ordered delivery with backoff, the admin."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import responses
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from connections.models import Status
from connections.refresh_expiry import refresh_tokens_warn
from connections.services import config_variable_transition
from tests.factories import ConfigVariableFactory, staff_client
from webhooks.models import (
    DeliveryStatus,
    EventType,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from webhooks.services import (
    backoff,
    deliver_next,
    emit,
    endpoint_create,
    event_for_transition,
    send_again,
    send_test,
)
from webhooks.tasks import deliver

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/portal-events"
ALL_EVENTS = [name for name, _ in EventType.choices if name != EventType.TEST]


class Receiver:
    """A receiver as an integrator would write it: verify with the library, then
    drop a ``webhook-id`` seen before (replays and retries of a processed event)."""

    def __init__(self, secret: str, *, fail_first: int = 0) -> None:
        self.webhook = Webhook(secret)
        self.seen: set[str] = set()
        self.events: list[dict] = []
        self.fail_first = fail_first
        self.calls = 0
        self.duplicates = 0

    def accept(self, body: bytes | str, headers: dict[str, str]) -> tuple[int, str]:
        try:
            payload = self.webhook.verify(body, headers)
        except WebhookVerificationError as exc:
            return 400, str(exc)
        msg_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        if msg_id in self.seen:  # not processed again; 2xx so the sender stops retrying
            self.duplicates += 1
            return 200, "duplicate ignored"
        self.seen.add(msg_id)
        self.events.append(payload)
        return 200, "ok"

    def __call__(self, request) -> tuple[int, dict, str]:
        self.calls += 1
        if self.calls <= self.fail_first:
            return 503, {}, "down for maintenance, token=abc123secretvalue"
        status, text = self.accept(request.body, dict(request.headers))
        return status, {}, text


@pytest.fixture
def endpoint() -> tuple[WebhookEndpoint, str]:
    return endpoint_create(name="Product", url=URL, events=ALL_EVENTS)


@pytest.fixture
def cv():
    cv = ConfigVariableFactory(
        status=Status.EXCHANGING,
        access_token="at-SECRET-access-token-value",
        refresh_token="rt-SECRET-refresh-token-value",
        pending_code="code-SECRET-authorization-code",
    )
    return cv


def _transition(cv, to_status, **changes):
    return config_variable_transition(
        config_variable=cv, to_status=to_status, reason="test", **changes
    )


def _types() -> list[str]:
    return list(WebhookEvent.objects.order_by("created_at").values_list("type", flat=True))


# --- signing -------------------------------------------------------------------------


@responses.activate
def test_a_delivery_verifies_with_the_standardwebhooks_library(endpoint, cv):
    ep, secret = endpoint
    assert secret.startswith("whsec_")
    receiver = Receiver(secret)
    responses.add_callback(responses.POST, URL, callback=receiver)
    _transition(cv, Status.CONNECTED, connected_at=timezone.now())
    assert deliver_next(ep.pk) == 0
    assert len(receiver.events) == 1
    event = receiver.events[0]
    assert event["type"] == "connection.created"
    data = event["data"]
    assert data["config_variable_id"] == str(cv.pk)
    assert data["customer"] == {"id": cv.customer_id, "name": cv.customer.name, "external_id": None}
    assert data["end_user"] is None  # connected in the portal, not by a connect session
    assert data["app"] == cv.connection.app.slug
    assert data["connection"] == cv.connection.slug
    assert data["status"] == "connected"
    assert event["timestamp"].endswith("Z")
    request = responses.calls[0].request
    assert request.headers["webhook-id"] == event["id"]
    assert re.fullmatch(r"\d+", request.headers["webhook-timestamp"])
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]+=*", request.headers["webhook-signature"])
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED


@responses.activate
def test_tampered_stale_and_replayed_messages_are_rejected(endpoint, cv):
    ep, secret = endpoint
    captured: list = []
    responses.add_callback(
        responses.POST, URL, callback=lambda r: captured.append(r) or (200, {}, "ok")
    )
    _transition(cv, Status.CONNECTED)
    deliver_next(ep.pk)
    request = captured[0]
    headers = dict(request.headers)
    receiver = Receiver(secret)
    assert receiver.accept(request.body, headers) == (200, "ok")
    # the same message again (a captured webhook replayed): refused by its id
    assert receiver.accept(request.body, headers) == (200, "duplicate ignored")
    assert (len(receiver.events), receiver.duplicates) == (1, 1)
    # a tampered body
    tampered = request.body.replace(b'"connected"', b'"disconnected"')
    assert tampered != request.body
    assert Receiver(secret).accept(tampered, headers)[0] == 400
    # another secret
    assert (
        Receiver(endpoint_create(name="x", url=URL, events=[])[1]).accept(request.body, headers)[0]
        == 400
    )
    # an old message (signed six minutes ago): stale, refused even with a valid signature
    send_again(WebhookDelivery.objects.all())
    deliver_next(ep.pk, now=timezone.now() - timedelta(minutes=6))
    old = captured[1]
    assert (
        Webhook(secret).sign(
            old.headers["webhook-id"],
            timezone.now() - timedelta(minutes=6),
            old.body.decode(),
        )
        == old.headers["webhook-signature"]
    )
    status, text = Receiver(secret).accept(old.body, dict(old.headers))
    assert (status, text) == (400, "Message timestamp too old")
    # send again keeps the id: a receiver that processed it drops the copy
    assert old.headers["webhook-id"] == headers["webhook-id"]


# --- delivery ------------------------------------------------------------------------


@responses.activate
def test_five_failures_then_one_delivery_in_order_driven_explicitly(endpoint, cv):
    ep, secret = endpoint
    receiver = Receiver(secret, fail_first=5)
    responses.add_callback(responses.POST, URL, callback=receiver)
    _transition(cv, Status.CONNECTED)  # created
    _transition(cv, Status.FAILING)  # renewal_failing: must wait behind "created"
    delays = []
    head = WebhookDelivery.objects.filter(event__type="connection.created")
    for attempt in range(1, 6):
        countdown = deliver_next(ep.pk)
        assert countdown == backoff(attempt)  # exponential: 10, 20, 40, 80, 160 s
        delays.append(countdown)
        # not due yet: nothing is sent, the later event does not overtake
        assert deliver_next(ep.pk) > 0
        assert receiver.calls == attempt
        # the backoff passes (the receiver checks timestamps against the real clock)
        retry_at = head.get().next_retry_at
        assert abs((retry_at - timezone.now()).total_seconds() - countdown) < 5
        head.update(next_retry_at=timezone.now() - timedelta(seconds=1))
    now = timezone.now()
    assert delays == [10, 20, 40, 80, 160]
    first = WebhookDelivery.objects.get(event__type="connection.created")
    assert first.status == DeliveryStatus.RETRYING
    assert first.attempts == 5
    assert first.response_status == 503
    assert "abc123secretvalue" not in first.response_excerpt  # redacted
    assert "down for maintenance" in first.response_excerpt
    assert first.attempt_log.count() == 5
    assert deliver_next(ep.pk, now=now) == 0  # delivered
    assert deliver_next(ep.pk, now=now) == 0  # then the next one
    assert deliver_next(ep.pk, now=now) is None  # nothing left
    assert [e["type"] for e in receiver.events] == [
        "connection.created",
        "connection.renewal_failing",
    ]
    assert receiver.calls == 7
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


@responses.activate
def test_five_failures_then_recovery_through_the_celery_task(
    endpoint, cv, django_capture_on_commit_callbacks
):
    ep, secret = endpoint
    receiver = Receiver(secret, fail_first=5)
    responses.add_callback(responses.POST, URL, callback=receiver)
    with django_capture_on_commit_callbacks(execute=True):  # tasks run eagerly
        _transition(cv, Status.CONNECTED)
        _transition(cv, Status.DISCONNECTED)
    assert [e["type"] for e in receiver.events] == [
        "connection.created",
        "connection.disconnected",
    ]
    assert receiver.calls == 7
    deliver.apply(args=[ep.pk])  # running again sends nothing twice
    assert receiver.calls == 7


@responses.activate
def test_a_delivery_gives_up_after_the_last_retry_and_stops_blocking(endpoint, cv, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 6
    ep, secret = endpoint
    receiver = Receiver(secret, fail_first=6)
    responses.add_callback(responses.POST, URL, callback=receiver)
    _transition(cv, Status.CONNECTED)
    _transition(cv, Status.FAILING)
    deliver.apply(args=[ep.pk])
    first, second = WebhookDelivery.objects.order_by("created_at", "id")
    assert (first.status, first.attempts) == (DeliveryStatus.FAILED, 6)
    assert second.status == DeliveryStatus.DELIVERED
    send_again([first])  # the admin's action: sent once more
    deliver.apply(args=[ep.pk])
    first.refresh_from_db()
    assert first.status == DeliveryStatus.DELIVERED
    assert [e["type"] for e in receiver.events] == [
        "connection.renewal_failing",
        "connection.created",
    ]


def test_a_blocked_url_is_not_retried(cv, settings):
    settings.OAUTH_ALLOW_PRIVATE_NETWORKS = False
    ep, _ = endpoint_create(name="internal", url="https://169.254.169.254/hook", events=ALL_EVENTS)
    _transition(cv, Status.CONNECTED)
    deliver_next(ep.pk)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.error.startswith("blocked")


def test_task_messages_carry_ids_only(
    endpoint, cv, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        deliver, "apply_async", lambda args=None, kwargs=None, **opts: sent.append((args, kwargs))
    )
    with django_capture_on_commit_callbacks(execute=True):
        _transition(cv, Status.CONNECTED)
    assert [(tuple(args), kwargs or {}) for args, kwargs in sent] == [((endpoint[0].pk,), {})]


# --- events --------------------------------------------------------------------------


def test_each_transition_produces_its_event(endpoint, cv):
    _transition(cv, Status.CONNECTED)  # first time
    _transition(cv, Status.CONNECTED)  # a renewal: no event
    _transition(cv, Status.FAILING)
    _transition(cv, Status.FAILING)  # still failing: no event
    _transition(cv, Status.CONNECTED)
    _transition(cv, Status.REAUTHORIZATION_REQUIRED, diagnosis="refresh_token_revoked")
    _transition(cv, Status.AUTHORIZING)
    _transition(cv, Status.EXCHANGING)
    _transition(cv, Status.CONNECTED)
    _transition(cv, Status.FAILING)
    _transition(cv, Status.REAUTHORIZATION_REQUIRED)
    _transition(cv, Status.DISCONNECTED)
    _transition(cv, Status.ERROR)  # not an event
    assert _types() == [
        "connection.created",
        "connection.renewal_failing",
        "connection.recovered",
        "connection.reauthorization_required",
        "connection.reconnected",
        "connection.renewal_failing",
        "connection.reauthorization_required",
        "connection.disconnected",
    ]
    reauth = WebhookEvent.objects.filter(type="connection.reauthorization_required").first()
    assert reauth.payload["data"]["diagnosis"]["key"] == "refresh_token_revoked"
    assert reauth.payload["data"]["diagnosis"]["message"]
    assert WebhookDelivery.objects.count() == 8


@pytest.mark.parametrize(
    ("from_status", "to_status", "first", "expected"),
    [
        ("exchanging", "connected", True, "connection.created"),
        ("exchanging", "connected", False, "connection.reconnected"),
        ("reauthorization_required", "connected", False, "connection.reconnected"),
        ("failing", "connected", False, "connection.recovered"),
        ("connected", "failing", False, "connection.renewal_failing"),
        ("connected", "reauthorization_required", False, "connection.reauthorization_required"),
        ("failing", "reauthorization_required", False, "connection.reauthorization_required"),
        ("connected", "disconnected", False, "connection.disconnected"),
        ("connected", "connected", False, None),
        ("exchanging", "error", False, None),
        ("pending", "authorizing", False, None),
    ],
)
def test_the_transition_to_event_map(from_status, to_status, first, expected):
    assert (
        event_for_transition(from_status=from_status, to_status=to_status, first_connection=first)
        == expected
    )


def test_refresh_token_expiring_is_sent_once_per_incident(endpoint, cv):
    _transition(cv, Status.CONNECTED)
    cv.refresh_token_expires_at = timezone.now() + timedelta(hours=1)
    cv.save(update_fields=["refresh_token_expires_at"])
    refresh_tokens_warn()
    refresh_tokens_warn()  # the incident is open: no second event
    events = WebhookEvent.objects.filter(type="connection.refresh_token_expiring")
    assert events.count() == 1
    assert events.get().payload["data"]["refresh_token_expires_at"].endswith("Z")


def test_only_enabled_endpoints_that_subscribed_get_deliveries(cv):
    wants, _ = endpoint_create(name="a", url=URL, events=["connection.disconnected"])
    endpoint_create(name="b", url=URL, events=ALL_EVENTS, enabled=False)
    _transition(cv, Status.CONNECTED)
    _transition(cv, Status.DISCONNECTED)
    assert list(WebhookDelivery.objects.values_list("endpoint", "event__type")) == [
        (wants.pk, "connection.disconnected")
    ]


def test_no_token_code_or_secret_in_any_payload(endpoint, cv):
    ep, secret = endpoint
    app = cv.connection.app
    for to_status in (Status.CONNECTED, Status.FAILING, Status.REAUTHORIZATION_REQUIRED):
        _transition(cv, to_status)
    _transition(cv, Status.DISCONNECTED)
    emit(EventType.REFRESH_TOKEN_EXPIRING, config_variable=cv)
    send_test(ep)
    text = json.dumps(list(WebhookEvent.objects.values_list("payload", flat=True)))
    assert WebhookEvent.objects.count() == 6
    for secret_value in (
        "at-SECRET-access-token-value",
        "rt-SECRET-refresh-token-value",
        "code-SECRET-authorization-code",
        app.client_secret,
        secret,
        secret.removeprefix("whsec_"),
    ):
        assert secret_value not in text
    assert "SECRET" not in text
    for key in ("token", "code", "secret", "client_id"):
        assert not re.search(
            rf'"[a-z_]*{key}[a-z_]*"\s*:', text.replace('"refresh_token_expires_at"', "")
        ), key


def test_a_webhook_failure_never_breaks_a_transition(endpoint, cv, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("webhooks down")

    monkeypatch.setattr("webhooks.services.emit", boom)
    _transition(cv, Status.CONNECTED)
    cv.refresh_from_db()
    assert cv.status == Status.CONNECTED


# --- admin ---------------------------------------------------------------------------


def test_the_secret_is_shown_once_on_creation(admin_client):
    response = admin_client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"name": "Product", "url": URL, "events": ["connection.created"], "enabled": "on"},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    shown = re.search(r'value="(whsec_[^"]+)"', response.content.decode()).group(1)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == shown
    assert endpoint.events == ["connection.created"]
    assert not response.cookies.get("messages")
    for url in (
        reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
        reverse("admin:webhooks_webhookendpoint_changelist"),
    ):
        page = admin_client.get(url).content.decode()
        assert shown not in page
        assert shown.removeprefix("whsec_")[:20] not in page
    # an edit keeps the secret
    admin_client.post(
        reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
        {
            "name": "Renamed",
            "url": URL,
            "events": ["connection.created"],
            "enabled": "on",
            "deliveries-TOTAL_FORMS": "0",
            "deliveries-INITIAL_FORMS": "0",
        },
    )
    endpoint.refresh_from_db()
    assert (endpoint.name, endpoint.secret) == ("Renamed", shown)


def test_the_stored_secret_is_encrypted(endpoint):
    from django.db import connection

    ep, secret = endpoint
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM webhooks_webhookendpoint WHERE id = %s", [ep.pk])
        stored = cursor.fetchone()[0]
    assert secret not in stored
    assert secret.removeprefix("whsec_") not in stored


@pytest.mark.parametrize("codename", ["", "view_webhookendpoint"])
def test_admin_403_for_staff_without_permission(codename, endpoint):
    ep, _ = endpoint
    client = staff_client(*([codename] if codename else []))
    add = client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"name": "x", "url": URL, "events": [], "enabled": "on"},
    )
    assert add.status_code == 403
    assert WebhookEndpoint.objects.count() == 1
    if not codename:
        for name in ("webhookendpoint", "webhookdelivery"):
            assert client.get(reverse(f"admin:webhooks_{name}_changelist")).status_code == 403
        assert (
            client.get(reverse("admin:webhooks_webhookendpoint_change", args=[ep.pk])).status_code
            == 403
        )


def test_send_test_event_and_send_again_need_change_permission(endpoint, cv):
    ep, _ = endpoint
    _transition(cv, Status.CONNECTED)
    viewer = staff_client("view_webhookendpoint", "view_webhookdelivery")
    viewer.post(
        reverse("admin:webhooks_webhookendpoint_changelist"),
        {"action": "send_test_event", "_selected_action": [ep.pk]},
    )
    assert not WebhookEvent.objects.filter(type=EventType.TEST).exists()
    delivery = WebhookDelivery.objects.get()
    delivery.status = DeliveryStatus.FAILED
    delivery.save()
    viewer.post(
        reverse("admin:webhooks_webhookdelivery_changelist"),
        {"action": "send_again_action", "_selected_action": [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED


@responses.activate
def test_admin_send_test_event_send_again_and_the_log(
    admin_client, endpoint, cv, django_capture_on_commit_callbacks
):
    ep, secret = endpoint
    receiver = Receiver(secret)
    responses.add_callback(responses.POST, URL, callback=receiver)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:webhooks_webhookendpoint_changelist"),
            {"action": "send_test_event", "_selected_action": [ep.pk]},
        )
    assert [e["type"] for e in receiver.events] == ["webhook.test"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:webhooks_webhookdelivery_changelist"),
            {"action": "send_again_action", "_selected_action": [delivery.pk]},
        )
    assert receiver.calls == 2  # sent again, same webhook-id: the receiver drops the copy
    assert (len(receiver.events), receiver.duplicates) == (1, 1)
    page = admin_client.get(
        reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])
    ).content.decode()
    assert "duplicate ignored" in page  # the receiver's answer, in the log
    assert admin_client.get(reverse("admin:webhooks_webhookdelivery_changelist")).status_code == 200
    assert (
        admin_client.get(reverse("admin:webhooks_webhookendpoint_change", args=[ep.pk])).status_code
        == 200
    )


def test_an_endpoint_url_must_be_https(admin_client, settings):
    settings.OAUTH_ALLOW_HTTP_LOOPBACK = False
    response = admin_client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"name": "x", "url": "http://hooks.example.com/x", "events": [], "enabled": "on"},
    )
    assert response.status_code == 200
    assert "https://" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_the_webhook_retry_settings_come_from_the_environment(monkeypatch):
    """webhooks/README.md documents them as settable: config/settings.py reads them."""
    import importlib

    import config.settings as portal_settings

    monkeypatch.setenv("WEBHOOK_RETRY_BASE", "2.5")
    monkeypatch.setenv("WEBHOOK_RETRY_MAX", "60")
    monkeypatch.setenv("WEBHOOK_MAX_ATTEMPTS", "7")
    try:
        reloaded = importlib.reload(portal_settings)
        assert reloaded.WEBHOOK_RETRY_BASE == 2.5
        assert reloaded.WEBHOOK_RETRY_MAX == 60.0
        assert reloaded.WEBHOOK_MAX_ATTEMPTS == 7
    finally:
        monkeypatch.undo()
        importlib.reload(portal_settings)
