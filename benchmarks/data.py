"""The benchmark's rows: its App, Connections, Customers and ConfigVariables.

Every row the benchmark writes belongs to the App with slug ``BENCH_SLUG`` (its
Connections, ConfigVariables, token requests and transitions) or to Customers named
``BENCH_SLUG …``; ``bench_cleanup`` deletes them before and after a run and touches
nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection as db_connection
from django.utils import timezone

from benchmarks.fake_endpoint import TOKEN_PATH
from connections.models import App, ConfigVariable, Connection, Customer, Status, StatusTransition
from oauthflow.models import TokenRequest

BENCH_SLUG = "bench-renewal"
BENCH_CLIENT_ID = "bench-client"
BENCH_CLIENT_SECRET = "bench-secret"  # noqa: S105 - a fake credential for a local endpoint


def execute(sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def bench_cleanup() -> int:
    """Delete every row of the benchmark's namespace; returns ConfigVariables deleted.

    Raw SQL for the bulk tables (a million rows through the ORM's cascade would take
    minutes), the ORM for the few parents. Nothing outside the namespace is touched.
    """
    app = App.objects.filter(slug=BENCH_SLUG).first()
    deleted = 0
    if app is not None:
        cv_table = ConfigVariable._meta.db_table
        bench_rows = (
            f"SELECT cv.id FROM {cv_table} cv "  # noqa: S608 - table names from the models
            f"JOIN {Connection._meta.db_table} co ON co.id = cv.connection_id "
            "WHERE co.app_id = %s"
        )
        execute(
            f"DELETE FROM {TokenRequest._meta.db_table} WHERE app_id = %s",  # noqa: S608
            [app.pk],
        )
        transitions = StatusTransition._meta.db_table
        execute(
            f"DELETE FROM {transitions} WHERE config_variable_id IN ({bench_rows})",  # noqa: S608
            [app.pk],
        )
        deleted = execute(
            f"DELETE FROM {cv_table} WHERE id IN ({bench_rows})",  # noqa: S608
            [app.pk],
        )
        Connection.objects.filter(app=app).delete()
        app.delete()
    Customer.objects.filter(name__startswith=f"{BENCH_SLUG} ", config_variables=None).delete()
    return deleted


def bench_app_create(token_url: str) -> App:
    """The benchmark's App, pointed at ``token_url`` (created, or moved there when it
    exists): an authorization-code app, flavor 1 already known to work (as for any App
    after its first exchange)."""
    app = App.objects.filter(slug=BENCH_SLUG).first()
    if app is None:
        app = App.objects.create(
            name=f"{BENCH_SLUG} app",
            slug=BENCH_SLUG,
            token_url=token_url,
            authorize_url=token_url.replace(TOKEN_PATH, "/authorize"),
            client_id=BENCH_CLIENT_ID,
            client_secret=BENCH_CLIENT_SECRET,
            default_scopes="read offline_access",
            use_pkce=False,
        )
    # Saved past the model's validation: preferred_flavor is set by the chain, not forms.
    App.objects.filter(pk=app.pk).update(
        preferred_flavor=1,
        token_url=token_url,
        authorize_url=token_url.replace(TOKEN_PATH, "/authorize"),
    )
    app.refresh_from_db()
    return app


def customers_create(count: int, label: str) -> list[int]:
    """``count`` benchmark Customers; their ids in order."""
    Customer.objects.bulk_create(
        [Customer(name=f"{BENCH_SLUG} {label} {i:07d}") for i in range(count)], batch_size=2000
    )
    return list(
        Customer.objects.filter(name__startswith=f"{BENCH_SLUG} {label} ")
        .order_by("name")
        .values_list("pk", flat=True)
    )


def connected_rows_create(
    app: App, label: str, times: Sequence[tuple[datetime | None, datetime | None]]
) -> Connection:
    """One Connection ``label`` with a connected ConfigVariable (and Customer) per item
    of ``times``, ``(expires_at, refresh_at)`` in UTC (None: set later), each with its
    own refresh token."""
    connection = Connection.objects.create(
        app=app, name=f"{BENCH_SLUG} {label}", slug=f"{BENCH_SLUG}-{label}"
    )
    customer_ids = customers_create(len(times), label)
    now = timezone.now()
    ConfigVariable.objects.bulk_create(
        [
            ConfigVariable(
                customer_id=customer_id,
                connection=connection,
                status=Status.CONNECTED,
                access_token=f"seed-at-{label}-{i}",
                refresh_token=f"seed-rt-{label}-{i}",
                token_type="Bearer",  # noqa: S106 - a token type name
                scopes_granted="read offline_access",
                expires_at=expires_at,
                refresh_at=refresh_at,
                connected_at=now,
            )
            for i, (customer_id, (expires_at, refresh_at)) in enumerate(
                zip(customer_ids, times, strict=True)
            )
        ],
        batch_size=1000,
    )
    return connection


def renewal_rows_create(app: App, n: int) -> Connection:
    """``n`` connected rows, not yet due; ``renewal_rows_reset`` makes them due."""
    later = timezone.now() + timedelta(hours=1)
    return connected_rows_create(app, "renewal", [(later, later)] * n)


def renewal_rows_reset(connection: Connection) -> int:
    """Make every row of ``connection`` due now, unclaimed and not enqueued."""
    now = timezone.now()
    return ConfigVariable.objects.filter(connection=connection).update(
        status=Status.CONNECTED,
        refresh_at=now - timedelta(seconds=5),
        expires_at=now + timedelta(minutes=5),
        enqueued_at=None,
        lease_token=None,
        lease_expires_at=None,
        failure_count=0,
        last_error="",
        diagnosis="",
        refreshed_at=None,
    )
