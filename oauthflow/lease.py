"""Claiming a ConfigVariable before spending its code or refresh token.

A claim is an atomic conditional UPDATE of the lease columns, never a transaction held
open across the HTTP call. With rotating refresh tokens a double spend kills the grant
(RFC 9700 §4.14), so only the lease holder may send a token request; a lease that
outlives ``RENEWAL_LEASE_SECONDS`` (a crashed worker) can be claimed again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Container, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from connections.models import ConfigVariable
from oauthflow.renewal_signals import renewal_signal

logger = logging.getLogger(__name__)


def _claim(ids: Sequence[uuid.UUID | str], seconds: int | None) -> tuple[uuid.UUID, int]:
    """One conditional UPDATE: the free rows (no lease, or an expired one) among
    ``ids`` get a new lease token; returns it and how many rows took it."""
    now = timezone.now()
    token = uuid.uuid4()
    seconds = settings.RENEWAL_LEASE_SECONDS if seconds is None else seconds
    claimed = (
        ConfigVariable.objects.filter(pk__in=ids)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .update(lease_token=token, lease_expires_at=now + timedelta(seconds=seconds))
    )
    return token, claimed


def lease_claim(
    *, config_variable_id: uuid.UUID | str, seconds: int | None = None
) -> uuid.UUID | None:
    """Take the lease for ``seconds`` (default ``RENEWAL_LEASE_SECONDS``).

    Returns the lease token, or None when another worker holds a live lease.
    """
    token, claimed = _claim([config_variable_id], seconds)
    return token if claimed else None


def lease_held(*, config_variable_id: uuid.UUID | str) -> bool:
    """Whether a live lease is on the row (the negation of ``_claim``'s "free")."""
    return ConfigVariable.objects.filter(
        pk=config_variable_id, lease_expires_at__gte=timezone.now()
    ).exists()


def lease_release(*, config_variable_id: uuid.UUID | str, lease_token: uuid.UUID) -> bool:
    """Give the lease back; False when it had already expired and been taken over."""
    return bool(
        lease_release_many(config_variable_ids=[config_variable_id], lease_token=lease_token)
    )


def lease_claim_many(
    *, config_variable_ids: Sequence[uuid.UUID | str], seconds: int | None = None
) -> uuid.UUID:
    """Take the lease on every free row of ``config_variable_ids`` in one UPDATE, all
    under one returned lease token (rows under another live lease are left alone: load
    ``pk__in=ids, lease_token=token`` to see which were claimed)."""
    return _claim(config_variable_ids, seconds)[0]


def lease_release_many(
    *, config_variable_ids: Sequence[uuid.UUID | str], lease_token: uuid.UUID
) -> int:
    """Give back the leases ``lease_token`` still holds among ``config_variable_ids``;
    returns how many. Once the release is committed, callers waiting for these rows are
    woken (``renewal_signals.renewal_signal``): the holder's work on them is written."""
    if not config_variable_ids:
        return 0
    released = ConfigVariable.objects.filter(
        pk__in=config_variable_ids, lease_token=lease_token
    ).update(lease_token=None, lease_expires_at=None, enqueued_at=None)
    if released:
        ids = list(config_variable_ids)
        transaction.on_commit(lambda: renewal_signal(config_variable_ids=ids))
    return released


def lease_extend_many(
    *,
    config_variable_ids: Sequence[uuid.UUID | str],
    lease_token: uuid.UUID,
    seconds: int | None = None,
) -> int:
    """Push the expiry of the leases ``lease_token`` still holds among
    ``config_variable_ids`` to ``seconds`` (default ``RENEWAL_LEASE_SECONDS``) from now;
    returns how many. A long batch calls it so its rows never look abandoned."""
    seconds = settings.RENEWAL_LEASE_SECONDS if seconds is None else seconds
    return ConfigVariable.objects.filter(
        pk__in=config_variable_ids, lease_token=lease_token
    ).update(lease_expires_at=timezone.now() + timedelta(seconds=seconds))


@dataclass
class LeaseSet:
    """One claim on a set of rows (``lease_claim_many``) and which of them it still
    holds (``held``). ``keep_alive`` extends the leases once a third of
    ``RENEWAL_LEASE_SECONDS`` has passed since the last extension, on the caller's
    thread (every query stays there), and re-reads ``held``: a row whose lease lapsed
    and was taken by another worker meanwhile is no longer ours to spend."""

    token: uuid.UUID
    ids: list[uuid.UUID | str]
    held: set[uuid.UUID] = field(default_factory=set)
    extended_at: float = field(default_factory=time.monotonic)

    @classmethod
    def claim(cls, *, config_variable_ids: Sequence[uuid.UUID | str]) -> LeaseSet:
        ids = list(config_variable_ids)
        return cls(lease_claim_many(config_variable_ids=ids), ids)

    @staticmethod
    def interval() -> float:
        """Seconds between extensions: a third of the lease, so two may fail first."""
        return settings.RENEWAL_LEASE_SECONDS / 3

    def keep_alive(self) -> None:
        now = time.monotonic()
        if now - self.extended_at < self.interval():
            return
        lease_extend_many(config_variable_ids=self.ids, lease_token=self.token)
        self.held = set(
            ConfigVariable.objects.filter(pk__in=self.ids, lease_token=self.token).values_list(
                "pk", flat=True
            )
        )
        self.extended_at = now

    def release(self, *, released: Container[uuid.UUID] = ()) -> int:
        """Give back every lease of the set still held (waiters are signalled), but
        those of ``released`` rows (their write gave theirs back already)."""
        left = [pk for pk in self.ids if uuid.UUID(str(pk)) not in released]
        return lease_release_many(config_variable_ids=left, lease_token=self.token)


@contextmanager
def lease_kept_alive(
    *, config_variable_id: uuid.UUID | str, lease_token: uuid.UUID
) -> Iterator[None]:
    """Keep a one-row lease alive while its token request runs: a heartbeat thread
    extends it every third of ``RENEWAL_LEASE_SECONDS``. Leases can then be short, so
    a dead holder's lease (no heartbeat) frees the row within ``RENEWAL_LEASE_SECONDS``
    and a waiting caller takes it over instead of sleeping out a long lease."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.RENEWAL_LEASE_SECONDS / 3):
                lease_extend_many(config_variable_ids=[config_variable_id], lease_token=lease_token)
        except Exception:  # a missed beat only shortens the lease; the holder goes on
            logger.warning("oauthflow.lease.heartbeat_failed", exc_info=True)
        finally:
            db_connection.close()

    thread = threading.Thread(target=beat, name="lease-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
