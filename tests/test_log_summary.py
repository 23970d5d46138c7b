"""The bounded token-request log: what the roll-up keeps in full, what it counts, how it
deletes, and that every figure the dashboard and /metrics show survives it."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from connections.dashboard import latency_by_app, renewal_activity, trends_by_app
from oauthflow import tasks
from oauthflow.log_summary import Figures, summarised_through, token_log_roll_up
from oauthflow.models import (
    Outcome,
    RenewalMinute,
    TokenRequest,
    TokenRequestKind,
    TokenRequestSummary,
)
from tests.factories import AppFactory, ConfigVariableFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 4, 12, 34, 56, tzinfo=UTC)
SETTLED = timedelta(seconds=31)  # more than TOKEN_LOG_SETTLE_SECONDS


def _request(app, *, cv=None, at=NOW, outcome=Outcome.SUCCEEDED, chain=None, ms=100, **kw):
    return TokenRequest.objects.create(
        app=app,
        config_variable=cv,
        chain_id=chain or uuid.uuid4(),
        kind=kw.get("kind", TokenRequestKind.REFRESH),
        flavor=kw.get("flavor", 1),
        url=app.token_url,
        outcome=outcome,
        duration_ms=ms,
        created_at=at,
    )


def _roll_up(now=NOW):
    """Two runs, as beat makes them: the first sees the newest id, the second (once the
    writers' transactions have settled) counts up to it and prunes."""
    token_log_roll_up(now=now)
    return token_log_roll_up(now=now + SETTLED)


@pytest.fixture
def settings_small(settings):
    settings.TOKEN_LOG_KEEP_SUCCESSES = 3
    settings.TOKEN_LOG_SETTLE_SECONDS = 30
    settings.TOKEN_REQUEST_RETENTION_DAYS = 30
    return settings


def test_failures_and_the_newest_successes_per_config_variable_stay_in_full(settings_small):
    cv, other = ConfigVariableFactory(), ConfigVariableFactory()
    app = cv.connection.app
    old = [_request(app, cv=cv, at=NOW - timedelta(hours=h)) for h in range(10, 4, -1)]
    newest = [_request(app, cv=cv, at=NOW - timedelta(hours=h)) for h in (3, 2, 1)]
    failed = _request(app, cv=cv, at=NOW - timedelta(hours=20), outcome=Outcome.TRANSIENT)
    dead = _request(app, cv=cv, at=NOW - timedelta(hours=19), outcome=Outcome.GRANT_DEAD)
    chain = uuid.uuid4()  # flavor 1 refused, flavor 3 worked: the chain stays whole
    refused = _request(app, cv=cv, at=NOW - timedelta(hours=30), outcome=Outcome.NEXT_FLAVOR,
                       chain=chain)  # fmt: skip
    worked = _request(app, cv=cv, at=NOW - timedelta(hours=30), chain=chain, flavor=3)
    others = [_request(other.connection.app, cv=other, at=NOW - timedelta(hours=h)) for h in (9, 8)]
    app_checks = [_request(app, at=NOW - timedelta(hours=h)) for h in range(6, 0, -1)]

    result = _roll_up()

    kept = set(TokenRequest.objects.values_list("pk", flat=True))
    assert (
        kept
        == {
            *(r.pk for r in newest),
            failed.pk,
            dead.pk,
            refused.pk,
            worked.pk,
            *(r.pk for r in others),  # fewer than 3: all kept
            *(r.pk for r in app_checks[-3:]),  # no ConfigVariable: the App's newest 3
        }
    )
    assert result.pruned_successes == len(old) + 3
    assert not kept & {r.pk for r in old}


def test_counts_and_latency_survive_into_the_summaries(client, settings_small):
    settings_small.METRICS_TOKEN = ""
    now = timezone.now()  # /metrics reads the clock
    cv = ConfigVariableFactory()
    app = cv.connection.app
    for minute in range(1, 300, 7):  # five hours of renewals, a failure every fifth
        outcome = Outcome.TRANSIENT if minute % 5 == 1 else Outcome.SUCCEEDED
        _request(app, cv=cv, at=now - timedelta(minutes=minute), outcome=outcome, ms=minute * 3)
    _request(app, cv=cv, at=now - timedelta(minutes=3), kind=TokenRequestKind.EXCHANGE, ms=40)

    def figures():
        latency = [(r.app_id, r.count, r.p50, r.p95) for r in latency_by_app(now=now)]
        trend = trends_by_app(now=now)[app.pk]
        activity = renewal_activity(now=now)
        metrics = client.get(reverse("metrics")).content.decode()
        counts = sorted(re.findall(r"^portal_token_request.*$", metrics, re.M))
        return latency, trend, activity.per_minute, activity.peak(), counts

    before = figures()
    assert before[0]  # figures to compare
    assert before[2]
    assert len(before[4]) > 4
    result = _roll_up(now)
    after = figures()

    assert result.summarised == 44
    assert result.pruned_successes > 0  # the figures below no longer come from full rows
    assert TokenRequest.objects.count() < 44
    assert after == before
    assert sum(s.count for s in TokenRequestSummary.objects.all()) == 44
    assert sum(m.renewals for m in RenewalMinute.objects.all()) == 43  # not the exchange


def test_a_row_written_late_with_an_old_time_is_still_counted(settings_small):
    """Counted by id: a reply stamped before the last roll-up but inserted after it."""
    app = AppFactory()
    _request(app, at=NOW - timedelta(minutes=5))
    _roll_up()
    late = _request(app, at=NOW - timedelta(minutes=4))

    _roll_up(NOW + 2 * SETTLED)

    assert summarised_through() >= late.pk
    assert sum(s.count for s in TokenRequestSummary.objects.all()) == 2


def test_rows_are_counted_once_however_often_the_roll_up_runs(settings_small):
    app = AppFactory()
    for i in range(5):
        _request(app, at=NOW - timedelta(minutes=i), outcome=Outcome.TRANSIENT)
    for step in range(6):
        token_log_roll_up(now=NOW + step * SETTLED)
        token_log_roll_up(now=NOW + step * SETTLED)  # again, at once: nothing new settled

    assert sum(s.count for s in TokenRequestSummary.objects.all()) == 5
    assert TokenRequest.objects.count() == 5  # failures are kept


def test_rows_are_not_counted_before_their_writers_settled(settings_small):
    app = AppFactory()
    _request(app)
    token_log_roll_up(now=NOW)
    token_log_roll_up(now=NOW + timedelta(seconds=5))
    assert summarised_through() == 0
    token_log_roll_up(now=NOW + SETTLED)
    assert summarised_through() > 0


def test_pruning_deletes_in_small_batches_by_primary_key(settings_small):
    settings_small.TOKEN_LOG_BATCH = 4
    cv = ConfigVariableFactory()
    for h in range(20, 0, -1):
        _request(cv.connection.app, cv=cv, at=NOW - timedelta(hours=h))
    token_log_roll_up(now=NOW)

    with CaptureQueriesContext(connection) as queries:
        result = token_log_roll_up(now=NOW + SETTLED)

    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    log_deletes = [sql for sql in deletes if 'FROM "oauthflow_tokenrequest"' in sql]
    assert result.pruned_successes == 17
    assert len(log_deletes) >= 17 / 4
    for sql in log_deletes:  # by primary key, at most TOKEN_LOG_BATCH a statement
        ids = re.search(r'"oauthflow_tokenrequest"."id" IN \(([^)]*)\)', sql)
        assert ids is not None
        assert len(ids.group(1).split(",")) <= 4
    assert TokenRequest.objects.count() == 3


def test_pruning_skips_a_gap_in_the_ids_within_one_run(settings_small):
    """A log whose ids start far above the last pruned id (rows gone by retention, or
    a deployment onto an old log) is pruned in one run, not one step per batch of ids."""
    settings_small.TOKEN_LOG_BATCH = 4
    settings_small.TOKEN_LOG_MAX_BATCHES = 5
    cv = ConfigVariableFactory()
    for n, h in enumerate(range(8, 0, -1)):
        row = _request(cv.connection.app, cv=cv, at=NOW - timedelta(hours=h))
        TokenRequest.objects.filter(pk=row.pk).update(id=1_000_000 + n)
    result = _roll_up()
    assert result.pruned_successes == 5
    assert TokenRequest.objects.count() == 3


def test_retention_deletes_old_rows_only_once_counted(settings_small):
    app = AppFactory()
    old_failure = _request(app, at=NOW - timedelta(days=31), outcome=Outcome.TRANSIENT)
    recent = _request(app, at=NOW - timedelta(days=29), outcome=Outcome.TRANSIENT)

    token_log_roll_up(now=NOW)  # not counted yet: kept whatever its age
    assert TokenRequest.objects.filter(pk=old_failure.pk).exists()

    result = token_log_roll_up(now=NOW + SETTLED)

    assert result.pruned_expired == 1
    assert list(TokenRequest.objects.values_list("pk", flat=True)) == [recent.pk]
    assert sum(s.count for s in TokenRequestSummary.objects.all()) == 2  # both counted


def test_the_beat_task_rolls_up_and_reports_counts(settings_small):
    _request(AppFactory())
    tasks.prune_token_requests()
    assert tasks.prune_token_requests()["summarised_id"] == 0  # not settled yet
    assert "oauthflow.prune_token_requests" in {
        entry["task"] for entry in settings_small.CELERY_BEAT_SCHEDULE.values()
    }


def test_histogram_quantiles_stay_within_a_bucket_and_below_the_maximum():
    figures = Figures()
    for ms, bucket in ((40, 3), (60, 4), (60, 4), (90, 5)):
        figures.add(Figures(1, ms, ms, [int(i == bucket) for i in range(len(figures.histogram))]))
    assert figures.count == 4
    assert figures.mean_ms == 62.5
    assert 50 <= figures.quantile_ms(0.5) <= 75
    assert 75 <= figures.quantile_ms(0.95) <= 90
    with pytest.raises(ValueError, match="no values"):
        Figures().quantile_ms(0.5)


# --- Admin lists of big tables ----------------------------------------------------------


def _counts_of(queries, table):
    return [
        q["sql"]
        for q in queries
        if q["sql"].startswith("SELECT COUNT(*)") and f'FROM "{table}"' in q["sql"]
    ]


@pytest.mark.parametrize(
    ("url", "table", "filtered"),
    [
        ("oauthflow_tokenrequest", "oauthflow_tokenrequest", "outcome__exact=succeeded"),
        ("connections_configvariable", "connections_configvariable", "status__exact=connected"),
        ("connections_customer", "connections_customer", "q=a"),
        ("webhooks_webhookdelivery", "webhooks_webhookdelivery", "status__exact=failed"),
    ],
)
def test_admin_lists_never_count_a_whole_table(admin_client, url, table, filtered):
    cv = ConfigVariableFactory()
    _request(cv.connection.app, cv=cv)

    for query in ("", "?o=1", f"?{filtered}"):
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(reverse(f"admin:{url}_changelist") + query)
        assert response.status_code == 200
        unbounded = [sql for sql in _counts_of(queries, table) if "LIMIT" not in sql]
        assert unbounded == []


def test_token_request_list_filters_without_reading_the_log(admin_client):
    cv = ConfigVariableFactory()
    _request(cv.connection.app, cv=cv, flavor=3)

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse("admin:oauthflow_tokenrequest_changelist"))

    html = response.content.decode()
    assert "#3:" in html  # the flavor filter names the six flavors
    assert "Past 7 days" in html
    log = [q["sql"] for q in queries if 'FROM "oauthflow_tokenrequest"' in q["sql"]]
    assert all("DISTINCT" not in sql for sql in log)
    assert len(log) == 2  # the bounded count and the page


# --- Counts of a big fleet ----------------------------------------------------------------


def test_a_big_fleet_s_counts_come_from_the_sweep_s_snapshot(admin_client, monkeypatch):
    from connections import metrics_history
    from connections.models import Status

    cv = ConfigVariableFactory(status=Status.CONNECTED)
    metrics_history.status_snapshot_take()  # the sweep's: one connected
    ConfigVariableFactory(status=Status.FAILING, connection=cv.connection)  # since then

    assert metrics_history.fleet_counts().by_status[Status.FAILING] == 1  # small: live
    monkeypatch.setattr(metrics_history, "estimated_count", lambda _: 5_000_000)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse("admin:connections_dashboard"))
        metrics = admin_client.get(reverse("metrics")).content.decode()

    fleet = metrics_history.fleet_counts()
    assert (fleet.live, fleet.by_status[Status.FAILING]) == (False, 0)
    assert (fleet.by_app[0].connected, fleet.by_app[0].app_id) == (1, cv.connection.app_id)
    assert "counts by status as of the sweep's snapshot" in response.content.decode()
    assert 'status="failing"} ' not in metrics
    every_row = [  # a GROUP BY of every ConfigVariable (filtered ones read few rows)
        q["sql"]
        for q in queries
        if 'FROM "connections_configvariable"' in q["sql"]
        and "GROUP BY" in q["sql"]
        and "WHERE" not in q["sql"]
    ]
    assert every_row == []


def test_a_big_table_s_list_shows_postgresql_s_estimate_and_counts_nothing(
    admin_client, monkeypatch
):
    from connections import admin_common

    cv = ConfigVariableFactory()
    _request(cv.connection.app, cv=cv)
    monkeypatch.setattr(admin_common, "estimated_count", lambda _: 123_456_789)

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse("admin:oauthflow_tokenrequest_changelist"))

    assert "123456789 token requests" in response.content.decode()
    assert _counts_of(queries, "oauthflow_tokenrequest") == []


def test_only_the_newest_snapshot_keeps_the_counts_per_connection():
    from connections.metrics_history import BY_CONNECTION, status_snapshot_take

    cv = ConfigVariableFactory()
    first = status_snapshot_take(now=NOW)
    second = status_snapshot_take(now=NOW + timedelta(minutes=5))
    first.refresh_from_db()

    assert BY_CONNECTION not in first.counts
    assert second.counts[BY_CONNECTION] == {str(cv.connection_id): {cv.status: 1}}
