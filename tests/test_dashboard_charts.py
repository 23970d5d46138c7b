"""The health dashboard's charts: the aggregation behind them (renewals and failures per
minute, latency percentiles per App, status snapshots) and the SVG they render to.

The figures come from the token-request log's summaries plus the rows not yet rolled up
(``oauthflow.log_summary``): these tests read rows not yet rolled up; tests/test_log_summary.py
checks that a roll-up leaves every figure the same."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connections import charts
from connections.dashboard import (
    BUCKET_MINUTES,
    dashboard_data,
    latency_by_app,
    renewal_activity,
    trends_by_app,
)
from connections.metrics_history import (
    SNAPSHOT_KEEP,
    snapshot_slot,
    status_history,
    status_snapshot_take,
)
from connections.models import App, Status, StatusSnapshot
from oauthflow import tasks
from oauthflow.models import Outcome, TokenRequest, TokenRequestKind
from tests.factories import AppFactory, ConfigVariableFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 4, 12, 34, 56, tzinfo=UTC)


def _requests(
    app: App,
    at: datetime,
    n: int = 1,
    *,
    kind: str = TokenRequestKind.REFRESH,
    outcome: str = Outcome.SUCCEEDED,
    duration_ms: int = 100,
) -> None:
    TokenRequest.objects.bulk_create(
        TokenRequest(
            app=app,
            kind=kind,
            flavor=1,
            url=app.token_url,
            outcome=outcome,
            duration_ms=duration_ms,
            created_at=at,
        )
        for _ in range(n)
    )


# --- Renewals and failures per minute -----------------------------------------------------


def test_renewals_and_failures_are_counted_per_minute():
    app = AppFactory()
    minute = NOW.replace(second=0) - timedelta(minutes=3)  # 12:31
    _requests(app, minute + timedelta(seconds=5), 3)
    _requests(app, minute + timedelta(seconds=50), 2, outcome=Outcome.TRANSIENT)
    _requests(app, minute + timedelta(seconds=59), 1, outcome=Outcome.BENIGN)  # not a failure
    _requests(app, minute + timedelta(seconds=61), 1, outcome=Outcome.GRANT_DEAD)  # 12:32
    _requests(app, minute, 1, kind=TokenRequestKind.CLIENT_CREDENTIALS)  # renews too
    _requests(app, minute, 4, kind=TokenRequestKind.EXCHANGE)  # a connect, not a renewal
    _requests(app, NOW - timedelta(hours=25), 7)  # outside the window
    _requests(app, NOW + timedelta(minutes=1), 7)  # not yet (clock skew)

    activity = renewal_activity(now=NOW)

    assert activity.per_minute == {minute: (7, 2), minute + timedelta(minutes=1): (1, 1)}
    assert activity.renewals == 8
    assert activity.failures == 3
    assert activity.peak() == (minute, 7)
    assert activity.last(60, now=NOW) == (8, 3)
    assert activity.last(2, now=NOW) == (1, 1)


def test_the_24_hours_are_drawn_in_10_minute_buckets_with_zeros_between():
    app = AppFactory()
    _requests(app, datetime(2026, 3, 4, 12, 31, tzinfo=UTC), 4)
    _requests(app, datetime(2026, 3, 4, 12, 33, tzinfo=UTC), 6, outcome=Outcome.NEXT_FLAVOR)
    _requests(app, datetime(2026, 3, 3, 13, 5, tzinfo=UTC), 2)

    activity = renewal_activity(now=NOW)

    assert len(activity.buckets) == 24 * 60 // BUCKET_MINUTES
    first, last = activity.buckets[0], activity.buckets[-1]
    assert first.start == datetime(2026, 3, 3, 12, 40, tzinfo=UTC)
    assert last.start == datetime(2026, 3, 4, 12, 30, tzinfo=UTC)
    assert (last.renewals, last.failures) == (10, 6)
    assert (last.peak_renewals, last.peak_failures) == (6, 6)
    assert last.renewals_per_minute == 1.0
    assert last.failures_per_minute == 0.6
    starts = [b.start for b in activity.buckets]
    assert starts == sorted(starts)
    assert all(b - a == timedelta(minutes=10) for a, b in pairwise(starts))
    assert sum(b.renewals for b in activity.buckets) == 12
    hourly = dict((hour, (r, f)) for hour, r, f in activity.hourly())
    assert hourly[datetime(2026, 3, 4, 12, tzinfo=UTC)] == (10, 6)
    assert hourly[datetime(2026, 3, 3, 13, tzinfo=UTC)] == (2, 0)
    assert sum(r for r, _ in hourly.values()) == 12


def test_the_activity_queries_read_ranges_not_the_log():
    with CaptureQueriesContext(connection) as queries:
        renewal_activity(now=NOW)
    (log,) = [q["sql"] for q in queries if 'FROM "oauthflow_tokenrequest"' in q["sql"]]
    assert '"oauthflow_tokenrequest"."id" >' in log  # only rows not yet rolled up
    assert '"created_at" >=' in log
    assert "GROUP BY" in log


# --- Latency percentiles ------------------------------------------------------------------


def test_latency_per_app_over_the_window_estimated_within_a_histogram_bucket():
    fast, slow, idle = AppFactory(name="Fast"), AppFactory(name="Slow"), AppFactory(name="Idle")
    for ms in range(1, 101):  # 1..100 ms, spread over the last hours
        _requests(fast, NOW - timedelta(minutes=ms), duration_ms=ms)
    _requests(slow, NOW - timedelta(minutes=1), 9, duration_ms=1000)
    _requests(slow, NOW - timedelta(minutes=2), 1, duration_ms=9000, outcome=Outcome.TRANSIENT)
    _requests(slow, NOW - timedelta(hours=30), 50, duration_ms=1)  # outside the window
    _requests(idle, NOW - timedelta(days=2), duration_ms=5)

    rows = {row.name: row for row in latency_by_app(now=NOW)}

    assert set(rows) == {"Fast", "Slow"}  # no request in the window: no bar
    assert rows["Fast"].count == 100
    # Exact: 50.5 and 95.05; the histogram's buckets around them are 25 ms wide.
    assert rows["Fast"].p50 == pytest.approx(50.5, abs=25)
    assert rows["Fast"].p95 == pytest.approx(95.05, abs=25)
    assert rows["Slow"].count == 10
    assert 750 <= rows["Slow"].p50 <= 1000
    assert 5000 <= rows["Slow"].p95 <= 9000


def test_latency_reads_a_bounded_number_of_rows_whatever_the_traffic():
    app = AppFactory(name="Busy")
    _requests(app, NOW - timedelta(minutes=1), 50, duration_ms=10)
    _requests(app, NOW - timedelta(minutes=30), 50, duration_ms=999)

    with CaptureQueriesContext(connection) as queries:
        (row,) = latency_by_app(now=NOW)

    assert row.count == 100
    log = [q["sql"] for q in queries if 'FROM "oauthflow_tokenrequest"' in q["sql"]]
    assert all("GROUP BY" in sql for sql in log)  # counted by the database, not fetched


def test_hourly_trend_per_app():
    one, two = AppFactory(), AppFactory()
    _requests(one, NOW - timedelta(minutes=10), 3)
    _requests(one, NOW - timedelta(minutes=10), 1, outcome=Outcome.WRONG_ENDPOINT)
    _requests(one, NOW - timedelta(hours=23, minutes=30), 2, kind=TokenRequestKind.EXCHANGE)
    _requests(two, NOW - timedelta(hours=2), 5)
    _requests(two, NOW - timedelta(hours=40), 5)  # outside

    trends = trends_by_app(now=NOW)

    assert trends[one.pk].hourly[-1] == 4
    assert trends[one.pk].hourly[0] == 2
    assert (trends[one.pk].total, trends[one.pk].failures) == (6, 1)
    assert len(trends[one.pk].hourly) == 24
    assert trends[two.pk].hourly[-3] == 5
    assert trends[two.pk].total == 5


# --- Status snapshots ---------------------------------------------------------------------


def test_the_sweep_takes_one_snapshot_per_5_minutes_and_prunes_after_7_days():
    ConfigVariableFactory.create_batch(2, status=Status.CONNECTED)
    ConfigVariableFactory(status=Status.FAILING)
    old = StatusSnapshot.objects.create(
        slot=snapshot_slot(NOW - SNAPSHOT_KEEP - timedelta(minutes=5)),
        taken_at=NOW - SNAPSHOT_KEEP - timedelta(minutes=5),
        counts={},
    )
    kept = StatusSnapshot.objects.create(
        slot=snapshot_slot(NOW - timedelta(days=6)), taken_at=NOW - timedelta(days=6), counts={}
    )

    first = status_snapshot_take(now=NOW)
    assert first is not None
    assert first.slot == datetime(2026, 3, 4, 12, 30, tzinfo=UTC)
    assert first.counts[Status.CONNECTED] == 2
    assert first.counts[Status.FAILING] == 1
    assert first.counts[Status.ERROR] == 0
    assert not StatusSnapshot.objects.filter(pk=old.pk).exists()
    assert StatusSnapshot.objects.filter(pk=kept.pk).exists()

    assert status_snapshot_take(now=NOW + timedelta(seconds=3)) is None  # same slot
    assert status_snapshot_take(now=NOW + timedelta(minutes=2)) is not None  # 12:35
    assert StatusSnapshot.objects.count() == 3


def test_sweep_renewals_stores_a_snapshot(settings):
    ConfigVariableFactory(status=Status.CONNECTED)
    tasks.sweep_renewals()
    tasks.sweep_renewals()
    (snapshot,) = StatusSnapshot.objects.all()
    assert snapshot.counts[Status.CONNECTED] == 1


def test_status_history_is_the_window_oldest_first_then_now():
    for hours, connected in ((30, 9), (5, 2), (1, 3)):
        at = NOW - timedelta(hours=hours)
        StatusSnapshot.objects.create(
            slot=snapshot_slot(at), taken_at=at, counts={Status.CONNECTED: connected}
        )
    history = status_history(
        now=NOW, window=timedelta(hours=24), current={Status.CONNECTED: 4, Status.ERROR: 1}
    )
    assert [counts[Status.CONNECTED] for _, counts in history] == [2, 3, 4]
    assert history[0][1][Status.ERROR] == 0  # statuses missing from a snapshot are zero
    assert history[-1][0] == NOW


# --- The rendered charts ------------------------------------------------------------------


def _fleet() -> App:
    app = AppFactory(name="Widgets <Inc>")
    ConfigVariableFactory.create_batch(3, status=Status.CONNECTED, connection__app=app)
    ConfigVariableFactory(status=Status.REAUTHORIZATION_REQUIRED, connection__app=app)
    now = datetime.now(UTC)
    for minutes in range(0, 600, 7):
        _requests(app, now - timedelta(minutes=minutes), 2, duration_ms=100 + minutes)
    _requests(app, now - timedelta(minutes=3), 2, outcome=Outcome.TRANSIENT, duration_ms=3000)
    StatusSnapshot.objects.create(
        slot=snapshot_slot(now - timedelta(hours=2)),
        taken_at=now - timedelta(hours=2),
        counts={Status.CONNECTED: 4},
    )
    return app


def test_charts_are_inline_svg_with_no_script_and_nothing_from_elsewhere():
    _fleet()
    rendered = charts.dashboard_charts(dashboard_data())
    svgs = [rendered.activity_svg, rendered.latency_svg, rendered.status_svg]
    svgs += [row.sparkline for row in rendered.by_app if row.sparkline]
    assert len(svgs) == 4
    for svg in svgs:
        assert svg.startswith("<svg ")
        assert "<script" not in svg
        assert "<?xml" not in svg
        outside = svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(href|src)=|url\(|@import|//[a-z]", outside, re.IGNORECASE)
        assert 'role="img"' in svg
        assert 'aria-label="' in svg
    assert "Widgets &lt;Inc&gt;" in rendered.latency_svg  # App names are escaped
    assert "<Inc>" not in rendered.latency_svg
    assert ">Renewals<" in rendered.activity_svg
    assert ">Failures<" in rendered.activity_svg
    assert ">Connected<" in rendered.status_svg
    assert len(rendered.by_app[0].sparkline) < 4000  # small enough for every table row


def test_the_status_table_beside_the_chart():
    _fleet()
    rendered = charts.dashboard_charts(dashboard_data())
    assert rendered.status_times == ["24 h ago", "6 h ago", "1 h ago", "now"]
    rows = {row.label: row.counts for row in rendered.status_rows}
    assert rows["Connected"] == [None, None, None, 3]  # no snapshot near those times
    assert rows["Reauthorization required"] == [None, None, None, 1]


def test_dashboard_page_shows_the_charts_and_the_numbers(admin_client):
    _fleet()
    response = admin_client.get(reverse("admin:connections_dashboard"))
    html = response.content.decode()
    assert response.status_code == 200
    for heading in (
        "Renewals and failures per minute, last 24 hours",
        "Token-request latency per App, last 24 hours",
        "Connections by status over time, last 24 hours",
    ):
        assert heading in html
    assert html.count('class="pygal-chart') == 4  # three charts and one sparkline
    assert "The numbers, hour by hour" in html
    assert "4 failed" not in html  # 2 failed of 174 requests in 24 h
    assert "2 failed" in html
    assert 'hx-get="' + reverse("admin:connections_dashboard_live") in html
    # Scripts come from this origin; inline ones carry the response's nonce.
    nonce = re.search(r'<script [^>]*nonce="([^"]+)"', html).group(1)
    assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]
    tags = re.findall(r"<script\b[^>]*>", html)
    assert any("htmx.min.js" in tag for tag in tags)
    for tag in tags:
        assert "src=" in tag or f'nonce="{nonce}"' in tag
        assert "//" not in tag


def test_the_live_fragment_is_the_dashboard_body(admin_client):
    _fleet()
    response = admin_client.get(reverse("admin:connections_dashboard_live"))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.strip().startswith('<div id="health-live"')
    assert "<html" not in html
    assert html.count('class="pygal-chart') == 4
    assert "no-cache" in response["Cache-Control"]


def test_the_live_fragment_when_signed_out_asks_for_a_reload_not_a_swap(client):
    response = client.get(reverse("admin:connections_dashboard_live"))
    assert response.status_code == 401
    assert response["HX-Refresh"] == "true"


def test_the_live_fragment_needs_the_view_permission(client):
    client.force_login(UserFactory(is_staff=True))
    assert client.get(reverse("admin:connections_dashboard_live")).status_code == 403
