"""The Celery app: settings come from Django's, under the ``CELERY_`` prefix."""

import os
import threading

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _start_watchdog(**_: object) -> None:
    """Each worker watches beat and the broker (``connections.watchdog``): if beat
    stops, nothing beat-driven could notice."""
    from connections.watchdog import watchdog_loop

    stop = threading.Event()
    threading.Thread(
        target=watchdog_loop, kwargs={"stop": stop}, name="watchdog", daemon=True
    ).start()
