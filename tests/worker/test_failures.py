"""How renewal failures play out over real sweeps: 429 with Retry-After, 5xx, invalid_grant.

Every sweep here goes through Redis to the real worker, which enqueues the due
renewals back through Redis and runs them against the real HTTP provider.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from celery.worker.worker import WorkController

from connections.models import ConfigVariable, Status, StatusTransition
from oauthflow.access import get_access_token
from oauthflow.exceptions import ReauthorizationRequired
from oauthflow.models import TokenRequest
from oauthflow.tasks import sweep_renewals
from tests.worker.provider import RETRY_AFTER_SECONDS, RotatingTokenProvider, Scripted
from tests.worker.support import TaskLog, lease_free, run_sweep, wait_for

pytestmark = pytest.mark.worker

SWEEP_EVERY = 0.5  # seconds: a beat ticking much faster than Retry-After
SWEEP_FOR = 10.0  # seconds: long enough for Retry-After (7 s) and one more sweep
OPERATOR = "ops@example.com"


def test_a_429_with_retry_after_holds_the_next_attempt_back_at_least_that_long(
    celery_worker: WorkController,
    task_log: TaskLog,
    provider: RotatingTokenProvider,
    make_config_variable: Callable[..., ConfigVariable],
    settings: Any,
) -> None:
    """The provider answers the first refresh with ``429`` and ``Retry-After: 7``. A
    beat-like loop sends ``sweep_renewals`` to the worker every 0.5 s; the provider's
    request log shows the second request at least 7 s after the first (although the
    exponential backoff alone, from a 1 s base, would allow one after 1.25 s), and
    that second request renews the connection, which stayed connected throughout."""
    settings.RENEWAL_BACKOFF_BASE = 1
    cv = make_config_variable(expires_in=60, due=True)
    provider.script(Scripted.RATE_LIMITED)

    statuses: set[str] = set()
    started = time.monotonic()
    while time.monotonic() - started < SWEEP_FOR and provider.request_count < 2:
        sweep_renewals.delay()
        statuses.add(ConfigVariable.objects.values_list("status", flat=True).get(pk=cv.pk))
        time.sleep(SWEEP_EVERY)
    wait_for(lambda: lease_free(cv.pk), timeout=10, message="the last renewal did not end")

    seen = provider.requests
    assert [r.status for r in seen] == [429, 200], seen
    waited = seen[1].at - seen[0].at
    assert waited >= RETRY_AFTER_SECONDS, f"the retry came {waited:.2f} s after the 429"
    assert waited < RETRY_AFTER_SECONDS + 2.5, f"the retry came only after {waited:.2f} s"
    assert statuses == {Status.CONNECTED}
    cv.refresh_from_db()
    assert cv.status == Status.CONNECTED, cv.last_error
    assert cv.access_token == seen[1].access_token
    assert cv.failure_count == 0
    rate_limited = TokenRequest.objects.get(config_variable=cv, status_code=429)
    assert rate_limited.diagnosis == "rate_limited"
    assert rate_limited.response_headers.get("retry-after") == str(RETRY_AFTER_SECONDS)
    assert task_log.count("oauthflow.renew_config_variables") == 2  # one batch a due sweep


def test_five_503s_in_a_row_make_the_connection_failing(
    celery_worker: WorkController,
    task_log: TaskLog,
    provider: RotatingTokenProvider,
    make_config_variable: Callable[..., ConfigVariable],
    settings: Any,
    mailoutbox: list[Any],
) -> None:
    """The provider is down (``503`` to everything). Five sweeps, five renewal
    attempts (no backoff wait: ``RENEWAL_BACKOFF_BASE=0``): the connection stays
    ``connected`` for the first two and is ``failing`` from the third
    (``RENEWAL_FAILING_AFTER=3``), the operators get one email when it starts
    failing, and the refresh token was never spent, so it still works once the
    provider is back."""
    settings.RENEWAL_BACKOFF_BASE = 0
    settings.RENEWAL_FAILING_AFTER = 3
    settings.OPERATOR_EMAILS = [OPERATOR]
    cv = make_config_variable(expires_in=60, due=True)
    old_refresh = cv.refresh_token
    provider.answer_all(Scripted.UNAVAILABLE)

    observed = []
    for _ in range(5):
        assert run_sweep(task_log) == 1
        cv.refresh_from_db()
        observed.append((cv.status, cv.failure_count))

    assert observed == [
        (Status.CONNECTED, 1),
        (Status.CONNECTED, 2),
        (Status.FAILING, 3),
        (Status.FAILING, 4),
        (Status.FAILING, 5),
    ]
    assert cv.diagnosis == "server_error"
    assert {r.status for r in provider.requests} == {503}
    chains = TokenRequest.objects.filter(config_variable=cv).values_list("chain_id", flat=True)
    assert len(set(chains)) == 5, "five renewal attempts"
    assert provider.is_live(old_refresh), "a 503 spends no refresh token"
    into_failing = StatusTransition.objects.filter(config_variable=cv, to_status=Status.FAILING)
    assert into_failing.exclude(from_status=Status.FAILING).count() == 1
    alerts = [m for m in mailoutbox if OPERATOR in m.to]
    assert len(alerts) == 1, [m.subject for m in alerts]
    assert "Failing" in alerts[0].subject

    provider.answer_all(None)  # the provider is back
    assert run_sweep(task_log) == 1
    cv.refresh_from_db()
    assert (cv.status, cv.failure_count) == (Status.CONNECTED, 0)
    assert provider.requests[-1].status == 200


def test_invalid_grant_requires_reauthorization_after_exactly_one_request(
    celery_worker: WorkController,
    task_log: TaskLog,
    provider: RotatingTokenProvider,
    make_config_variable: Callable[..., ConfigVariable],
    settings: Any,
    mailoutbox: list[Any],
) -> None:
    """The provider refuses the refresh token with ``invalid_grant`` (revoked): after
    that one request the connection is ``reauthorization_required``, the operators are
    told, integrations get ``ReauthorizationRequired``, and later sweeps send nothing
    more (a dead grant is not hammered)."""
    settings.OPERATOR_EMAILS = [OPERATOR]
    cv = make_config_variable(expires_in=60, due=True)
    provider.script(Scripted.INVALID_GRANT)

    assert run_sweep(task_log) == 1

    assert [(r.status, r.error) for r in provider.requests] == [(400, "invalid_grant")]
    cv.refresh_from_db()
    assert cv.status == Status.REAUTHORIZATION_REQUIRED
    assert cv.diagnosis == "refresh_token_revoked"
    assert cv.refresh_at is None
    assert len([m for m in mailoutbox if OPERATOR in m.to]) == 1
    with pytest.raises(ReauthorizationRequired):
        get_access_token(config_variable_id=cv.pk)
    assert run_sweep(task_log) == 0
    assert run_sweep(task_log) == 0
    assert provider.request_count == 1
