"""The sweep's query at scale: its plan and time at a small and a large table.

Rows are inserted with one ``INSERT … SELECT`` over ``generate_series`` (a million in
seconds); the sweep's batch select (``due_queryset``) is EXPLAINed and timed on a vacuumed
table, as autovacuum keeps it. Target: index-only on ``config_variable_due`` and flat in
total rows.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection as db_connection
from django.utils import timezone

from benchmarks.data import BENCH_SLUG, customers_create, execute
from connections.models import App, ConfigVariable, Connection
from oauthflow.renewal import due_queryset

SWEEP_GRID_CUSTOMERS = 1000  # sweep rows are (customer x connection) pairs: unique
SWEEP_INDEX = "config_variable_due"


@dataclass(frozen=True)
class SweepResult:
    """The sweep's query at one table size: ``rows`` in the table, ``due`` of them due;
    ``returned`` ids came back (capped at the batch size). Times in milliseconds, from
    Python (the ORM query, as the sweep runs it): median and best of the repeats."""

    rows: int
    due: int
    returned: int
    median_ms: float
    best_ms: float
    execution_ms: float | None  # EXPLAIN ANALYZE's "Execution Time"
    uses_index: bool  # the plan scans SWEEP_INDEX
    plan: str

    @property
    def index_only(self) -> bool:
        """The plan reads only the index (no heap): an Index Only Scan of SWEEP_INDEX."""
        return f"Index Only Scan using {SWEEP_INDEX}" in self.plan


def _sweep_grid(app: App, rows: int) -> tuple[list[int], list[int]]:
    """Customers and Connections whose pairs give ``rows`` unique ConfigVariables."""
    customers = min(SWEEP_GRID_CUSTOMERS, max(rows, 1))
    customer_ids = customers_create(customers, "sweep")
    connections = math.ceil(rows / customers)
    Connection.objects.bulk_create(
        [
            Connection(app=app, name=f"{BENCH_SLUG} sweep {i}", slug=f"{BENCH_SLUG}-sweep-{i}")
            for i in range(connections)
        ]
    )
    connection_ids = list(
        Connection.objects.filter(app=app, slug__startswith=f"{BENCH_SLUG}-sweep-")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return customer_ids, connection_ids


def sweep_rows_insert(
    *, customer_ids: list[int], connection_ids: list[int], start: int, stop: int, due: int
) -> int:
    """Insert grid rows ``start`` to ``stop - 1`` in one ``INSERT … SELECT`` over
    ``generate_series``; ``due`` of them (spread evenly) are due, the rest connected
    (90 %) or failing (5 %) with ``refresh_at`` 1 to 25 hours ahead, or pending with
    none (5 %). Columns not named here get the model field's default."""
    every = max((stop - start) // due, 1) if due else 0
    token = ConfigVariable._meta.get_field("refresh_token").get_prep_value("bench-bulk-token")
    customers = len(customer_ids)
    is_due = "(%(every)s > 0 AND (g - %(start)s) %% %(every)s = 0 AND g - %(start)s < %(limit)s)"
    expressions = {
        "id": "gen_random_uuid()",
        "customer_id": "(%(customers)s::bigint[])[g %% %(n_customers)s + 1]",
        "connection_id": "(%(connections)s::bigint[])[g / %(n_customers)s + 1]",
        "status": f"CASE WHEN {is_due} THEN 'connected' WHEN g %% 20 = 1 THEN 'pending' "
        "WHEN g %% 20 = 2 THEN 'failing' ELSE 'connected' END",
        "refresh_at": f"CASE WHEN {is_due} THEN now() - (g %% 600) * interval '1 second' "
        "WHEN g %% 20 = 1 THEN NULL "
        "ELSE now() + interval '1 hour' + random() * interval '1 day' END",
        "expires_at": "now() + interval '2 days'",
        "access_token": "%(token)s",
        "refresh_token": "%(token)s",
        "token_type": "'Bearer'",
        "created_at": "now()",
        "updated_at": "now()",
        "connected_at": "now()",
    }
    params: dict[str, Any] = {
        "customers": customer_ids,
        "connections": connection_ids,
        "n_customers": customers,
        "every": every,
        "start": start,
        "limit": every * due,
        "token": token,
    }
    columns, values = [], []
    for model_field in ConfigVariable._meta.concrete_fields:
        columns.append(model_field.column)
        if model_field.column in expressions:
            values.append(expressions[model_field.column])
        else:
            name = f"default_{model_field.column}"
            params[name] = model_field.get_db_prep_save(
                model_field.get_default(), connection=db_connection
            )
            values.append(f"%({name})s")
    params["first"], params["last"] = start, stop - 1
    sql = (
        f"INSERT INTO {ConfigVariable._meta.db_table} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(values)} FROM generate_series(%(first)s, %(last)s) AS g"
    )
    return execute(sql, params)


_EXECUTION_TIME = re.compile(r"Execution Time: ([0-9.]+) ms")


def sweep_measure(*, repeats: int, due: int) -> SweepResult:
    """EXPLAIN (ANALYZE, BUFFERS) the sweep's query — ``renewals_due``'s select of one
    batch from ``due_queryset`` — and time it ``repeats`` times (median, milliseconds)."""
    # As autovacuum leaves a table after inserts (PostgreSQL 13+ vacuums on inserts
    # too): statistics fresh and the visibility map set, so index-only scans can be had.
    execute(f"VACUUM (ANALYZE) {ConfigVariable._meta.db_table}")

    def batch() -> Any:
        limit = settings.RENEWAL_SWEEP_BATCH
        return due_queryset(now=timezone.now()).values_list("pk", flat=True)[:limit]

    for _ in range(2):  # warm the cache: the sweep runs every minute in production
        list(batch())
    plan = batch().explain(analyze=True, buffers=True)
    times, returned = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        returned = len(list(batch()))
        times.append((time.perf_counter() - started) * 1000)
    match = _EXECUTION_TIME.search(plan)
    return SweepResult(
        rows=ConfigVariable.objects.count(),
        due=due,
        returned=returned,
        median_ms=statistics.median(times),
        best_ms=min(times),
        execution_ms=float(match.group(1)) if match else None,
        uses_index=SWEEP_INDEX in plan,
        plan=plan,
    )


def sweep_bench(
    app: App, *, sizes: Sequence[int], due: int, repeats: int, say: Callable[[str], None]
) -> list[SweepResult]:
    """Grow the table to each of ``sizes`` rows (``due`` of them due, inserted with the
    first size) and measure the sweep's query at each."""
    # A previous run's million rows, deleted, leave the table and its indexes at their
    # largest size (files do not shrink): rebuild them so "10,000 rows" means that.
    execute(f"VACUUM FULL {ConfigVariable._meta.db_table}")
    existing = ConfigVariable.objects.count()
    customer_ids, connection_ids = _sweep_grid(app, max(sizes))
    results, inserted = [], 0
    for size in sorted(sizes):
        target = size - existing
        if target > inserted:
            began = time.monotonic()
            sweep_rows_insert(
                customer_ids=customer_ids,
                connection_ids=connection_ids,
                start=inserted,
                stop=target,
                due=due if inserted == 0 else 0,
            )
            say(f"  inserted {target - inserted:,} rows in {time.monotonic() - began:.1f} s")
            inserted = target
        results.append(sweep_measure(repeats=repeats, due=due))
        say(f"  sweep at {results[-1].rows:,} rows: {results[-1].median_ms:.3f} ms")
    return results
