"""Concurrent renewals of one ConfigVariable against a provider that rotates refresh tokens.

With rotation, a refresh token spent twice kills the connection (the second spend gets
``invalid_grant``; RFC 9700 §4.14). The lease must make sure that however many callers
and workers want a fresh token at the same moment, exactly one token request leaves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from celery.worker.worker import WorkController
from django.db import connection as db_connection

from connections.models import ConfigVariable, Status
from oauthflow.access import AccessToken, get_access_token
from oauthflow.models import Outcome, TokenRequest
from oauthflow.tasks import renew_config_variable
from tests.worker.provider import RotatingTokenProvider
from tests.worker.support import RENEW_TASK, TaskLog, lease_free, wait_for

pytestmark = pytest.mark.worker

CALLERS = 16
MIN_VALID_SECONDS = 60  # the token below expires in 20 s: every caller needs a renewal
REPLY_DELAY = 0.3  # seconds the provider takes: every caller arrives while it is in flight


def _call_concurrently(count: int, call: Callable[[], AccessToken]) -> list[AccessToken]:
    """Run ``call`` in ``count`` threads released at the same instant; each thread uses
    its own database connection and closes it when done."""
    barrier = threading.Barrier(count)

    def one() -> AccessToken:
        try:
            barrier.wait(timeout=10)
            return call()
        finally:
            db_connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(one) for _ in range(count)]
        return [future.result(timeout=60) for future in futures]


def _assert_one_refresh(provider: RotatingTokenProvider, cv: ConfigVariable, old_refresh: str):
    seen = provider.requests
    assert len(seen) == 1, f"expected one token request, the provider got {seen}"
    assert (seen[0].grant_type, seen[0].refresh_token, seen[0].status) == (
        "refresh_token",
        old_refresh,
        200,
    )
    cv.refresh_from_db()
    assert cv.status == Status.CONNECTED, cv.last_error
    assert cv.access_token == seen[0].access_token
    assert provider.is_live(cv.refresh_token), "the stored refresh token is the rotated one"
    assert not provider.is_live(old_refresh)
    rows = TokenRequest.objects.filter(config_variable=cv)
    assert [row.outcome for row in rows] == [Outcome.SUCCEEDED]


def test_sixteen_callers_of_an_expiring_token_cause_one_token_request(
    provider: RotatingTokenProvider, make_config_variable: Callable[..., ConfigVariable]
) -> None:
    """16 integrations ask ``get_access_token`` at once for a token that expires in 20 s:
    one of them renews under the lease, the other 15 wait for its result. The provider
    sees exactly one refresh, the connection stays connected, and all 16 callers get
    the same, new access token (the one the provider issued)."""
    cv = make_config_variable(expires_in=20, due=False)
    old_access, old_refresh = cv.access_token, cv.refresh_token
    provider.reply_delay = REPLY_DELAY

    tokens = _call_concurrently(
        CALLERS,
        lambda: get_access_token(config_variable_id=cv.pk, min_valid_seconds=MIN_VALID_SECONDS),
    )

    _assert_one_refresh(provider, cv, old_refresh)
    assert {token.access_token for token in tokens} == {cv.access_token}
    assert cv.access_token != old_access
    assert all(token.expires_at == cv.expires_at for token in tokens)
    assert lease_free(cv.pk)


def test_sixteen_queued_renewals_and_sixteen_callers_cause_one_token_request(
    celery_worker: WorkController,
    task_log: TaskLog,
    provider: RotatingTokenProvider,
    make_config_variable: Callable[..., ConfigVariable],
) -> None:
    """16 ``renew_config_variable`` tasks go through Redis to a real worker running four
    at a time, while 16 integrations call ``get_access_token``: 32 would-be renewals of
    one due ConfigVariable whose token expires in 20 s. Exactly one token request
    reaches the provider, the connection stays connected, and every caller gets the
    same new access token."""
    cv = make_config_variable(expires_in=20, due=True)
    old_access, old_refresh = cv.access_token, cv.refresh_token
    provider.reply_delay = REPLY_DELAY

    for _ in range(CALLERS):
        renew_config_variable.delay(str(cv.pk))
    tokens = _call_concurrently(
        CALLERS,
        lambda: get_access_token(config_variable_id=cv.pk, min_valid_seconds=MIN_VALID_SECONDS),
    )
    # Every queued renewal runs to its end (each finds the token fresh and does nothing).
    wait_for(
        lambda: task_log.count(RENEW_TASK) == CALLERS,
        timeout=30,
        message=f"the worker ran {task_log.count(RENEW_TASK)} of {CALLERS} renewals",
    )

    _assert_one_refresh(provider, cv, old_refresh)
    assert {token.access_token for token in tokens} == {cv.access_token}
    assert cv.access_token != old_access
