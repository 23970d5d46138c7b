"""Helpers for the worker tests: what the worker ran, waiting, one beat tick."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from connections.models import ConfigVariable
from oauthflow.tasks import sweep_renewals

SWEEP_TASK = "oauthflow.sweep_renewals"
RENEW_TASK = "oauthflow.renew_config_variable"  # one row ("Renew now", callers)
RENEW_BATCH_TASK = "oauthflow.renew_config_variables"  # the sweep's batches


class TaskLog:
    """What the worker finished during a test: per task name, how often and what it
    returned (``task_postrun``, sent in the worker's pool thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: dict[str, list[Any]] = defaultdict(list)
        self._by_id: dict[str, Any] = {}

    def record(self, name: str, retval: Any, task_id: str | None = None) -> None:
        with self._lock:
            self._results[name].append(retval)
            if task_id is not None:
                self._by_id[task_id] = retval

    def finished(self, task_id: str) -> bool:
        with self._lock:
            return task_id in self._by_id

    def result_of(self, task_id: str) -> Any:
        with self._lock:
            return self._by_id[task_id]

    def count(self, name: str) -> int:
        with self._lock:
            return len(self._results[name])

    def results(self, name: str) -> list[Any]:
        with self._lock:
            return list(self._results[name])


def wait_for(
    condition: Callable[[], Any], *, timeout: float, interval: float = 0.1, message: str = ""
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout} s: {message or condition}")
        time.sleep(interval)


def lease_free(config_variable_id: uuid.UUID) -> bool:
    """True when no renewal holds or has queued the ConfigVariable (its task ended)."""
    return ConfigVariable.objects.filter(
        pk=config_variable_id, lease_token__isnull=True, enqueued_at__isnull=True
    ).exists()


def run_sweep(task_log: TaskLog, *, timeout: float = 30) -> int:
    """One beat tick: send ``sweep_renewals`` through Redis, wait for the worker to run
    it and for every renewal it enqueued to finish; returns how many it enqueued."""
    batches = task_log.count(RENEW_BATCH_TASK)
    # Known by its task ID: a sweep a test sent earlier may log its end after this one
    # was sent, and must not be taken for it.
    sweep = sweep_renewals.delay()
    wait_for(
        lambda: task_log.finished(sweep.id),
        timeout=timeout,
        message="the worker did not run the sweep",
    )
    enqueued = task_log.result_of(sweep.id)

    def rows_done() -> int:  # each batch task returns its counts of rows
        # A batch a test killed logs no counts (None), whenever its end is logged.
        results = task_log.results(RENEW_BATCH_TASK)[batches:]
        return sum(sum((counts or {}).values()) for counts in results)

    wait_for(
        lambda: rows_done() >= enqueued,
        timeout=timeout,
        message=f"the worker did not run the {enqueued} renewal(s) the sweep enqueued",
    )
    return enqueued
