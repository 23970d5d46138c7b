"""Is the renewal machinery alive? One decision, read by ``/healthz`` and acted on by
the watchdog that alerts.

Beat and the broker are told apart by what each last did: the sweep records a heartbeat
each time beat's schedule reaches a worker, so a late heartbeat with a reachable broker
blames beat, and an unreachable broker is named as such (beat cannot reach the workers
through it either). A fresh deploy gets ``SWEEP_GRACE_SECONDS`` before a missing first
sweep counts as late. ``/healthz`` only reads; alerts are raised by ``watchdog_run``,
called by the sweep and every ``WATCHDOG_INTERVAL`` seconds by a thread in each worker
(``config.celery``), never by a GET.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from celery import current_app
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from connections.alerts import alert_raise, alert_resolve
from connections.dashboard import overdue, sweep_age
from connections.models import Heartbeat

logger = logging.getLogger(__name__)

STARTED = "portal_started"  # the first time anything checked: a deploy's grace starts


@dataclass(frozen=True)
class Machinery:
    """What the renewal machinery is doing: ``broker`` (None: no broker, eager tasks),
    ``sweep_age`` seconds since the last sweep (None: never), ``sweep`` one of "ok",
    "late", "starting" (a fresh deploy's grace) or "n/a"; ``blame`` names what to fix;
    ``overdue`` counts renewals two sweep intervals late."""

    broker: bool | None
    sweep_age: float | None
    sweep: str
    blame: str
    overdue: int


def broker_reachable() -> bool | None:
    """Whether the broker answers (None: no broker configured, tasks run eagerly)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


def watchdog_loop(*, stop: threading.Event) -> None:
    """Run ``watchdog_run`` every ``WATCHDOG_INTERVAL`` seconds until ``stop`` is set
    (a daemon thread in each worker: ``config.celery``)."""
    while not stop.wait(settings.WATCHDOG_INTERVAL):
        try:
            watchdog_run(broker=broker_reachable())
        except Exception:  # a watchdog must outlive a database blip
            logger.warning("connections.watchdog.failed", exc_info=True)
        finally:
            close_old_connections()


def _started(now: datetime) -> datetime:
    beat, _ = Heartbeat.objects.get_or_create(name=STARTED, defaults={"at": now})
    return beat.at


def machinery_state(*, broker: bool | None, now: datetime | None = None) -> Machinery:
    """The machinery's state, given whether the broker answered (``broker``)."""
    now = now or timezone.now()
    late_count = overdue(now=now).count()
    if broker is None:
        return Machinery(None, None, "n/a", "", late_count)
    age = sweep_age(now=now)
    limit = settings.RENEWAL_SWEEP_INTERVAL * settings.SWEEP_LATE_INTERVALS
    if age is not None and age <= limit:
        return Machinery(broker, age, "ok", "", late_count)
    if age is None and (now - _started(now)).total_seconds() < settings.SWEEP_GRACE_SECONDS:
        return Machinery(broker, None, "starting", "", late_count)
    blame = "the broker is down" if broker is False else "Celery beat is not running"
    return Machinery(broker, age, "late", blame, late_count)


def watchdog_run(*, broker: bool | None, now: datetime | None = None) -> Machinery:
    """Raise or resolve the machinery's alerts (once per incident)."""
    state = machinery_state(broker=broker, now=now)
    if broker is False:
        alert_raise(
            key="broker:down",
            subject="The Celery broker is unreachable: renewals cannot be sent",
            body="The broker did not answer; renewals and exchanges fall back to the web "
            "process where they can, the sweep cannot run.",
        )
    elif broker is True:
        alert_resolve(key="broker:down")
    if state.sweep == "late" and broker is not False:
        ago = "never" if state.sweep_age is None else f"{state.sweep_age:.0f} s ago"
        alert_raise(
            key="beat:late",
            subject="Renewal sweep is late: is Celery beat running?",
            body=f"The renewal sweep last ran {ago}; {state.overdue} renewal(s) are overdue.",
        )
    elif state.sweep == "ok":
        alert_resolve(key="beat:late")
    return state
