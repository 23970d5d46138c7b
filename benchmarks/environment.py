"""The benchmark's preflight: refuse an environment that would give wrong figures.

PostgreSQL and Redis of its own (never SQLite or eager tasks), empty queues, no other
worker listening, no ConfigVariables outside the benchmark's namespace (the sweep is
global), and a schema that matches the models. Also the command line and host details
the report starts with, with any password masked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection as db_connection

from benchmarks import BenchRefused
from benchmarks.data import BENCH_SLUG
from benchmarks.workers import WORKER_QUEUES, ping_workers, queue_sizes
from connections.models import App, ConfigVariable, Connection, Customer, StatusTransition
from oauthflow.models import TokenRequest


def _masked_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def command_line(argv: Sequence[str]) -> str:
    """The command as typed, prefixed with the database and broker URLs (masked)."""
    prefix = [
        f"{name}={_masked_url(os.environ[name])}"
        for name in ("DATABASE_URL", "CELERY_BROKER_URL")
        if os.environ.get(name)
    ]
    return " ".join([*prefix, "python", *argv])


def require_postgresql(refusal: str) -> None:
    """Refuse (``BenchRefused`` with ``refusal``) unless ``DATABASE_URL`` names a
    PostgreSQL database: the benchmarks measure PostgreSQL, never the SQLite default."""
    engine = settings.DATABASES["default"]["ENGINE"]
    if not os.environ.get("DATABASE_URL") or not engine.endswith("postgresql"):
        raise BenchRefused(refusal)


def bench_environment_check() -> None:
    """Refuse (``BenchRefused``) unless the database is PostgreSQL, the broker Redis,
    the queues empty, no worker listening, and no other ConfigVariables exist."""
    require_postgresql(
        "The renewal benchmark needs PostgreSQL: set DATABASE_URL, e.g. "
        "DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench (after createdb bench)."
    )
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith(("redis://", "rediss://")) or settings.CELERY_TASK_ALWAYS_EAGER:
        raise BenchRefused(
            "The renewal benchmark needs a Redis broker: set CELERY_BROKER_URL, e.g. "
            "CELERY_BROKER_URL=redis://127.0.0.1:6379/7 (a Redis DB of its own)."
        )
    try:
        db_connection.ensure_connection()
    except Exception as exc:
        raise BenchRefused(
            f"Cannot connect to the database ({exc}). Create it first, e.g. "
            "createdb -h 127.0.0.1 -U postgres bench"
        ) from exc
    try:
        waiting = queue_sizes(WORKER_QUEUES)
        listening = ping_workers()
    except Exception as exc:
        raise BenchRefused(f"Cannot reach the broker {_masked_url(broker)}: {exc}") from exc
    if any(waiting.values()):
        raise BenchRefused(
            f"The broker's queues are not empty ({waiting}); use a Redis DB of its own "
            "or purge them: celery -A config purge -Q refresh,exchange"
        )
    if listening:
        raise BenchRefused(
            f"Celery workers already listen on this broker ({', '.join(listening)}); they "
            "would take the benchmark's tasks. Stop them or use a Redis DB of its own."
        )


def schema_drift() -> list[str]:
    """Model columns missing from the database (``table.column``): a database migrated
    before a migration it already applied was edited."""
    missing = []
    models = (App, Connection, Customer, ConfigVariable, StatusTransition, TokenRequest)
    with db_connection.cursor() as cursor:
        for model in models:
            table = model._meta.db_table
            present = {
                column.name
                for column in db_connection.introspection.get_table_description(cursor, table)
            }
            missing += [
                f"{table}.{model_field.column}"
                for model_field in model._meta.concrete_fields
                if model_field.column not in present
            ]
    return missing


def foreign_config_variables() -> int:
    """ConfigVariables outside the benchmark's namespace (the sweep would renew them)."""
    return ConfigVariable.objects.exclude(connection__app__slug=BENCH_SLUG).count()


def environment_lines() -> list[str]:
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
        cursor.execute("SHOW synchronous_commit")
        sync_commit = cursor.fetchone()[0]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"host: {os.cpu_count()} CPUs, load average {load} at start; "
        f"Python {sys.version.split()[0]}",
        f"database: {version}, synchronous_commit={sync_commit}; broker: Redis",
        "workers: DJANGO_DEBUG=false, OAUTH_ALLOW_HTTP_LOOPBACK=true, "
        "OAUTH_ALLOW_PRIVATE_NETWORKS=true",
    ]
