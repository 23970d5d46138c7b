"""Celery tasks: take primary keys, call one service, stay short.

Codes live for seconds to minutes, so ``exchange_code`` runs on the ``exchange`` queue,
never behind bulk renewals on ``refresh``. Task messages carry IDs only: the code and
tokens stay encrypted in the database.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import kombu.exceptions
from celery import Task, shared_task
from django.conf import settings

from connections.dashboard import heartbeat_beat
from connections.metrics_history import status_snapshot_take
from connections.refresh_expiry import refresh_tokens_warn
from connections.transition_log import transition_log_prune
from connections.watchdog import watchdog_run
from oauthflow import exchange, log_summary, recovery, renewal
from oauthflow.exceptions import ProviderUnavailable

logger = logging.getLogger(__name__)

EXCHANGE_RETRIES = 2
# What the broker client raises when the broker cannot be reached.
BROKER_DOWN = (kombu.exceptions.OperationalError, ConnectionError, OSError)


def dispatch(task: Task, *args: Any, queue: str | None = None, **kwargs: Any) -> None:
    """Send ``task`` to the broker; when the broker is down, run it here and now instead,
    so a customer's Connect or callback is never lost with the row half-way (a code
    lives minutes: the web process exchanging it itself beats a 500)."""
    options: dict[str, Any] = {"queue": queue} if queue else {}  # none: the task's route
    try:
        task.apply_async(args=args, kwargs=kwargs, **options)
    except BROKER_DOWN:
        logger.warning(
            "oauthflow.tasks.broker_down_running_inline task=%s", task.name, exc_info=True
        )
        task.apply(args=args, kwargs=kwargs)


@shared_task(name="oauthflow.exchange_code", bind=True, max_retries=EXCHANGE_RETRIES)
def exchange_code(self, config_variable_id: str) -> str | None:
    """Exchange the ConfigVariable's stored authorization code for tokens."""
    # Run eagerly (no broker) there is no worker to retry later: this try is the last.
    final = self.request.is_eager or self.request.retries >= EXCHANGE_RETRIES
    try:
        result = exchange.config_variable_exchange_code(
            config_variable_id=config_variable_id, final_attempt=final
        )
    except ProviderUnavailable as exc:
        # The code is still fresh for a little while: retry soon, not with long backoff.
        raise self.retry(exc=exc, countdown=2 * (self.request.retries + 1)) from exc
    except Exception:
        # Never leave the customer watching "Connecting…" forever: say it failed.
        exchange.config_variable_exchange_crashed(config_variable_id=config_variable_id)
        raise
    return result.status if result else None


@shared_task(name="oauthflow.renew_config_variable")
def renew_config_variable(config_variable_id: str, force: bool = False) -> str | None:
    """Renew one ConfigVariable's access token if due (``force``: now: "Renew now", a
    client-credentials first fetch); returns its status, None when nothing was done."""
    outcome = renewal.config_variables_renew(config_variable_ids=[config_variable_id], force=force)
    row = outcome.row(config_variable_id)
    return row.status if row else None


@shared_task(name="oauthflow.renew_config_variables")
def renew_config_variables(config_variable_ids: list[str]) -> dict[str, int]:
    """Renew the due ConfigVariables among ``config_variable_ids``; returns the counts."""
    outcome = renewal.config_variables_renew(config_variable_ids=config_variable_ids)
    return {
        "renewed": outcome.renewed,
        "failed": outcome.failed,
        "skipped": outcome.skipped,
        "deferred": outcome.deferred,
    }


@shared_task(name="oauthflow.sweep_renewals")
def sweep_renewals() -> int:
    """Enqueue renewals for every due ConfigVariable, ``RENEWAL_TASK_BATCH`` IDs a task,
    a sweep batch at a time, up to ``RENEWAL_SWEEP_MAX_BATCHES`` batches a run; returns
    how many rows were enqueued."""
    heartbeat_beat()
    total = 0
    size = settings.RENEWAL_TASK_BATCH
    for _ in range(settings.RENEWAL_SWEEP_MAX_BATCHES):
        due = [str(config_variable_id) for config_variable_id in renewal.renewals_due()]
        for start in range(0, len(due), size):
            renew_config_variables.delay(due[start : start + size])
        total += len(due)
        if len(due) < settings.RENEWAL_SWEEP_BATCH:
            break
    refresh_tokens_warn()
    watchdog_run(broker=None if settings.CELERY_TASK_ALWAYS_EAGER else True)
    for config_variable_id, action in recovery.exchanges_recover():
        if action is recovery.Recovery.EXCHANGE:
            dispatch(exchange_code, str(config_variable_id), queue="exchange")
        elif action is recovery.Recovery.FETCH:
            dispatch(renew_config_variable, str(config_variable_id), force=True, queue="exchange")
    status_snapshot_take()  # at most one per 5 minutes: the dashboard's status history
    return total


@shared_task(name="oauthflow.prune_token_requests")
def prune_token_requests() -> dict[str, int]:
    """Roll the token-request log up into its summaries and delete the full rows no longer
    kept, in batches (``oauthflow.log_summary``), then the status transitions no longer
    kept (``connections.transition_log``); returns the counts."""
    counts = dataclasses.asdict(log_summary.token_log_roll_up())
    return counts | dataclasses.asdict(transition_log_prune())
