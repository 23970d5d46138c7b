"""Queueing a Celery task by its registered name.

Task modules import the services they run; a service that must queue a task names it
instead of importing it (no import cycle, and services never import tasks).
"""

from __future__ import annotations

from typing import Any

from celery import current_app


def task_enqueue(name: str, *args: Any, **options: Any) -> None:
    """Queue the task registered as ``name`` (``"webhooks.deliver"``) with ``args``
    (JSON: IDs and plain text, never a secret) and Celery's ``apply_async`` ``options``
    (``countdown`` in seconds, ``queue``). In eager mode (no broker) it runs at once.

    A web process has not imported the apps' task modules (a worker has): they are
    imported on first use, so the task is never sent by name to a broker that nothing
    reads. Raises ``KeyError`` for a name no task module registers, and kombu's
    ``OperationalError`` when the broker cannot be reached.
    """
    if name not in current_app.tasks:
        current_app.loader.import_default_modules()  # Celery's autodiscovery
    current_app.tasks[name].apply_async(args, **options)
