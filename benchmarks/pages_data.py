"""Data for the pages benchmark (``benchmarks.pages``): a million connections and a
month of history in the bounded logs' shape, generated in bulk SQL (``INSERT ... SELECT
generate_series``) into an emptied PostgreSQL database.

The token-request log as ``oauthflow.log_summary`` leaves it (the newest
``TOKEN_LOG_KEEP_SUCCESSES`` successes per ConfigVariable, the failures, the hourly
summaries and per-minute counts, and the minute or two the roll-up has not counted yet);
the status transitions as ``connections.transition_log`` leaves them (each
ConfigVariable's real changes within the retention and its newest renewals).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

APPS = 10
DAYS = 30
FAILURE_SHARE = 0.001  # of renewals: 1 in 1,000 fails (all are kept in full)
TAIL_SECONDS = 90  # rows not yet rolled up: about one roll-up interval and a half
# Realistic redacted contents: a stored row is about as large as a real one.
BODY = "grant_type=refresh_token&refresh_token=%5BREDACTED%5D&scope=offline_access+read"
HEADERS = '{"Authorization": "Basic [REDACTED]", "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json", "User-Agent": "connection-portal"}'  # noqa: E501
REPLY = '{"access_token": "[REDACTED]", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "[REDACTED]", "scope": "offline_access read"}'  # noqa: E501


def sql(statement: str, params: Sequence[object] = ()) -> list[tuple]:
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
    sql(
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 (names from the models)
        f"SELECT {', '.join(values)} FROM generate_series(1, %s::bigint) AS g",
        [*params, count],
    )


def progress(message: str) -> None:
    print(f"[pages] {message}", file=sys.stderr, flush=True)


def _empty() -> None:
    from django.apps import apps

    tables = [
        model._meta.db_table
        for model in apps.get_models()
        if model._meta.app_label in ("connections", "oauthflow", "webhooks")
    ]
    sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def _generate_fleet(n: int) -> tuple[list[int], list[int]]:
    """Apps, Connections, Customers and ``n`` ConfigVariables (``n / APPS`` customers,
    each connected to every Connection); returns the App and Connection ids."""
    from connections.models import App, ConfigVariable, Connection, Customer

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
    progress(f"{customers:,} customers")
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
            "connected_at": f"now() - interval '{DAYS - 1} days'",
            "refreshed_at": "now() - (3600 - g % 3600) * interval '1 second'",
            "failure_count": "CASE WHEN g % 100 = 0 THEN 2 ELSE 0 END",
            "failing_since": "CASE WHEN g % 100 = 0 THEN now() - interval '20 minutes' END",
        },
    )
    progress(f"{n:,} ConfigVariables")
    _generate_transitions(n)
    return app_ids, connection_ids


def _transitions(count: int, row: str, **columns: str) -> None:
    """``count`` status transitions; ``row`` is the SQL of the ConfigVariable number."""
    from connections.models import StatusTransition

    expressions = {
        "config_variable_id": f"md5('pages-cv-' || ({row}))::uuid",
        "from_status": "'connected'",
        "to_status": "'connected'",
        "reason": "'Access token renewed.'",
    }
    _insert_series(StatusTransition, count, expressions | columns)


def _generate_transitions(n: int) -> None:
    """What ``connections.transition_log`` leaves after a month: each ConfigVariable's
    Connect (within the retention), the newest ``TOKEN_LOG_KEEP_SUCCESSES`` renewals
    (one an hour, as the kept successes), and for the 4 in 100 not connected the change
    that left them so."""
    from django.conf import settings

    keep = settings.TOKEN_LOG_KEEP_SUCCESSES
    _transitions(
        n,
        "g",
        from_status="'exchanging'",
        reason="'Code exchanged for tokens with flavor standard.'",
        created_at=f"now() - interval '{DAYS - 1} days' + g * interval '1 millisecond'",
    )
    _transitions(
        n * keep,
        f"(g - 1) % {n} + 1",
        created_at=f"now() - ((g - 1) / {n} + 1) * interval '1 hour' + (g % 3600) * interval '1 second'",  # noqa: E501
    )
    changes = {0: "failing", 1: "reauthorization_required", 2: "error", 3: "disconnected"}
    for remainder, status in changes.items():
        _transitions(
            n // 100,
            f"(g - 1) * 100 + {remainder or 100}",  # the row numbers with that status
            to_status=f"'{status}'",
            reason="'Renewal failed: the app did not answer.'",
            created_at="now() - (g % 86400) * interval '1 second' - interval '20 minutes'",
        )
    progress(f"{n + n * keep + 4 * (n // 100):,} status transitions")


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
    progress(f"{n * keep:,} kept successes")
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
    progress(f"{failures:,} kept failures")
    newest = sql("SELECT coalesce(max(id), 0) FROM oauthflow_tokenrequest")[0][0]
    TokenLogState.objects.update_or_create(
        pk=1, defaults={"summarised_id": newest, "horizon_id": newest, "pruned_id": newest}
    )
    _generate_tail(n, app_ids)
    _generate_summaries(n, app_ids, failures)


def _generate_tail(n: int, app_ids: list[int]) -> None:
    """The renewals of the last ``TAIL_SECONDS``, which the roll-up has not counted yet
    (other ConfigVariables on every run: the roll-up deletes their oldest success and
    renewal transition)."""
    tail = n * TAIL_SECONDS // 3600
    offset = int(time.time()) % n
    _token_requests(
        tail,
        app_ids=app_ids,
        n=n,
        row=f"((g * 104729 + {offset}) % {n} + 1)",
        created_at=f"now() - (g % {TAIL_SECONDS}) * interval '1 second'",
    )
    # Their renewals' transitions: the pruning deletes each one's oldest kept renewal.
    _transitions(
        tail,
        f"(g * 104729 + {offset}) % {n} + 1",
        created_at=f"now() - (g % {TAIL_SECONDS}) * interval '1 second'",
    )
    progress(f"{tail:,} rows not yet rolled up")


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
        sql(
            "INSERT INTO oauthflow_tokenrequestsummary (app_id, hour, kind, outcome, flavor, "
            "count, duration_ms_sum, duration_ms_max, latency_histogram) "
            "SELECT a, date_trunc('hour', now()) - h * interval '1 hour', 'refresh', %s, 1, "
            "%s, %s, 479, %s::jsonb "
            "FROM unnest(%s::bigint[]) AS a, generate_series(1, %s) AS h",
            [outcome, count, count * 280, json.dumps(shape), app_ids, 24 * DAYS],
        )
    sql(
        "INSERT INTO oauthflow_renewalminute (minute, renewals, failures) "
        "SELECT date_trunc('minute', now()) - m * interval '1 minute', %s + m %% 97, m %% 3 "
        "FROM generate_series(2, 2 * 1440) AS m",
        [n // 60],
    )
    progress("summaries and per-minute counts")


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

        progress(f"reusing {n:,} ConfigVariables")
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
    progress("VACUUM ANALYZE")
    sql("VACUUM ANALYZE")
    return time.perf_counter() - started
