"""Renewal by itself against the real sandbox authorization server (django-oauth-toolkit).

Everything is real: the sandbox runs in its own process with 60 s access tokens and
rotating refresh tokens; the customer connects through the portal (live server) with a
scripted browser; the code exchange runs in a Celery worker thread fed through Redis;
and an embedded Celery beat sends ``sweep_renewals`` on schedule to that worker.
Nothing in the test asks for a renewal.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from celery import Celery
from celery.beat import EmbeddedService
from celery.schedules import schedule
from celery.worker.worker import WorkController
from django.contrib.auth import get_user_model

from connections.models import (
    ConfigVariable,
    Connection,
    Customer,
    CustomerUser,
    Status,
    StatusTransition,
)
from oauthflow.access import get_access_token
from oauthflow.models import Outcome, TokenRequest, TokenRequestKind
from tests.e2e.conftest import CALLBACK_PATH
from tests.worker.support import RENEW_BATCH_TASK, SWEEP_TASK, TaskLog, wait_for

if TYPE_CHECKING:
    from tests.e2e.conftest import Browser, SandboxServer

pytestmark = [pytest.mark.worker, pytest.mark.e2e]

USERNAME = "dora"
PASSWORD = "dora-portal-password"
SCOPES = "read write offline_access"
SWEEP_INTERVAL = 2.0  # seconds (production: 60)
RENEWALS = 2
# 60 s tokens are renewed 15-30 s after they are issued (defaults: the lead is half the
# lifetime, less up to 15 s of jitter), so two renewals take at most ~65 s.
RENEWALS_WITHIN = 100.0  # seconds


@pytest.fixture
def portal_callback_url(settings: Any, live_server: Any) -> str:
    """The callback URL the sandbox has registered: the live portal's."""
    settings.OAUTH_PUBLIC_CALLBACK_URL = f"{live_server.url}{CALLBACK_PATH}"
    return settings.OAUTH_PUBLIC_CALLBACK_URL


@pytest.fixture
def beat(celery_app: Celery, settings: Any, tmp_path: Any) -> Iterator[None]:
    """An embedded Celery beat (a thread) running the project's renewal sweep every
    ``RENEWAL_SWEEP_INTERVAL`` seconds, with its schedule file in ``tmp_path``.

    ``CELERY_BEAT_SCHEDULE`` is built from ``RENEWAL_SWEEP_INTERVAL`` when the settings
    load, so the entry is rebuilt here the same way from the overridden setting.
    """
    settings.RENEWAL_SWEEP_INTERVAL = SWEEP_INTERVAL
    celery_app.conf.beat_schedule = {
        "sweep-renewals": {
            "task": SWEEP_TASK,
            "schedule": schedule(settings.RENEWAL_SWEEP_INTERVAL),
        },
    }
    service = EmbeddedService(
        celery_app, thread=True, schedule_filename=str(tmp_path / "celerybeat-schedule")
    )
    service.start()
    try:
        yield
    finally:
        service.stop()
        service.join(timeout=10)


def _connect(browser: Browser, connection: Connection) -> ConfigVariable:
    """Connect → sign in and consent at the sandbox → callback; the exchange runs in the
    worker (``exchange`` queue). Returns the connected ConfigVariable."""
    browser.portal_login(USERNAME, PASSWORD)
    authorize_url = browser.press_connect(connection.slug)
    callback_url = browser.consent_at_sandbox(authorize_url)
    assert "code" in parse_qs(urlsplit(callback_url).query)
    reply = browser.get(callback_url, allow_redirects=False)
    assert reply.status_code == 302, reply.text[:2000]
    cv = ConfigVariable.objects.get(connection=connection)
    wait_for(
        lambda: ConfigVariable.objects.filter(pk=cv.pk, status=Status.CONNECTED).exists(),
        timeout=30,
        message="the worker did not exchange the code",
    )
    cv.refresh_from_db()
    return cv


def test_a_sandbox_connection_renews_itself_with_beat_and_a_worker(
    celery_worker: WorkController,
    task_log: TaskLog,
    sandbox_server: SandboxServer,
    browser: Browser,
    portal_callback_url: str,
    beat: None,
) -> None:
    """A customer connects to the sandbox (authorization code, PKCE, offline_access);
    its access tokens live 60 s. With beat and a worker running and nobody asking for
    a token, the connection renews by itself at least twice: each renewal brings a new
    access token and a new refresh token (the sandbox rotates them), the connection is
    ``connected`` at every look, the last access token is live at the sandbox and the
    first is not, and an integration asking for a token gets the current one without
    another token request.

    Beat is the real ``celery.beat`` scheduler, embedded as a thread
    (``EmbeddedService(thread=True)``), not a loop in the test.
    """
    customer = Customer.objects.create(name="Sandbox renewals")
    user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    CustomerUser.objects.create(user=user, customer=customer)
    app = sandbox_server.create_app(default_scopes=SCOPES)
    connection = Connection.objects.create(app=app, name="Sandbox widgets", slug="widgets")

    cv = _connect(browser, connection)
    assert cv.access_token
    assert cv.refresh_token
    assert TokenRequest.objects.filter(
        config_variable=cv, kind=TokenRequestKind.EXCHANGE, outcome=Outcome.SUCCEEDED
    ).exists()

    access_tokens = [cv.access_token]
    refresh_tokens = [cv.refresh_token]
    statuses = {cv.status}
    deadline = time.monotonic() + RENEWALS_WITHIN
    while len(access_tokens) <= RENEWALS and time.monotonic() < deadline:
        time.sleep(0.25)
        cv.refresh_from_db()
        statuses.add(cv.status)
        if cv.access_token != access_tokens[-1]:
            access_tokens.append(cv.access_token)
            refresh_tokens.append(cv.refresh_token)

    renewals = TokenRequest.objects.filter(config_variable=cv, kind=TokenRequestKind.REFRESH)
    assert len(access_tokens) > RENEWALS, (
        f"{len(access_tokens) - 1} renewal(s) in {RENEWALS_WITHIN:.0f} s; token requests: "
        f"{[(r.outcome, r.error) for r in renewals]}; sweeps run: {task_log.count(SWEEP_TASK)}"
        f"\n{sandbox_server.log_tail()}"
    )
    assert statuses == {Status.CONNECTED}, cv.last_error
    assert len(set(access_tokens)) == len(access_tokens), "an access token came back"
    assert len(set(refresh_tokens)) == len(refresh_tokens), "a refresh token was not rotated"
    assert all(r.outcome == Outcome.SUCCEEDED for r in renewals), [r.error for r in renewals]
    assert task_log.count(RENEW_BATCH_TASK) >= RENEWALS  # the worker did them, sent by beat sweeps
    assert not StatusTransition.objects.filter(
        config_variable=cv, to_status__in=[Status.FAILING, Status.REAUTHORIZATION_REQUIRED]
    ).exists()

    cv.refresh_from_db()
    assert sandbox_server.introspect(cv.access_token)["active"] is True
    assert sandbox_server.introspect(access_tokens[0])["active"] is False
    requests_before = TokenRequest.objects.filter(config_variable=cv).count()
    token = get_access_token(config_variable_id=cv.pk, min_valid_seconds=1)
    assert token.access_token == cv.access_token
    assert TokenRequest.objects.filter(config_variable=cv).count() == requests_before
