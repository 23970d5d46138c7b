"""Renewal: a new access token before the old one expires (RFC 6749 §6, §4.4).

One service, ``config_variables_renew``, renews every row: the sweep's batches, "Renew
now", tokens on demand, a client-credentials Connect's first token and the 401 report
(a set of one is the single case). Authorization-code connections spend their refresh
token; client-credentials connections fetch a new token. The service claims the rows'
leases first, so two workers never spend the same refresh token, and re-checks after
the claim that each renewal is still needed. Chains run on a thread pool, many requests
in flight; their results are written in batches (``oauthflow.renewal_writer``), which
release the leases in the same transaction. What a failed renewal becomes is decided
from the chain's ``Outcome`` in ``oauthflow.renewal_failures``."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from connections.fingerprints import fingerprint
from connections.models import ConfigVariable, Connection, GrantType, Status
from oauthflow.chain import run_token_chain
from oauthflow.exceptions import ProviderError
from oauthflow.grants import renewal_fields
from oauthflow.lease import LeaseSet
from oauthflow.renewal_writer import FLUSH_AFTER, Attempt, RenewalWriter

logger = logging.getLogger(__name__)


def due_queryset(*, now: datetime) -> QuerySet[ConfigVariable]:
    """Due rows, oldest first, through the partial index ``config_variable_due`` (its
    cost follows the due rows, not the table). Rows under a live lease are left out, and
    so are rows enqueued within the last ``RENEWAL_ENQUEUE_GUARD`` seconds that no
    worker has claimed yet (still queued); a row whose claim lapsed (its worker died)
    is due again at once."""
    recently = now - timedelta(seconds=settings.RENEWAL_ENQUEUE_GUARD)
    return (
        ConfigVariable.objects.filter(
            status__in=Status.renewable(), refresh_at__isnull=False, refresh_at__lte=now
        )
        .exclude(lease_expires_at__gte=now)
        .exclude(enqueued_at__gte=recently, lease_expires_at__isnull=True)
        .order_by("refresh_at")
    )


def renewals_due(*, now: datetime | None = None, limit: int | None = None) -> list[uuid.UUID]:
    """Claim up to ``limit`` (default ``RENEWAL_SWEEP_BATCH``) due ConfigVariables for
    enqueueing: their IDs, oldest first, now marked ``enqueued_at`` so the next sweep does
    not send them again while their renewal is queued."""
    now = now or timezone.now()
    limit = limit or settings.RENEWAL_SWEEP_BATCH
    ids = list(due_queryset(now=now).values_list("pk", flat=True)[:limit])
    if ids:
        ConfigVariable.objects.filter(pk__in=ids).update(enqueued_at=now)
    return ids


@dataclass(frozen=True)
class Renewal:
    """Which rows need renewing after the claim (besides those whose ``refresh_at``
    passed): all (``force``), those whose access token expires within
    ``if_expiring_within`` seconds (tokens on demand), or (``if_token``, a
    ``fingerprint``) those whose access token is still that one, whatever its expiry
    (the 401 report: done already if the token has changed since)."""

    force: bool = False
    if_expiring_within: float | None = None
    if_token: str | None = None

    def needed(self, config_variable: ConfigVariable) -> bool:
        if not _renewable(config_variable):
            return False
        if self.if_token is not None:
            return fingerprint(config_variable.access_token) == self.if_token
        if self.force:
            return True
        refresh_at = config_variable.refresh_at
        if refresh_at is not None and refresh_at <= timezone.now():
            return True
        if self.if_expiring_within is not None:
            expires_in = config_variable.expires_in
            return not config_variable.access_token or (
                expires_in is not None and expires_in < self.if_expiring_within
            )
        return False


def _first_fetch(config_variable: ConfigVariable) -> bool:
    """A client-credentials Connect fetches its first token by renewal (status
    exchanging): there is no refresh token to spend, only a token to fetch."""
    return (
        config_variable.status == Status.EXCHANGING
        and config_variable.connection.grant_type == GrantType.CLIENT_CREDENTIALS
    )


def _renewable(config_variable: ConfigVariable) -> bool:
    return config_variable.status in Status.renewable() or _first_fetch(config_variable)


@dataclass(frozen=True)
class RenewalOutcome:
    """What ``config_variables_renew`` did with its IDs (counts of rows), and ``rows``:
    each row written (renewed, or with its failure recorded), by primary key."""

    renewed: int = 0
    failed: int = 0  # the failure is recorded on the row (see the module docstring)
    skipped: int = 0  # leased elsewhere, no longer needed, or no longer renewable
    deferred: int = 0  # not tried: too little of the task's time left; the next sweep has them
    leased_elsewhere: frozenset[uuid.UUID] = field(default=frozenset(), compare=False)
    rows: dict[uuid.UUID, ConfigVariable] = field(default_factory=dict, compare=False)

    def row(self, config_variable_id: uuid.UUID | str) -> ConfigVariable | None:
        """The written row ``config_variable_id``, or None when it was not renewed here
        (leased elsewhere, not needed, deferred)."""
        return self.rows.get(uuid.UUID(str(config_variable_id)))


@dataclass(frozen=True)
class _Plan:
    """What a pool thread needs to decide, without a query, whether to start a row:
    the rule, the lease (its ``held`` set is refreshed by the calling thread) and the
    time after which no chain starts (``time.monotonic()``)."""

    rule: Renewal
    lease: LeaseSet
    deadline: float


def _attempt(config_variable: ConfigVariable, index: int, plan: _Plan) -> Attempt:
    """Run one row's chain on a pool thread (no query), unless, when the thread gets to
    it, the row is not held any more (another worker took it after our lease lapsed),
    no longer needed, or (after the first row) past the time budget."""
    attempt = Attempt(config_variable, first_fetch=_first_fetch(config_variable))
    if index and time.monotonic() > plan.deadline:
        attempt.not_tried = "deferred"
        return attempt
    if config_variable.pk not in plan.lease.held or not plan.rule.needed(config_variable):
        attempt.not_tried = "skipped"
        return attempt
    try:
        attempt.kind, fields = renewal_fields(config_variable)
        attempt.result = run_token_chain(
            app=config_variable.connection.app,
            fields=fields,
            kind=attempt.kind,
            config_variable=config_variable,
            records=attempt.records,
        )
    except ProviderError as exc:
        attempt.error = exc
    return attempt


def _drain(in_flight: set[Future[Attempt]], writer: RenewalWriter, lease: LeaseSet) -> None:
    """Take chains as they finish and hand them to the writer, flushing rows that
    waited ``FLUSH_AFTER`` seconds meanwhile (a slow chain does not hold them back) and
    keeping the leases alive (this thread makes every query; the pool's make none).
    The pool starts the next row whenever a thread is free, also while this thread
    writes, so the requests in flight stay ``RENEWAL_BATCH_THREADS``."""
    while in_flight:
        done, _ = wait(
            in_flight, timeout=min(FLUSH_AFTER, lease.interval()), return_when=FIRST_COMPLETED
        )
        for future in done:
            in_flight.remove(future)
            writer.take(future.result())
        if writer.overdue():
            writer.flush()
        lease.keep_alive()


def _load(lease: LeaseSet) -> list[ConfigVariable]:
    """The claimed rows, oldest ``refresh_at`` first, with one Connection and App
    instance per Connection, not per row: fewer objects and secrets to decrypt, and the
    App's preferred flavor is shared by its rows."""
    rows = list(
        ConfigVariable.objects.filter(pk__in=lease.ids, lease_token=lease.token).order_by(
            "refresh_at"
        )
    )
    connections = Connection.objects.select_related("app").in_bulk(
        {row.connection_id for row in rows}
    )
    for row in rows:
        row.connection = connections[row.connection_id]
    lease.held = {row.pk for row in rows}
    return rows


_pools = threading.local()


def _pool() -> ThreadPoolExecutor:
    """The calling thread's pool of ``RENEWAL_BATCH_THREADS`` chain threads, kept from
    call to call: starting them for every batch cost about 0.05 ms of CPU per renewal.
    Per calling thread, so concurrent calls never share (or wait for) each other's
    threads; a new pool after a fork (threads do not survive one) or a change of the
    setting."""
    key = (os.getpid(), max(1, settings.RENEWAL_BATCH_THREADS))
    if getattr(_pools, "key", None) != key:
        if getattr(_pools, "key", (None,))[0] == key[0]:
            _pools.pool.shutdown(wait=False)
        _pools.pool = ThreadPoolExecutor(max_workers=key[1], thread_name_prefix="renewal")
        _pools.key = key
    pool: ThreadPoolExecutor = _pools.pool
    return pool


def config_variables_renew(
    *,
    config_variable_ids: Sequence[uuid.UUID | str],
    force: bool = False,
    if_expiring_within: float | None = None,
    if_token: str | None = None,
) -> RenewalOutcome:
    """Renew the ConfigVariables among ``config_variable_ids`` that still need it after
    the claim (their ``refresh_at`` passed, or the ``Renewal`` rule that ``force``,
    ``if_expiring_within`` (seconds) and ``if_token`` make), each with one flavor chain
    (RFC 6749 §6; §4.4 for client credentials); the one renewal service.

    One lease claim and one load for the set; rows under another live lease are
    skipped (``leased_elsewhere``). ``RENEWAL_BATCH_THREADS`` chains run at once on a
    thread pool (their HTTP waits overlap each other and the writes); every query stays
    on the calling thread. Results, renewed or failed, are written ``RENEWAL_WRITE_BATCH``
    at a time (or within ``FLUSH_AFTER`` s), releasing their leases in the same
    transaction; callers waiting for a row are then signalled. The leases are extended
    every third of their life, so a slow set keeps them (a row whose lease was lost
    anyway is skipped). After the first row, a chain starts only while one more token
    request (twice ``OAUTH_HTTP_TIMEOUT``) fits in the task's soft time limit; the rest
    are ``deferred`` to the next sweep. Rows whose token request was answered are
    written even when another row raises (a rotated refresh token exists nowhere else).

    Provider errors are recorded on the rows, not raised. Raises ``DatabaseError`` when
    a write fails ``WRITE_ATTEMPTS`` times.
    """
    rule = Renewal(force=force, if_expiring_within=if_expiring_within, if_token=if_token)
    lease = LeaseSet.claim(config_variable_ids=config_variable_ids)
    deadline = (
        time.monotonic() + settings.CELERY_TASK_SOFT_TIME_LIMIT - 2 * settings.OAUTH_HTTP_TIMEOUT
    )
    plan = _Plan(rule, lease, deadline)
    writer = RenewalWriter(lease.token)
    leased_elsewhere: frozenset[uuid.UUID] = frozenset()
    in_flight: set[Future[Attempt]] = set()
    pool = _pool()
    try:
        rows = _load(lease)
        leased_elsewhere = frozenset(
            uuid.UUID(str(pk)) for pk in lease.ids if uuid.UUID(str(pk)) not in lease.held
        )
        writer.skipped = len(lease.ids) - len(rows)
        # Every row is queued at once; the pool's threads bound what is in flight.
        for index, config_variable in enumerate(rows):
            in_flight.add(pool.submit(_attempt, config_variable, index, plan))
        _drain(in_flight, writer, lease)
    finally:
        _finish(in_flight, writer, lease)
    return RenewalOutcome(
        renewed=writer.renewed,
        failed=writer.failed,
        skipped=writer.skipped,
        deferred=writer.deferred,
        leased_elsewhere=leased_elsewhere,
        rows=dict(writer.written),
    )


def _finish(in_flight: set[Future[Attempt]], writer: RenewalWriter, lease: LeaseSet) -> None:
    """Write what is pending and release every lease still held. When something raised,
    still keep every answered renewal (its refresh token may have rotated), writing
    those at hand before waiting for the rest; their failures are not recorded (the
    next sweep retries)."""
    try:
        try:
            writer.flush()
        finally:
            for future in in_flight:
                future.cancel()  # start no new chain (a running one cannot be cancelled)
            wait(in_flight)
        for future in in_flight:
            if future.cancelled() or future.exception() is not None:  # not sent, or no reply
                continue
            try:
                writer.take(future.result(), record_failure=False)
            except Exception:
                logger.exception("oauthflow.renewal.batch_cleanup_failed")
        writer.flush()
    finally:
        lease.release(released=writer.written)
