"""Pages at a million connections: the time of each operator page, and the log's size.

A measurement, not a test. It needs a PostgreSQL database of its own (it is emptied)::

    createdb -h 127.0.0.1 -U postgres pages
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pages \\
    python -m benchmarks.pages --connections 1000000

It generates, in bulk SQL (``INSERT ... SELECT generate_series``), ``--connections``
ConfigVariables and a month of hourly renewals' worth of history in the bounded log's
shape (``oauthflow.log_summary``): the rows a month leaves in full (the newest
``TOKEN_LOG_KEEP_SUCCESSES`` successes per ConfigVariable, the failures), the hourly
summaries and per-minute counts of every renewal, and the minute or two of rows the
roll-up has not counted yet. Then it times ``/metrics``, the health dashboard and every
admin change list (unfiltered and with a filter) as an admin through Django's test
client (the median of ``--repeat`` requests after one warm-up), and prints each time,
the database and log sizes, and the targets of issue 15 (< 200 ms a page, log < 10 GB)
with pass or fail; last, it times the beat task's roll-up of the uncounted rows (it must
take less than the traffic it rolls up). ``--reuse`` keeps data already generated for
the same size (and adds a fresh minute and a half of uncounted renewals).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks import BenchRefused

PAGE_TARGET_MS = 200.0
LOG_TARGET_BYTES = 10 * 1024**3
APPS = 10
DAYS = 30
FAILURE_SHARE = 0.001  # of renewals: 1 in 1,000 fails (all are kept in full)
TAIL_SECONDS = 90  # rows not yet rolled up: about one roll-up interval and a half
LOG_TABLES = (
    "oauthflow_tokenrequest",
    "oauthflow_tokenrequestsummary",
    "oauthflow_renewalminute",
)
OTHER_TABLES = ("connections_configvariable", "connections_statustransition")
# Realistic redacted contents: a stored row is about as large as a real one.
BODY = "grant_type=refresh_token&refresh_token=%5BREDACTED%5D&scope=offline_access+read"
HEADERS = '{"Authorization": "Basic [REDACTED]", "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json", "User-Agent": "connection-portal"}'  # noqa: E501
REPLY = '{"access_token": "[REDACTED]", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "[REDACTED]", "scope": "offline_access read"}'  # noqa: E501


@dataclass(frozen=True)
class Page:
    label: str
    url: str
    ms: float


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pages", description=__doc__)
    parser.add_argument("--connections", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per page")
    parser.add_argument("--reuse", action="store_true", help="keep data of the same size")
    return parser.parse_args(argv)


def _check_environment() -> None:
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if not os.environ.get("DATABASE_URL") or not engine.endswith("postgresql"):
        raise BenchRefused(
            "The pages benchmark needs a PostgreSQL database of its own (it is emptied): "
            "createdb -h 127.0.0.1 -U postgres pages, then "
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/pages"
        )


def _sql(statement: str, params: Sequence[object] = ()) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _insert_series(model: type, count: int, expressions: dict[str, str]) -> None:
    """INSERT ``count`` rows of ``model`` in one statement over ``generate_series`` (``g``
    from 1): columns in ``expressions`` are SQL, every other column its field default."""
    from django.db import connection
    from django.db.models import AutoField, BigAutoField

    columns, values, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.column in expressions:
            columns.append(field.column)
            values.append(expressions[field.column].replace("%", "%%"))  # not parameters
        elif isinstance(field, AutoField | BigAutoField):
            continue
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            columns.append(field.column)
            values.append("now()")
        else:
            columns.append(field.column)
            values.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
    _sql(
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 (names from the models)
        f"SELECT {', '.join(values)} FROM generate_series(1, %s::bigint) AS g",
        [*params, count],
    )


def _progress(message: str) -> None:
    print(f"[pages] {message}", file=sys.stderr, flush=True)


def _empty() -> None:
    from django.apps import apps

    tables = [
        model._meta.db_table
        for model in apps.get_models()
        if model._meta.app_label in ("connections", "oauthflow", "webhooks")
    ]
    _sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def _generate_fleet(n: int) -> tuple[list[int], list[int]]:
    """Apps, Connections, Customers and ``n`` ConfigVariables (``n / APPS`` customers,
    each connected to every Connection); returns the App and Connection ids."""
    from connections.models import App, ConfigVariable, Connection, Customer, StatusTransition

    app_ids, connection_ids = [], []
    for i in range(APPS):
        app = App.objects.create(
            name=f"Pages app {i:02d}",
            slug=f"pages-app-{i:02d}",
            authorize_url=f"https://app{i}.example.com/oauth2/authorize",
            token_url=f"https://app{i}.example.com/oauth2/token",
            client_id=f"pages-client-{i}",
            client_secret=f"pages-secret-{i}",
        )
        app_ids.append(app.pk)
        connection_ids.append(
            Connection.objects.create(app=app, name=f"Pages {i:02d}", slug=f"pages-{i:02d}").pk
        )
    customers = -(-n // APPS)
    _insert_series(Customer, customers, {"name": "'pages-customer-' || g"})
    first_customer = Customer.objects.order_by("pk").values_list("pk", flat=True).first()
    _progress(f"{customers:,} customers")
    status = (
        "CASE g % 100 WHEN 0 THEN 'failing' WHEN 1 THEN 'reauthorization_required' "
        "WHEN 2 THEN 'error' WHEN 3 THEN 'disconnected' ELSE 'connected' END"
    )
    renewable = "(g % 100 NOT IN (1, 2, 3))"
    _insert_series(
        ConfigVariable,
        n,
        {
            "id": "md5('pages-cv-' || g)::uuid",
            "customer_id": f"{first_customer} + (g - 1) / {APPS}",
            "connection_id": f"(ARRAY[{','.join(map(str, connection_ids))}]::bigint[])"
            f"[(g - 1) % {APPS} + 1]",
            "status": status,
            "token_type": "'Bearer'",
            "refresh_at": f"CASE WHEN {renewable} "
            "THEN now() + (g % 3600) * interval '1 second' END",
            "expires_at": "now() + (g % 3600 + 300) * interval '1 second'",
            "connected_at": "now() - interval '40 days'",
            "refreshed_at": "now() - (3600 - g % 3600) * interval '1 second'",
            "failure_count": "CASE WHEN g % 100 = 0 THEN 2 ELSE 0 END",
            "failing_since": "CASE WHEN g % 100 = 0 THEN now() - interval '20 minutes' END",
        },
    )
    _progress(f"{n:,} ConfigVariables")
    _insert_series(
        StatusTransition,
        n,
        {
            "config_variable_id": "md5('pages-cv-' || g)::uuid",
            "from_status": "'exchanging'",
            "to_status": "'connected'",
            "reason": "'Connected'",
            "created_at": "now() - interval '40 days' + g * interval '1 millisecond'",
        },
    )
    _progress(f"{n:,} status transitions")
    return app_ids, connection_ids


def _token_requests(count: int, *, app_ids: list[int], n: int, row: str, **columns: str) -> None:
    """``count`` token requests; ``row`` is the SQL of the ConfigVariable number (1..n)."""
    from oauthflow.models import TokenRequest

    apps = "ARRAY[" + ",".join(map(str, app_ids)) + "]::bigint[]"
    expressions = {
        "chain_id": "gen_random_uuid()",
        "app_id": f"({apps})[({row} - 1) % {APPS} + 1]",
        "config_variable_id": f"md5('pages-cv-' || ({row}))::uuid",
        "kind": "'refresh'",
        "flavor": "1",
        "url": "'https://app' || ((" + row + f" - 1) % {APPS}) || '.example.com/oauth2/token'",
        "request_headers": f"'{HEADERS}'::jsonb",
        "request_body": f"'{BODY}'",
        "status_code": "200",
        "response_headers": '\'{"Content-Type": "application/json"}\'::jsonb',
        "response_excerpt": f"'{REPLY}'",
        "duration_ms": "80 + (g * 7919) % 400",
        "outcome": "'succeeded'",
        "diagnosis": "'ok'",
    }
    expressions.update(columns)
    _insert_series(TokenRequest, count, expressions)


def _generate_log(n: int, app_ids: list[int]) -> None:
    """A month of hourly renewals of ``n`` connections, in the bounded log's shape."""
    from django.conf import settings

    from oauthflow.models import TokenLogState

    keep = settings.TOKEN_LOG_KEEP_SUCCESSES
    # The newest `keep` successes of each ConfigVariable: one an hour.
    _token_requests(
        n * keep,
        app_ids=app_ids,
        n=n,
        row=f"((g - 1) % {n} + 1)",
        created_at=f"now() - ((g - 1) / {n} + 1) * interval '1 hour' + (g % 3600) * interval '1 second'",  # noqa: E501
    )
    _progress(f"{n * keep:,} kept successes")
    failures = int(n * 24 * DAYS * FAILURE_SHARE)
    _token_requests(
        failures,
        app_ids=app_ids,
        n=n,
        row=f"((g * 7919) % {n} + 1)",
        created_at=f"now() - (g % ({DAYS} * 86400)) * interval '1 second'",
        status_code="CASE WHEN g % 4 = 0 THEN 400 ELSE 503 END",
        outcome="CASE WHEN g % 4 = 0 THEN 'grant_dead' ELSE 'transient' END",
        error="CASE WHEN g % 4 = 0 THEN 'invalid_grant' ELSE '' END",
        diagnosis="CASE WHEN g % 4 = 0 THEN 'refresh_token_dead' ELSE 'server_error' END",
        response_excerpt='\'{"error": "invalid_grant"}\'',
    )
    _progress(f"{failures:,} kept failures")
    newest = _sql("SELECT coalesce(max(id), 0) FROM oauthflow_tokenrequest")[0][0]
    TokenLogState.objects.update_or_create(
        pk=1, defaults={"summarised_id": newest, "horizon_id": newest, "pruned_id": newest}
    )
    _generate_tail(n, app_ids)
    _generate_summaries(n, app_ids, failures)


def _generate_tail(n: int, app_ids: list[int]) -> None:
    """The renewals of the last ``TAIL_SECONDS``, which the roll-up has not counted yet
    (other ConfigVariables on every run: the roll-up deletes their oldest success)."""
    tail = n * TAIL_SECONDS // 3600
    offset = int(time.time()) % n
    _token_requests(
        tail,
        app_ids=app_ids,
        n=n,
        row=f"((g * 104729 + {offset}) % {n} + 1)",
        created_at=f"now() - (g % {TAIL_SECONDS}) * interval '1 second'",
    )
    _progress(f"{tail:,} rows not yet rolled up")


def _generate_summaries(n: int, app_ids: list[int], failures: int) -> None:
    """Hourly summaries per App for the month and per-minute counts for two days."""
    import json

    from oauthflow.log_summary import LATENCY_BOUNDS_MS

    per_hour = n // APPS
    failed_per_hour = max(1, failures // (APPS * 24 * DAYS))
    # Durations 80..479 ms, spread evenly (as generated above): the buckets they fill.
    histogram = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for ms in range(80, 480):
        histogram[next((i for i, b in enumerate(LATENCY_BOUNDS_MS) if ms <= b), -1)] += 1
    scaled = [round(c * per_hour / 400) for c in histogram]
    for outcome, count, shape in (
        ("succeeded", per_hour, scaled),
        ("transient", failed_per_hour, [0] * 7 + [failed_per_hour] + [0] * 12),
    ):
        _sql(
            "INSERT INTO oauthflow_tokenrequestsummary (app_id, hour, kind, outcome, flavor, "
            "count, duration_ms_sum, duration_ms_max, latency_histogram) "
            "SELECT a, date_trunc('hour', now()) - h * interval '1 hour', 'refresh', %s, 1, "
            "%s, %s, 479, %s::jsonb "
            "FROM unnest(%s::bigint[]) AS a, generate_series(1, %s) AS h",
            [outcome, count, count * 280, json.dumps(shape), app_ids, 24 * DAYS],
        )
    _sql(
        "INSERT INTO oauthflow_renewalminute (minute, renewals, failures) "
        "SELECT date_trunc('minute', now()) - m * interval '1 minute', %s + m %% 97, m %% 3 "
        "FROM generate_series(2, 2 * 1440) AS m",
        [n // 60],
    )
    _progress("summaries and per-minute counts")


def _generate_status_history(n: int) -> None:
    from django.utils import timezone

    from connections.dashboard import heartbeat_beat
    from connections.metrics_history import SNAPSHOT_EVERY, snapshot_slot, status_snapshot_take
    from connections.models import StatusSnapshot

    now = timezone.now()
    counts = {"connected": n * 96 // 100, "failing": n // 100, "error": n // 100}
    StatusSnapshot.objects.bulk_create(
        StatusSnapshot(slot=snapshot_slot(now - SNAPSHOT_EVERY * i), taken_at=now, counts=counts)
        for i in range(1, 289)
    )
    status_snapshot_take(now=now)  # the sweep's, with the counts per Connection
    heartbeat_beat()


def generate(n: int, *, reuse: bool) -> float:
    """Fill the database for ``n`` connections unless ``reuse`` and it holds them;
    returns the seconds it took."""
    from connections.models import ConfigVariable

    started = time.perf_counter()
    if reuse and ConfigVariable.objects.count() == n:
        from connections.metrics_history import status_snapshot_take
        from connections.models import App

        _progress(f"reusing {n:,} ConfigVariables")
        app_ids = list(
            App.objects.filter(slug__startswith="pages-app-").values_list("pk", flat=True)
        )
        _generate_tail(n, sorted(app_ids))
        status_snapshot_take()  # as the sweep would have by now
        return 0.0
    _empty()
    app_ids, _ = _generate_fleet(n)
    _generate_log(n, app_ids)
    _generate_status_history(n)
    _progress("VACUUM ANALYZE")
    _sql("VACUUM ANALYZE")
    return time.perf_counter() - started


# Per admin: a filter a person would click first.
FILTERS = {
    "oauthflow.tokenrequest": "outcome__exact=grant_dead",
    "connections.configvariable": "status__exact=failing",
    "connections.customer": "q=pages-customer-4242",
    "connections.app": "grant_type__exact=client_credentials",
    "connections.connection": "grant_type__exact=authorization_code",
    "connections.apikey": "revoked__exact=0",
    "webhooks.webhookendpoint": "enabled__exact=1",
    "webhooks.webhookdelivery": "status__exact=failed",
}


def _pages() -> list[tuple[str, str]]:
    from django.contrib import admin
    from django.urls import reverse

    from connections.models import App, ConfigVariable
    from oauthflow.models import TokenRequest

    pages = [
        ("/metrics", reverse("metrics")),
        ("health dashboard", reverse("admin:connections_dashboard")),
        ("health dashboard (live part)", reverse("admin:connections_dashboard_live")),
    ]
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label_lower):
        label = model._meta.label_lower
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        pages.append((f"list {label}", url))
        if label in FILTERS:
            pages.append((f"list {label} ?{FILTERS[label]}", f"{url}?{FILTERS[label]}"))
    cv = ConfigVariable.objects.filter(status="failing").order_by().first()
    app = App.objects.order_by("pk").first()
    request = TokenRequest.objects.order_by("-pk").first()
    for name, obj in (("configvariable", cv), ("app", app), ("tokenrequest", request)):
        if obj is not None:
            meta = obj._meta
            url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
            pages.append((f"change page {name}", url))
    return pages


def time_pages(repeat: int) -> list[Page]:
    """The median time of each page over ``repeat`` requests after one warm-up."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="pages-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    timed = []
    for label, url in _pages():
        response = client.get(url, secure=True)
        if response.status_code != 200:
            raise BenchRefused(f"{url} answered {response.status_code}")
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(url, secure=True)
            times.append((time.perf_counter() - started) * 1000)
        timed.append(Page(label, url, statistics.median(times)))
        _progress(f"{label}: {timed[-1].ms:.0f} ms")
    return timed


@dataclass(frozen=True)
class RollUpTimed:
    seconds: float
    summarised: int
    deleted: int


def time_roll_up() -> RollUpTimed:
    """The beat task's work on the rows not yet rolled up (``TAIL_SECONDS`` of renewals):
    a first run takes the horizon, a second (past the settle delay) counts and prunes."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from oauthflow.log_summary import token_log_roll_up

    now = timezone.now()
    token_log_roll_up(now=now)
    started = time.perf_counter()
    result = token_log_roll_up(now=now + timedelta(seconds=settings.TOKEN_LOG_SETTLE_SECONDS))
    seconds = time.perf_counter() - started
    deleted = result.pruned_successes + result.pruned_expired
    _progress(f"roll-up: {result.summarised:,} counted, {deleted:,} deleted in {seconds:.1f} s")
    return RollUpTimed(seconds, result.summarised, deleted)


def sizes() -> dict[str, int]:
    """Bytes: the database, then each log table and the big tables (with indexes)."""
    found = {"database": _sql("SELECT pg_database_size(current_database())")[0][0]}
    for table in LOG_TABLES + OTHER_TABLES:
        found[table] = _sql("SELECT pg_total_relation_size(%s::regclass)", [table])[0][0]
    return found


def _rows(table: str) -> int:
    return int(_sql("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])[0][0])


def report(
    argv: Sequence[str], n: int, generated: float, pages: list[Page], roll_up: RollUpTimed
) -> str:
    found = sizes()
    log = sum(found[t] for t in LOG_TABLES)
    lines = [
        f"$ DATABASE_URL={os.environ.get('DATABASE_URL', '')} python -m benchmarks.pages "
        + " ".join(argv),
        f"{n:,} ConfigVariables, a month of hourly renewals in the bounded log's shape"
        + (f" (generated in {generated:.0f} s)" if generated else " (reused)"),
        # Shared machines: times grow with the other work running beside the benchmark.
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min) after timing",
        "",
        f"{'page':<62} {'ms':>8}  target < {PAGE_TARGET_MS:.0f} ms",
    ]
    for page in pages:
        verdict = "pass" if page.ms < PAGE_TARGET_MS else "FAIL"
        lines.append(f"{page.label:<62} {page.ms:>8.1f}  {verdict}")
    lines += ["", f"{'table':<40} {'rows (est.)':>14} {'size':>12}"]
    for table in LOG_TABLES + OTHER_TABLES:
        lines.append(f"{table:<40} {_rows(table):>14,} {found[table] / 1024**2:>9,.0f} MB")
    lines += [
        f"{'database':<40} {'':>14} {found['database'] / 1024**2:>9,.0f} MB",
        "",
        f"roll-up of the last {TAIL_SECONDS} s of renewals: {roll_up.summarised:,} counted, "
        f"{roll_up.deleted:,} deleted in {roll_up.seconds:.1f} s, keeps pace (< {TAIL_SECONDS} s): "
        + ("pass" if roll_up.seconds < TAIL_SECONDS else "FAIL"),
        f"token-request log (rows + summaries): {log / 1024**3:.2f} GB, target < 10 GB: "
        + ("pass" if log < LOG_TARGET_BYTES else "FAIL"),
        f"pages under {PAGE_TARGET_MS:.0f} ms: {sum(p.ms < PAGE_TARGET_MS for p in pages)}"
        f" of {len(pages)}: " + ("pass" if all(p.ms < PAGE_TARGET_MS for p in pages) else "FAIL"),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # Timed as production runs: no debug pages, no query log kept in memory.
    os.environ.setdefault("DJANGO_DEBUG", "false")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
    # Production settings need keys from the environment: the laptop's own (as in debug).
    import environ

    from config.local_keys import ensure_local_env

    local_env = Path(__file__).resolve().parents[1] / "var" / "local.env"
    ensure_local_env(local_env)
    environ.Env.read_env(local_env, overwrite=False)
    django.setup()
    from django.core.management import call_command

    options = _arguments(argv)
    try:
        _check_environment()
    except BenchRefused as exc:
        print(exc, file=sys.stderr)
        return 2
    call_command("migrate", verbosity=0)
    generated = generate(options.connections, reuse=options.reuse)
    pages = time_pages(options.repeat)
    roll_up = time_roll_up()  # after the pages: they were timed with the tail in place
    print(report(argv, options.connections, generated, pages, roll_up))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
