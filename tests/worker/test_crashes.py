"""Workers that die during a renewal, and what the next sweep makes of it.

A renewal holds the ConfigVariable's lease (``oauthflow.lease``) while it spends the
refresh token. A worker killed with the lease in hand never releases it; the lease
then expires after ``RENEWAL_LEASE_SECONDS`` and the sweep takes the row up again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from celery.worker.worker import WorkController
from django.utils import timezone

from connections.models import ConfigVariable, Status
from oauthflow import lease, renewal_writer
from oauthflow.access import get_access_token
from oauthflow.exceptions import ReauthorizationRequired
from oauthflow.lease import lease_claim
from oauthflow.models import Outcome, TokenRequest
from tests.worker.provider import RotatingTokenProvider
from tests.worker.support import TaskLog, lease_free, run_sweep

pytestmark = pytest.mark.worker

LEASE_SECONDS = 8  # a dead worker's lease: short, yet longer than a sweep takes under load


class WorkerKilled(BaseException):
    """A process killed outright (SIGKILL, OOM): not an ``Exception``, so no ``except
    Exception`` in the code under test can swallow it."""


def _wait_for_lease_expiry(cv: ConfigVariable) -> None:
    cv.refresh_from_db()
    assert cv.lease_expires_at is not None, "the dead worker's lease is gone"
    remaining = (cv.lease_expires_at - timezone.now()).total_seconds()
    time.sleep(max(remaining, 0) + 0.2)


def test_a_lease_left_by_a_dead_worker_expires_and_the_next_sweep_renews(
    celery_worker: WorkController,
    task_log: TaskLog,
    provider: RotatingTokenProvider,
    make_config_variable: Callable[..., ConfigVariable],
    settings: Any,
) -> None:
    """A worker claims a due ConfigVariable and dies before its token request (the lease
    is never released). While that lease lives, sweeps leave the row alone, so nothing
    spends the refresh token behind the dead worker's back; once it has expired the
    next sweep renews the connection with one token request, and it stays connected."""
    settings.RENEWAL_LEASE_SECONDS = LEASE_SECONDS
    cv = make_config_variable(expires_in=20, due=True)
    old_access, old_refresh = cv.access_token, cv.refresh_token
    assert lease_claim(config_variable_id=cv.pk) is not None  # ... and the worker dies

    assert run_sweep(task_log) == 0, "a sweep took a row under a live lease"
    assert provider.request_count == 0

    _wait_for_lease_expiry(cv)
    assert run_sweep(task_log) == 1

    seen = provider.requests
    assert [(r.grant_type, r.refresh_token, r.status) for r in seen] == [
        ("refresh_token", old_refresh, 200)
    ]
    cv.refresh_from_db()
    assert cv.status == Status.CONNECTED, cv.last_error
    assert cv.access_token == seen[0].access_token != old_access
    assert cv.refresh_token == seen[0].issued_refresh_token
    assert lease_free(cv.pk)
    token = get_access_token(config_variable_id=cv.pk, min_valid_seconds=60)
    assert token.access_token == cv.access_token
    assert provider.request_count == 1


# The paths into the one renewal service: the sweep's batch task, and the one-row task
# ("Renew now", a client-credentials first fetch). Both die in the same write.
KILL_POINTS = ("sweep batch", "single renewal")


@pytest.mark.parametrize("path", KILL_POINTS)
def test_a_worker_killed_between_the_token_reply_and_the_write_loses_the_rotation(
    path: str,
    celery_worker: WorkController,
    task_log: TaskLog,
    provider: RotatingTokenProvider,
    make_config_variable: Callable[..., ConfigVariable],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one renewal crash that loses something: the provider's rotation.

    A worker renewing through Redis (the sweep's batch task, or the one-row task)
    spends the refresh token, the provider answers 200 with a new access token AND a
    new refresh token and invalidates the old one, and the worker is killed before it
    writes them (simulated: the write raises a ``BaseException`` and, as a killed
    process runs no ``finally``, the lease release does nothing). The new refresh token
    then exists only at the provider: the database still holds the old, now spent, one.

    While the dead worker's lease lives, sweeps leave the row alone. Once it expires,
    the next sweep renews again with the only refresh token the portal has, the old
    one; the rotating provider refuses it with ``invalid_grant``, and the connection
    moves to ``reauthorization_required``: the customer must reconnect. Exactly two
    token requests reach the provider, both spending the same refresh token.
    """
    settings.RENEWAL_LEASE_SECONDS = LEASE_SECONDS
    cv = make_config_variable(expires_in=20, due=True)
    old_access, old_refresh = cv.access_token, cv.refresh_token

    real_write = renewal_writer.transitions_save
    real_release = lease.lease_release_many
    killed = threading.Event()  # set when the worker "dies" holding the lease
    dead_thread: list[int] = []

    def dying() -> bool:
        return bool(dead_thread) and threading.get_ident() == dead_thread[0] and not killed.is_set()

    def write_then_die(*args: Any, **kwargs: Any) -> Any:
        if not dead_thread:
            dead_thread.append(threading.get_ident())
        if dying():
            raise WorkerKilled("killed after the token reply, before the write")
        return real_write(*args, **kwargs)

    def release_unless_dead(**kwargs: Any) -> Any:
        if dying():
            killed.set()
            return 0  # a killed process runs no finally
        return real_release(**kwargs)

    monkeypatch.setattr(renewal_writer, "transitions_save", write_then_die)
    # The writer releases the rows it wrote; the service releases the rest at its end.
    monkeypatch.setattr(renewal_writer, "lease_release_many", release_unless_dead)
    monkeypatch.setattr(lease, "lease_release_many", release_unless_dead)

    from oauthflow.tasks import renew_config_variable, sweep_renewals

    if path == "sweep batch":
        sweep_renewals.delay()
    else:
        renew_config_variable.delay(str(cv.pk))
    assert killed.wait(timeout=15), "the renewal never reached the write"

    first = provider.requests
    assert [(r.refresh_token, r.status) for r in first] == [(old_refresh, 200)]
    rotated = first[0].issued_refresh_token
    assert rotated
    assert provider.is_live(rotated)
    assert not provider.is_live(old_refresh)
    cv.refresh_from_db()
    assert (cv.status, cv.access_token, cv.refresh_token) == (
        Status.CONNECTED,
        old_access,
        old_refresh,
    ), "nothing of the reply was written"
    assert cv.lease_token is not None, "the dead worker's lease is still held"
    assert run_sweep(task_log) == 0, "a sweep took a row under a live lease"
    assert provider.request_count == 1

    _wait_for_lease_expiry(cv)
    assert run_sweep(task_log) == 1

    seen = provider.requests
    assert [(r.refresh_token, r.status, r.error) for r in seen] == [
        (old_refresh, 200, ""),
        (old_refresh, 400, "invalid_grant"),
    ]
    cv.refresh_from_db()
    assert cv.status == Status.REAUTHORIZATION_REQUIRED
    assert cv.diagnosis == "refresh_token_revoked"
    assert "invalid_grant" in cv.last_error
    assert cv.refresh_at is None, "no more attempts: the customer must reconnect"
    assert cv.refresh_token == old_refresh, "the rotated refresh token was lost"
    assert provider.is_live(rotated), "...and it is still live at the provider"
    rows = TokenRequest.objects.filter(config_variable=cv).order_by("created_at", "id")
    # The renewal service writes its token-request log with its renewals, so the killed
    # worker's log went with it.
    assert [(r.outcome, r.error) for r in rows] == [(Outcome.GRANT_DEAD, "invalid_grant")]
    assert lease_free(cv.pk)
    with pytest.raises(ReauthorizationRequired):
        get_access_token(config_variable_id=cv.pk)
    assert run_sweep(task_log) == 0, "a connection needing reauthorization is not renewed"
    assert provider.request_count == 2


def test_a_worker_killed_mid_exchange_is_recovered_by_the_sweep(
    celery_worker: WorkController,
    task_log: TaskLog,
    provider: RotatingTokenProvider,
    make_config_variable: Callable[..., ConfigVariable],
    settings: Any,
) -> None:
    """A worker dies while exchanging (its lease never released): the row sits in
    ``exchanging``. Once the lease has expired and ``STUCK_EXCHANGE_AFTER`` has passed,
    a sweep sends the work again through Redis to a live worker: a client-credentials
    connection is fetched again and connects; an authorization-code row with its code
    is exchanged again and ends with a diagnosis, not "Connecting…" forever. Bound:
    ``RENEWAL_LEASE_SECONDS`` or ``STUCK_EXCHANGE_AFTER``, whichever is longer, plus one
    sweep interval."""
    from connections.models import Connection, GrantType

    settings.RENEWAL_LEASE_SECONDS = LEASE_SECONDS
    settings.STUCK_EXCHANGE_AFTER = 1
    base = make_config_variable(expires_in=20, due=False)
    app = base.connection.app
    app.grant_type = GrantType.CLIENT_CREDENTIALS
    app.save(update_fields=["grant_type"])
    machine = Connection.objects.create(
        app=app, name="Machine", slug=f"machine-{app.slug}", grant_type=GrantType.CLIENT_CREDENTIALS
    )
    fetching = ConfigVariable.objects.create(
        customer=base.customer, connection=machine, status=Status.EXCHANGING
    )
    base.status, base.pending_code = Status.EXCHANGING, "a-code-the-dead-worker-held"
    base.save(update_fields=["status", "pending_code"])
    for row in (fetching, base):
        assert lease_claim(config_variable_id=row.pk) is not None  # ... and the worker dies
    _wait_for_lease_expiry(base)
    time.sleep(1.1)

    run_sweep(task_log)

    def settled() -> bool:
        return not ConfigVariable.objects.filter(
            pk__in=[fetching.pk, base.pk], status=Status.EXCHANGING
        ).exists()

    deadline = time.monotonic() + 15
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.1)
    fetching.refresh_from_db()
    base.refresh_from_db()
    assert fetching.status == Status.CONNECTED, fetching.last_error
    assert base.status == Status.ERROR
    assert base.diagnosis
    assert base.pending_code is None
