"""Row counts without counting: PostgreSQL's planner estimates, for pages that must not
read every row of a table of millions (admin change lists, the dashboard's counts)."""

from __future__ import annotations

import json

from django.db import connections
from django.db.models import QuerySet


def estimated_count(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of the rows ``queryset`` returns, without reading them: for
    the whole table ``pg_class.reltuples`` (kept by ANALYZE and autovacuum), else the
    planner's row estimate of the query (``EXPLAIN``). None on other databases, and for
    a whole table never analysed."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    if not queryset.query.where:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
                [queryset.model._meta.db_table],
            )
            row = cursor.fetchone()
        return int(row[0]) if row and row[0] >= 0 else None  # -1: never analysed
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])
