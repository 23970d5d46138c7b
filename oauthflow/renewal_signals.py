"""Waking the callers that wait for another worker's renewal (or exchange) of a row.

A caller that finds a ConfigVariable's lease held (``oauthflow.access``,
``oauthflow.exchange``) listens for the holder's signal instead of polling the database
in a sleep loop. The holder signals when it gives the lease back
(``lease.lease_release_many``, after the commit), so the waiter's next read sees what
was written.

Transport: Redis pub/sub, one channel per ConfigVariable, when Celery's broker is Redis
(a waiter in a web process hears a worker's release); otherwise a ``threading.Event``
per waiter in this process (eager tasks, development). A signal can be missed (Redis
restarting, a holder that died and never releases): a waiter waits at most ``timeout``
seconds (callers pass ``FALLBACK_SECONDS``) and then reads the database once, so a lost
signal costs latency, never a wrong answer.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Protocol

import redis
from celery import current_app

logger = logging.getLogger(__name__)

# Seconds a waiter trusts the signal before reading the database anyway.
FALLBACK_SECONDS = 1.0
CHANNEL_PREFIX = "portal:lease-released:"


class Listener(Protocol):
    def wait(self, timeout: float) -> bool:
        """Block until the row's lease is released or ``timeout`` seconds pass; True
        when a signal arrived."""


class _LocalSignals:
    """Signals within this process: one ``threading.Event`` per listening waiter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = defaultdict(set)

    @contextmanager
    def listen(self, key: str) -> Iterator[Listener]:
        event = threading.Event()
        with self._lock:
            self._waiters[key].add(event)
        try:
            yield _EventListener(event)
        finally:
            with self._lock:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[key]

    def signal(self, keys: Iterable[str]) -> None:
        with self._lock:
            events = [event for key in keys for event in self._waiters.get(key, ())]
        for event in events:
            event.set()


class _EventListener:
    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def wait(self, timeout: float) -> bool:
        signalled = self._event.wait(max(timeout, 0))
        self._event.clear()
        return signalled


class _RedisSignals:
    """Signals through Redis pub/sub: ``PUBLISH`` per released row (one pipelined round
    trip per release), a subscription per waiter."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)

    @contextmanager
    def listen(self, key: str) -> Iterator[Listener]:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(CHANNEL_PREFIX + key)
        except redis.RedisError:
            logger.warning("oauthflow.renewal_signals.subscribe_failed", exc_info=True)
            pubsub.close()
            yield _SleepListener()
            return
        try:
            yield _PubSubListener(pubsub)
        finally:
            pubsub.close()

    def signal(self, keys: Iterable[str]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.publish(CHANNEL_PREFIX + key, b"1")
        pipe.execute()


class _PubSubListener:
    def __init__(self, pubsub: redis.client.PubSub) -> None:
        self._pubsub = pubsub

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(timeout, 0)
        try:
            while (left := deadline - time.monotonic()) > 0:
                if self._pubsub.get_message(timeout=left) is not None:
                    return True
        except redis.RedisError:  # the database read that follows still answers
            logger.warning("oauthflow.renewal_signals.listen_failed", exc_info=True)
            time.sleep(max(deadline - time.monotonic(), 0))
        return False


class _SleepListener:
    """No signal can arrive (Redis unreachable): wait out the fallback."""

    def wait(self, timeout: float) -> bool:
        time.sleep(max(timeout, 0))
        return False


_local = _LocalSignals()


@lru_cache(maxsize=4)
def _redis_signals(url: str) -> _RedisSignals:
    return _RedisSignals(url)


def _transport() -> _LocalSignals | _RedisSignals:
    """Redis when Celery's broker is Redis (read each time: tests and ``demo`` switch
    the app's broker at run time), else this process."""
    url = str(current_app.conf.broker_url or "")
    if url.startswith(("redis://", "rediss://")) and not current_app.conf.task_always_eager:
        return _redis_signals(url)
    return _local


@contextmanager
def renewal_listen(*, config_variable_id: uuid.UUID | str) -> Iterator[Listener]:
    """Listen for the release of ``config_variable_id``'s lease. Enter it once a claim
    found the lease held, then check the lease again before ``wait``: a release between
    the claim and the subscription is then not missed (and uncontended callers never
    open a subscription)."""
    with _transport().listen(str(config_variable_id)) as listener:
        yield listener


def renewal_signal(*, config_variable_ids: Iterable[uuid.UUID | str]) -> None:
    """Wake the waiters of ``config_variable_ids`` (their leases were just released).
    Never raises: a lost signal only delays a waiter until its database fallback."""
    keys = [str(config_variable_id) for config_variable_id in config_variable_ids]
    try:
        _transport().signal(keys)
    except Exception:
        logger.warning("oauthflow.renewal_signals.signal_failed", exc_info=True)
