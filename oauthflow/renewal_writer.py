"""The renewal service's writes (``oauthflow.renewal``): finished chains, batched.

Every renewal's result, renewed or failed, is prepared as a ``PreparedTransition`` as
its chain finishes and written with the others of its batch in one transaction that
also releases their leases and saves their token-request log. All of it runs on the
service's calling thread: the chains on pool threads make no query.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db import connection as db_connection

from connections.models import ConfigVariable, Status
from connections.services import (
    PreparedTransition,
    token_changes,
    transition_announce,
    transition_prepare,
    transitions_save,
)
from oauthflow.chain import ChainResult, flavor_remember
from oauthflow.exceptions import ProviderError
from oauthflow.lease import lease_release_many
from oauthflow.models import TokenRequest
from oauthflow.renewal_failures import renewal_failure_prepare

logger = logging.getLogger(__name__)

WRITE_ATTEMPTS = 3
FLUSH_AFTER = 1.0  # seconds a renewed row may wait for its batch's write

T = TypeVar("T")


@dataclass
class Attempt:
    """One row's chain, run on a pool thread: no query, so nothing to share.
    ``first_fetch``: a client-credentials Connect's first token (status exchanging).
    ``not_tried``: ``skipped`` or ``deferred`` when no request was sent."""

    config_variable: ConfigVariable
    first_fetch: bool = False
    not_tried: str = ""
    kind: str = ""
    result: ChainResult | None = None
    error: ProviderError | None = None
    records: list[TokenRequest] = field(default_factory=list)


def write_retrying(write: Callable[[], T], *, config_variable_ids: list[str], rotated: bool) -> T:
    """Run ``write``, retrying on ``DatabaseError`` (``WRITE_ATTEMPTS`` times, then
    raised): a rotated refresh token that was spent at the app exists nowhere else, so
    each failure is logged at CRITICAL."""
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


def _renewed_reason(attempt: Attempt, result: ChainResult) -> str:
    if attempt.first_fetch:
        return f"Client-credentials token fetched with flavor {result.flavor.label}."
    return f"Access token renewed ({attempt.kind}) with flavor {result.flavor.label}."


@dataclass
class RenewalWriter:
    """Finished chains, written ``RENEWAL_WRITE_BATCH`` at a time, or once the oldest
    has waited ``FLUSH_AFTER`` seconds (a spent refresh token waits little).
    ``written`` holds every row written, renewed or with its failure recorded."""

    lease: uuid.UUID
    pending: list[PreparedTransition] = field(default_factory=list)
    records: list[TokenRequest] = field(default_factory=list)
    oldest: float | None = None  # time.monotonic() when the oldest pending row came
    renewed: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0
    written: dict[uuid.UUID, ConfigVariable] = field(default_factory=dict)
    _renewals: set[uuid.UUID] = field(default_factory=set)  # pending rows that renewed

    def take(self, attempt: Attempt, *, record_failure: bool = True) -> None:
        """Queue one finished chain's outcome for writing; never raises for a row's
        data (a row that cannot be stored is logged and counted as failed)."""
        if attempt.not_tried == "deferred":
            self.deferred += 1
            return
        if attempt.not_tried == "skipped":
            self.skipped += 1
            return
        self.records += attempt.records
        result = attempt.result
        if result is None:
            if record_failure and attempt.error is not None:
                self._queue(renewal_failure_prepare(attempt.config_variable, attempt.error))
                self.failed += 1
            return
        prepared = self._prepare_renewed(attempt, result)
        if prepared is None:
            self.failed += 1
            return
        self._renewals.add(attempt.config_variable.pk)
        self._queue(prepared)
        self.renewed += 1
        try:
            flavor_remember(app=attempt.config_variable.connection.app, flavor=result.flavor)
        except DatabaseError:  # a hint for next time; the tokens matter more
            logger.warning("oauthflow.renewal.flavor_not_remembered", exc_info=True)

    def _prepare_renewed(self, attempt: Attempt, result: ChainResult) -> PreparedTransition | None:
        config_variable = attempt.config_variable
        try:
            changes = token_changes(
                config_variable=config_variable, token=result.token, now=result.sent_at
            )
            return transition_prepare(
                config_variable=config_variable,
                to_status=Status.CONNECTED,
                reason=_renewed_reason(attempt, result),
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
            return None

    def _queue(self, prepared: PreparedTransition) -> None:
        self.pending.append(prepared)
        if self.oldest is None:
            self.oldest = time.monotonic()
        if len(self.pending) >= settings.RENEWAL_WRITE_BATCH or self.overdue():
            self.flush()

    def overdue(self) -> bool:
        return self.oldest is not None and time.monotonic() - self.oldest >= FLUSH_AFTER

    def flush(self) -> None:
        """Write the pending rows, release their leases (where still this batch's) and
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
            self._save_one_by_one(pending, records)
            return
        for item in pending:
            self._done(item)

    def _done(self, item: PreparedTransition) -> None:
        """A row's write is committed: count it written and announce its transition."""
        self.written[item.config_variable.pk] = item.config_variable
        transition_announce(item)

    def _save_one_by_one(
        self, pending: list[PreparedTransition], records: list[TokenRequest]
    ) -> None:
        """Each row in its own write, announced once committed (so a ``DatabaseError``
        part-way loses no announcement of the rows already written)."""
        for index, item in enumerate(pending):
            try:
                self._save([item], [])
                self._done(item)
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
                if item.config_variable.pk in self._renewals:
                    self.renewed -= 1
                    self.failed += 1
        self._save([], records)

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

        write_retrying(
            save,
            config_variable_ids=[str(pk) for pk in ids],
            rotated=any(pk in self._renewals for pk in ids),
        )
