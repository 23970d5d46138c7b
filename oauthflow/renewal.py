"""Renewal: a new access token before the old one expires (RFC 6749 §6, §4.4).

Authorization-code connections spend their refresh token; client-credentials
connections fetch a new token. Each renewal claims the ConfigVariable's lease first, so
two workers never spend the same refresh token, and re-checks after the claim that the
renewal is still due. What a failed renewal becomes is decided from the chain's
``Outcome`` in ``oauthflow.renewal_failures``."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db import connection as db_connection
from django.db.models import QuerySet
from django.utils import timezone

from connections.fingerprints import fingerprint
from connections.models import ConfigVariable, Connection, GrantType, Status
from connections.services import (
    PreparedTransition,
    config_variable_store_tokens,
    token_changes,
    transition_announce,
    transition_prepare,
    transitions_save,
)
from oauthflow.chain import ChainResult, flavor_remember, run_token_chain
from oauthflow.exceptions import ProviderError
from oauthflow.grants import renewal_fields
from oauthflow.lease import (
    lease_claim,
    lease_claim_many,
    lease_extend_many,
    lease_kept_alive,
    lease_release,
    lease_release_many,
)
from oauthflow.models import TokenRequest
from oauthflow.renewal_failures import renewal_failed as _renewal_failed

logger = logging.getLogger(__name__)

WRITE_ATTEMPTS = 3
FLUSH_AFTER = 1.0  # seconds a renewed row may wait for its batch's write

T = TypeVar("T")


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


def _still_needed(
    config_variable: ConfigVariable,
    *,
    force: bool,
    if_expiring_within: float | None,
    if_token: str | None = None,
) -> bool:
    if if_token is not None:
        # A forced renewal of one token: done already if the token has changed since.
        return fingerprint(config_variable.access_token) == if_token
    if force:
        return True
    now = timezone.now()
    if config_variable.refresh_at is not None and config_variable.refresh_at <= now:
        return True
    if if_expiring_within is not None:
        expires_in = config_variable.expires_in
        return not config_variable.access_token or (
            expires_in is not None and expires_in < if_expiring_within
        )
    return False


def _renewed_reason(result: ChainResult, kind: str, *, first_fetch: bool) -> str:
    if first_fetch:
        return f"Client-credentials token fetched with flavor {result.flavor.label}."
    return f"Access token renewed ({kind}) with flavor {result.flavor.label}."


def _write_retrying(write: Callable[[], T], *, config_variable_ids: list[str], rotated: bool) -> T:
    """Run ``write``, retrying on ``DatabaseError``: a rotated refresh token that was
    spent at the app exists nowhere else, so each failure is logged at CRITICAL."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return write()
        except DatabaseError:
            logger.critical(
                "oauthflow.renewal.write_failed",
                extra={
                    "config_variables": config_variable_ids,
                    "attempt": attempt,
                    "rotated_refresh_token": rotated,
                },
                exc_info=True,
            )
            if attempt == WRITE_ATTEMPTS:
                raise
            if not db_connection.in_atomic_block:  # a caller's transaction is its own
                close_old_connections()
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def _store_renewed(
    config_variable: ConfigVariable, result: ChainResult, kind: str, *, first_fetch: bool
) -> ConfigVariable:
    """Write the new tokens, retrying (``_write_retrying``)."""
    return _write_retrying(
        lambda: config_variable_store_tokens(
            config_variable=config_variable,
            token=result.token,
            reason=_renewed_reason(result, kind, first_fetch=first_fetch),
            issued_at=result.sent_at,
        ),
        config_variable_ids=[str(config_variable.pk)],
        rotated=bool(result.token.refresh_token),
    )


def config_variable_renew(
    *,
    config_variable_id: uuid.UUID | str,
    force: bool = False,
    if_expiring_within: float | None = None,
    if_token: str | None = None,
) -> ConfigVariable | None:
    """Renew one ConfigVariable's access token if it still needs it after the claim:
    its ``refresh_at`` passed, ``force``, (``if_expiring_within`` seconds) the token
    expires that soon, or (``if_token``, a ``fingerprint``) the access token is still
    the one with that fingerprint, whatever its expiry.

    Returns the updated ConfigVariable (renewed, or with the failure recorded), or None
    when another worker holds the lease or nothing was needed after the claim. Provider
    errors are recorded on the row, not raised.
    """
    lease = lease_claim(config_variable_id=config_variable_id)
    if lease is None:
        return None
    try:
        config_variable = ConfigVariable.objects.select_related("connection__app").get(
            pk=config_variable_id
        )
        # A client-credentials Connect fetches its first token here (status exchanging).
        first_fetch = (
            config_variable.status == Status.EXCHANGING
            and config_variable.connection.grant_type == GrantType.CLIENT_CREDENTIALS
        )
        if config_variable.status not in Status.renewable() and not first_fetch:
            return None
        if not _still_needed(
            config_variable,
            force=force,
            if_expiring_within=if_expiring_within,
            if_token=if_token,
        ):
            return None
        try:
            kind, fields = renewal_fields(config_variable)
            with lease_kept_alive(config_variable_id=config_variable_id, lease_token=lease):
                result = run_token_chain(
                    app=config_variable.connection.app,
                    fields=fields,
                    kind=kind,
                    config_variable=config_variable,
                )
        except ProviderError as exc:
            return _renewal_failed(config_variable, exc)
        return _store_renewed(config_variable, result, kind, first_fetch=first_fetch)
    finally:
        lease_release(config_variable_id=config_variable_id, lease_token=lease)


@dataclass(frozen=True)
class BatchOutcome:
    """What ``config_variables_renew`` did with its IDs (counts of rows)."""

    renewed: int = 0
    failed: int = 0  # the failure is recorded on the row (see the module docstring)
    skipped: int = 0  # leased elsewhere, no longer due, or no longer renewable
    deferred: int = 0  # not tried: too little of the task's time left; the next sweep has them


@dataclass
class _Attempt:
    """One row's chain, run on a pool thread: no query, so nothing to share."""

    config_variable: ConfigVariable
    kind: str = ""
    result: ChainResult | None = None
    error: ProviderError | None = None
    records: list[TokenRequest] = field(default_factory=list)


def _attempt(config_variable: ConfigVariable) -> _Attempt:
    attempt = _Attempt(config_variable)
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


@dataclass
class _BatchWriter:
    """The batch's writes, all on the calling thread: renewed rows are prepared as
    their chains finish and written ``RENEWAL_WRITE_BATCH`` at a time, or once the
    oldest has waited ``FLUSH_AFTER`` seconds (a spent refresh token waits little)."""

    lease: uuid.UUID
    pending: list[PreparedTransition] = field(default_factory=list)
    records: list[TokenRequest] = field(default_factory=list)
    oldest: float | None = None  # time.monotonic() when the oldest pending row came
    renewed: int = 0
    failed: int = 0

    def take(self, attempt: _Attempt, *, record_failure: bool = True) -> None:
        """Queue one finished chain's outcome for writing; never raises for a row's
        data (a row that cannot be stored is logged and counted as failed)."""
        config_variable, result = attempt.config_variable, attempt.result
        self.records += attempt.records
        if result is None:
            if record_failure and attempt.error is not None:
                _renewal_failed(config_variable, attempt.error)
                self.failed += 1
            return
        try:
            changes = token_changes(
                config_variable=config_variable, token=result.token, now=result.sent_at
            )
            prepared = transition_prepare(
                config_variable=config_variable,
                to_status=Status.CONNECTED,
                reason=_renewed_reason(result, attempt.kind, first_fetch=False),
                **changes,
            )
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            # The refresh token is spent and its reply cannot be stored: say so loudly,
            # and let the batch's other rows be written.
            logger.critical(
                "oauthflow.renewal.store_failed",
                extra={"config_variable": str(config_variable.pk)},
                exc_info=True,
            )
            self.failed += 1
            return
        self.pending.append(prepared)
        self.renewed += 1
        if self.oldest is None:
            self.oldest = time.monotonic()
        try:
            flavor_remember(app=config_variable.connection.app, flavor=result.flavor)
        except DatabaseError:  # a hint for next time; the tokens matter more
            logger.warning("oauthflow.renewal.flavor_not_remembered", exc_info=True)
        if len(self.pending) >= settings.RENEWAL_WRITE_BATCH or self.overdue():
            self.flush()

    def overdue(self) -> bool:
        return self.oldest is not None and time.monotonic() - self.oldest >= FLUSH_AFTER

    def flush(self) -> None:
        """Write the renewed rows, release their leases (where still this batch's) and
        save the token-request log in one transaction, then announce the transitions.
        A row whose data the write cannot take (not a ``DatabaseError``) is dropped,
        logged at CRITICAL, and the others are written one by one."""
        if not self.pending and not self.records:
            return
        pending, records = self.pending, self.records
        self.pending, self.records, self.oldest = [], [], None
        try:
            self._save(pending, records)
        except (DatabaseError, SoftTimeLimitExceeded):
            self.pending, self.records = pending + self.pending, records + self.records
            self.oldest = self.oldest or time.monotonic()
            raise
        except Exception:
            logger.critical("oauthflow.renewal.batch_write_failed", exc_info=True)
            kept = []
            for index, item in enumerate(pending):
                try:
                    self._save([item], [])
                    kept.append(item)
                except DatabaseError:
                    self.pending[:0] = pending[index:]  # retried with the next write
                    self.records[:0] = records
                    raise
                except Exception:
                    logger.critical(
                        "oauthflow.renewal.store_failed",
                        extra={"config_variable": str(item.config_variable.pk)},
                        exc_info=True,
                    )
                    self.renewed -= 1
                    self.failed += 1
            self._save([], records)
            pending = kept
        for item in pending:
            transition_announce(item)

    def _save(self, pending: list[PreparedTransition], records: list[TokenRequest]) -> None:
        ids = [item.config_variable.pk for item in pending]

        def save() -> None:
            with transaction.atomic():
                # The tokens are written even if the lease was lost meanwhile: a spent
                # refresh token's successor is the only one that still works.
                transitions_save(pending)
                if ids:
                    lease_release_many(config_variable_ids=ids, lease_token=self.lease)
                TokenRequest.objects.bulk_create(records)

        _write_retrying(save, config_variable_ids=[str(pk) for pk in ids], rotated=bool(ids))


@dataclass
class _BatchLease:
    """The batch's claim on its rows, extended at half its life while the batch runs
    (also while it only waits for chains), and which rows it still holds."""

    token: uuid.UUID
    ids: list[uuid.UUID | str]
    held: set[uuid.UUID]
    extend_at: float = field(
        default_factory=lambda: time.monotonic() + settings.RENEWAL_LEASE_SECONDS / 2
    )

    def keep_alive(self) -> None:
        now = time.monotonic()
        if now < self.extend_at:
            return
        lease_extend_many(config_variable_ids=self.ids, lease_token=self.token)
        self.held = set(
            ConfigVariable.objects.filter(pk__in=self.ids, lease_token=self.token).values_list(
                "pk", flat=True
            )
        )
        self.extend_at = now + settings.RENEWAL_LEASE_SECONDS / 2


def _drain(
    in_flight: set[Future[_Attempt]], writer: _BatchWriter, lease: _BatchLease, *, until: int
) -> None:
    """Take finished chains until at most ``until`` are in flight, flushing rows that
    waited ``FLUSH_AFTER`` seconds meanwhile (a slow chain does not hold them back) and
    keeping the lease alive."""
    while len(in_flight) > until:
        done, _ = wait(in_flight, timeout=FLUSH_AFTER, return_when=FIRST_COMPLETED)
        for future in done:
            in_flight.remove(future)
            writer.take(future.result())
        if writer.overdue():
            writer.flush()
        lease.keep_alive()


def config_variables_renew(*, config_variable_ids: Sequence[uuid.UUID | str]) -> BatchOutcome:
    """Renew the due ConfigVariables among ``config_variable_ids`` (a sweep batch) with
    one lease claim, one load and one write per ``RENEWAL_WRITE_BATCH`` renewed rows,
    instead of six queries a row. Same rules as ``config_variable_renew``: only rows
    whose lease this call took and whose ``refresh_at`` has passed are renewed, each
    renewal is one flavor chain (RFC 6749 §6, §4.4), and failures are recorded per row.

    ``RENEWAL_BATCH_THREADS`` chains run at once on a thread pool (their HTTP waits
    overlap each other and the writes); every query stays on the calling thread. The
    leases are extended at half their life, so a slow batch keeps them (a row whose
    lease was lost anyway is skipped). A new chain starts only while one more token
    request (twice ``OAUTH_HTTP_TIMEOUT``) fits in the task's soft time limit; the rest
    are ``deferred`` to the next sweep. Rows whose token request was answered are
    written even when another row raises (a rotated refresh token exists nowhere else).
    Raises ``DatabaseError`` when a write fails ``WRITE_ATTEMPTS`` times.
    """
    ids = list(config_variable_ids)
    token = lease_claim_many(config_variable_ids=ids)
    started = time.monotonic()
    deadline = started + settings.CELERY_TASK_SOFT_TIME_LIMIT - 2 * settings.OAUTH_HTTP_TIMEOUT
    threads = max(1, settings.RENEWAL_BATCH_THREADS)
    writer = _BatchWriter(token)
    skipped = deferred = 0
    in_flight: set[Future[_Attempt]] = set()
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="renewal")
    try:
        rows = list(
            ConfigVariable.objects.filter(pk__in=ids, lease_token=token).order_by("refresh_at")
        )
        lease = _BatchLease(token, ids, held={row.pk for row in rows})
        skipped = len(ids) - len(rows)
        # One Connection and App instance per batch, not per row: fewer objects and
        # secrets to decrypt, and the App's preferred flavor is shared by its rows.
        connections = Connection.objects.select_related("app").in_bulk(
            {row.connection_id for row in rows}
        )
        for index, config_variable in enumerate(rows):
            if index and time.monotonic() > deadline:
                deferred = len(rows) - index
                break
            lease.keep_alive()
            config_variable.connection = connections[config_variable.connection_id]
            if (
                config_variable.pk not in lease.held  # lost: another worker has it now
                or config_variable.status not in Status.renewable()
                or not _still_needed(config_variable, force=False, if_expiring_within=None)
            ):
                skipped += 1
                continue
            in_flight.add(pool.submit(_attempt, config_variable))
            _drain(in_flight, writer, lease, until=threads - 1)
        _drain(in_flight, writer, lease, until=0)
    finally:
        try:
            # Something raised: still keep every answered renewal (its refresh token
            # may have rotated), writing those at hand before waiting for the rest.
            # Failures are not recorded; the next sweep retries.
            try:
                writer.flush()
            finally:
                pool.shutdown(wait=True)
            for future in in_flight:
                if future.cancelled() or future.exception() is not None:
                    continue
                try:
                    writer.take(future.result(), record_failure=False)
                except Exception:
                    logger.exception("oauthflow.renewal.batch_cleanup_failed")
            writer.flush()
        finally:
            lease_release_many(config_variable_ids=ids, lease_token=token)
    return BatchOutcome(
        renewed=writer.renewed, failed=writer.failed, skipped=skipped, deferred=deferred
    )
