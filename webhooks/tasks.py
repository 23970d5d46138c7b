"""Celery task: deliver an endpoint's events, oldest first. Messages carry IDs only."""

from __future__ import annotations

from celery import shared_task

from webhooks.services import deliver_next

BATCH = 50  # deliveries per task run; the rest go in the next run


@shared_task(name="webhooks.deliver", ignore_result=True)
def deliver(endpoint_id: int) -> None:
    """Send what is due for ``endpoint_id``; after a failure, run again after the
    exponential backoff (``webhooks.services.backoff``). In eager mode (no broker) the
    countdown cannot be honoured, so retries follow at once."""
    eager = bool(deliver.app.conf.task_always_eager)
    for _ in range(BATCH):
        countdown = deliver_next(endpoint_id, wait=not eager)
        if countdown is None:
            return
        if countdown > 0:
            deliver.apply_async((endpoint_id,), countdown=countdown)
            return
    deliver.apply_async((endpoint_id,), countdown=0)
