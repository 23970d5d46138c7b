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

    def record(self, name: str, retval: Any) -> None:
        with self._lock:
            self._results[name].append(retval)

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
    sweeps = task_log.count(SWEEP_TASK)
    batches = task_log.count(RENEW_BATCH_TASK)
    sweep_renewals.delay()
    wait_for(
        lambda: task_log.count(SWEEP_TASK) > sweeps,
        timeout=timeout,
        message="the worker did not run the sweep",
    )
    enqueued = task_log.results(SWEEP_TASK)[sweeps]

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
