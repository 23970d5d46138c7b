"""Fixtures for renewal tests against real services: Redis, a Celery worker, a provider.

* ``celery_app`` points the project's Celery app (``config.celery_app``) at a real Redis
  broker (``WORKER_TEST_BROKER_URL``, default ``redis://127.0.0.1:6379/5``), with
  ``task_always_eager`` off, and restores the eager, broker-less configuration after.
  Every test gets its own Redis key prefix, so leftover messages never reach the next
  test and two test runs sharing one Redis do not steal each other's tasks. No Redis
  is a failure with a clear message, never a skip: CI starts Redis.
* ``celery_worker`` runs a real worker in a thread (thread pool, concurrency 4)
  consuming the ``exchange`` and ``refresh`` queues of ``CELERY_TASK_ROUTES``; it uses
  ``transactional_db`` so the rows a test writes are committed and visible to it.
* ``provider`` is ``tests.worker.provider.RotatingTokenProvider``, a real HTTP token
  endpoint on loopback that rotates refresh tokens.
* On SQLite the session's test database becomes a WAL-mode file (see
  ``pytest_collection_finish``) when worker tests are selected.
* ``sandbox_server`` and ``browser`` are the end-to-end fixtures of
  ``tests/e2e/conftest.py`` (the real django-oauth-toolkit server), re-exported here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from celery.worker.worker import WorkController
from django.conf import settings as django_settings
from django.db import connections as db_connections
from django.utils import timezone

from config.celery import app as config_celery_app
from connections.models import App, ConfigVariable, Connection, GrantType, Status
from tests.e2e.conftest import browser, sandbox_server
from tests.factories import CustomerFactory
from tests.worker.provider import CLIENT_ID, CLIENT_SECRET, RotatingTokenProvider
from tests.worker.support import TaskLog

__all__ = ["browser", "sandbox_server"]  # the e2e fixtures, for tests/worker/test_sandbox.py

BROKER_URL = os.environ.get("WORKER_TEST_BROKER_URL", "redis://127.0.0.1:6379/5")
WORKER_QUEUES = ("exchange", "refresh")
WORKER_CONCURRENCY = 4

# The Celery settings a test changes; restored afterwards.
_CHANGED_CONF = (
    "broker_url",
    "task_always_eager",
    "broker_transport_options",
    "worker_hijack_root_logger",
    "beat_schedule",
)


_sqlite_dirs: list[Path] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """On SQLite, put the session's test database in a WAL-mode file when worker tests run.

    pytest-django's default SQLite test database is in memory with a shared cache. There,
    concurrent writers from different threads (the worker's pool, the test's callers)
    get ``database table is locked`` at once: shared-cache table locks never wait for a
    busy timeout. A file in WAL mode behaves as production SQLite does (writers wait up
    to the ``timeout`` option, readers never block), so the tests exercise the lease,
    not SQLite's shared-cache quirk. PostgreSQL (``DATABASE_URL``) is left alone.
    """
    if not any(item.get_closest_marker("worker") for item in session.items):
        return
    from django.db import connections

    settings_dict = connections["default"].settings_dict
    if settings_dict["ENGINE"] != "django.db.backends.sqlite3":
        return
    test_settings = settings_dict.setdefault("TEST", {})
    if test_settings.get("NAME") not in (None, "", ":memory:"):
        return  # someone chose a test database file already
    directory = Path(tempfile.mkdtemp(prefix="worker-tests-sqlite-"))
    _sqlite_dirs.append(directory)
    test_settings["NAME"] = str(directory / "test.sqlite3")
    options = settings_dict.setdefault("OPTIONS", {})
    options.setdefault("init_command", "PRAGMA journal_mode=WAL;")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the SQLite test database directories made above."""
    while _sqlite_dirs:
        shutil.rmtree(_sqlite_dirs.pop(), ignore_errors=True)


def _reset_broker_pools(app: Celery) -> None:
    """Drop the app's cached broker connections: they belong to the old broker URL."""
    for pool in (app._pool, app.amqp._producer_pool):
        if pool is not None:
            pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis broker URL, checked to answer: a clear failure (not a skip) without it."""
    client = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"The worker tests need a real Redis at {BROKER_URL} (set WORKER_TEST_BROKER_URL "
            f"to use another); it did not answer ({exc}). Start one, e.g. "
            "`redis-server --port 6379` or `docker run -p 6379:6379 redis`.",
            pytrace=False,
        )
    finally:
        client.close()
    return BROKER_URL


@pytest.fixture
def celery_app(redis_url: str) -> Iterator[Celery]:
    """``config.celery_app`` sending to Redis (not eagerly) under a per-test key prefix."""
    app = config_celery_app
    app.loader.import_default_modules()  # registers oauthflow.tasks
    saved = {name: app.conf.get(name) for name in _CHANGED_CONF}
    prefix = f"worker-test-{uuid.uuid4().hex[:12]}:"
    app.conf.update(
        broker_url=redis_url,
        task_always_eager=False,
        broker_transport_options={"global_keyprefix": prefix},
        worker_hijack_root_logger=False,
    )
    _reset_broker_pools(app)
    try:
        yield app
    finally:
        _reset_broker_pools(app)
        app.conf.update(saved)
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture
def celery_worker(celery_app: Celery, transactional_db: None) -> Iterator[WorkController]:
    """A real Celery worker thread (4 threads) on the ``exchange`` and ``refresh`` queues
    (and any other queue ``CELERY_TASK_ROUTES`` names)."""
    routed = {route["queue"] for route in django_settings.CELERY_TASK_ROUTES.values()}

    def close_connections(**kwargs: Any) -> None:
        # The pool's threads outlive the test worker (its thread pool is not shut down
        # when the test stops it): a connection they kept would hold a session on the
        # PostgreSQL test database, which pytest-django then cannot drop.
        if threading.current_thread() is not threading.main_thread():
            db_connections.close_all()

    task_postrun.connect(close_connections, weak=False)
    try:
        with start_worker(
            celery_app,
            pool="threads",
            concurrency=WORKER_CONCURRENCY,
            perform_ping_check=False,
            queues=sorted(routed | set(WORKER_QUEUES)),
            shutdown_timeout=30.0,
        ) as worker:
            yield worker
    finally:
        task_postrun.disconnect(close_connections)


@pytest.fixture
def task_log() -> Iterator[TaskLog]:
    """Records every task the worker finishes during the test."""
    log = TaskLog()

    def finished(
        sender: Any = None, retval: Any = None, task_id: str | None = None, **kwargs: Any
    ) -> None:
        log.record(sender.name, retval, task_id)

    task_postrun.connect(finished, weak=False)
    try:
        yield log
    finally:
        task_postrun.disconnect(finished)


@pytest.fixture
def provider() -> Iterator[RotatingTokenProvider]:
    """A rotating token endpoint on 127.0.0.1 (stdlib ThreadingHTTPServer)."""
    with RotatingTokenProvider().running() as running:
        yield running


@pytest.fixture
def make_config_variable(
    provider: RotatingTokenProvider, transactional_db: None
) -> Callable[..., ConfigVariable]:
    """A factory of connected ConfigVariables whose refresh token is live at ``provider``.

    ``expires_in`` is the access token's remaining life in seconds; ``due`` puts
    ``refresh_at`` in the past so the next sweep picks the row up.
    """

    def make(*, expires_in: float = 20, due: bool = True, **app_fields: Any) -> ConfigVariable:
        access, refresh = provider.grant()
        app = App.objects.create(
            name=f"Rotating {uuid.uuid4().hex[:8]}",
            slug=f"rotating-{uuid.uuid4().hex[:8]}",
            authorize_url="http://127.0.0.1/authorize",
            token_url=provider.token_url,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            default_scopes="read offline_access",
            use_pkce=False,
            # The flavor that worked at the code exchange goes first (one request).
            preferred_flavor=1,
            **app_fields,
        )
        connection = Connection.objects.create(
            app=app,
            name=f"Widgets {app.slug}",
            slug=f"widgets-{app.slug}",
            grant_type=GrantType.AUTHORIZATION_CODE,
        )
        now = timezone.now()
        return ConfigVariable.objects.create(
            customer=CustomerFactory(),
            connection=connection,
            status=Status.CONNECTED,
            access_token=access,
            refresh_token=refresh,
            token_type="Bearer",
            scopes_granted="read offline_access",
            expires_at=now + timedelta(seconds=expires_in),
            refresh_at=now - timedelta(seconds=1) if due else now + timedelta(hours=1),
            connected_at=now,
        )

    return make
