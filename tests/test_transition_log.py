"""The bounded status-transition log: real changes kept, the newest few repeats kept,
the rest deleted in batches; what the portal and the admin show afterwards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from connections import transition_log
from connections.models import ConfigVariable, Status, StatusTransition
from connections.selectors import customer_history
from connections.transition_kinds import EXCHANGED_REASON
from connections.transition_log import transition_log_prune
from oauthflow import tasks
from tests.factories import ConfigVariableFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


@pytest.fixture
def keep_3(settings):
    settings.TOKEN_LOG_KEEP_SUCCESSES = 3
    settings.TOKEN_LOG_BATCH = 5000
    settings.TOKEN_LOG_MAX_BATCHES = 40
    settings.TOKEN_LOG_ROLLUP_INTERVAL = 60.0
    settings.TOKEN_REQUEST_RETENTION_DAYS = 30
    return settings


def _at(cv: ConfigVariable, ago: timedelta, from_status: str, to_status: str, reason: str = ""):
    return StatusTransition.objects.create(
        config_variable=cv,
        from_status=from_status,
        to_status=to_status,
        reason=reason or f"{from_status} to {to_status}",
        created_at=NOW - ago,
    )


def _renewed_hourly(cv: ConfigVariable, hours: int) -> list[StatusTransition]:
    """Hourly renewals, the newest a minute ago (oldest first)."""
    return [
        _at(cv, timedelta(hours=h, minutes=1), Status.CONNECTED, Status.CONNECTED, "Renewed")
        for h in range(hours - 1, -1, -1)
    ]


def _left(cv: ConfigVariable) -> list[tuple[str, str, str]]:
    rows = cv.transitions.order_by("created_at", "id")
    return list(rows.values_list("from_status", "to_status", "reason"))


def test_real_changes_and_the_newest_renewals_stay_the_other_renewals_go(keep_3):
    cv = ConfigVariableFactory(status=Status.CONNECTED)
    _at(cv, timedelta(hours=30), Status.EXCHANGING, Status.CONNECTED, "Connected")
    _at(cv, timedelta(hours=20), Status.CONNECTED, Status.FAILING)
    for h in (19, 18, 17, 16, 15):  # a failing connection's retries: repeats too
        _at(cv, timedelta(hours=h), Status.FAILING, Status.FAILING, "Retry failed")
    _at(cv, timedelta(hours=14), Status.FAILING, Status.CONNECTED)
    reconnect = f"{EXCHANGED_REASON} with flavor standard."
    _at(cv, timedelta(hours=12, minutes=30), Status.CONNECTED, Status.CONNECTED, reconnect)
    renewals = _renewed_hourly(cv, 12)

    result = transition_log_prune(now=NOW)

    assert result.pruned_repeats == 9 + 2  # renewals, then retries past the newest 3
    assert _left(cv) == [
        (Status.EXCHANGING, Status.CONNECTED, "Connected"),
        (Status.CONNECTED, Status.FAILING, "connected to failing"),
        *[(Status.FAILING, Status.FAILING, "Retry failed")] * 3,
        (Status.FAILING, Status.CONNECTED, "failing to connected"),
        (Status.CONNECTED, Status.CONNECTED, reconnect),  # a Reconnect is an event
        *[(Status.CONNECTED, Status.CONNECTED, "Renewed")] * 3,
    ]
    kept = set(cv.transitions.filter(reason="Renewed").values_list("pk", flat=True))
    assert kept == {r.pk for r in renewals[-3:]}
    assert transition_log_prune(now=NOW).pruned_repeats == 0  # nothing more to do


def test_each_connection_keeps_its_own_newest_renewals(keep_3):
    busy, quiet = ConfigVariableFactory(), ConfigVariableFactory()
    _renewed_hourly(busy, 10)
    _renewed_hourly(quiet, 2)

    transition_log_prune(now=NOW)

    assert busy.transitions.count() == 3
    assert quiet.transitions.count() == 2


def test_deletes_go_by_primary_key_a_batch_at_a_time(keep_3):
    keep_3.TOKEN_LOG_BATCH = 2
    cv = ConfigVariableFactory()
    _renewed_hourly(cv, 10)  # 7 to delete: 4 statements of at most 2 rows

    with CaptureQueriesContext(connection) as queries:
        result = transition_log_prune(now=NOW)

    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert result.pruned_repeats == 7
    assert len(deletes) == 4
    assert all('"id" IN' in sql and "created_at" not in sql for sql in deletes)
    assert cv.transitions.count() == 3


def test_a_run_stops_at_its_budget_and_the_rest_waits_for_the_next(keep_3, monkeypatch):
    keep_3.TOKEN_LOG_MAX_BATCHES = 2  # one step: its window query and one DELETE
    monkeypatch.setattr(transition_log, "CONFIG_VARIABLES_PER_STEP", 1)
    first, second = ConfigVariableFactory(), ConfigVariableFactory()
    _renewed_hourly(first, 5)
    _renewed_hourly(second, 5)

    assert transition_log_prune(now=NOW).pruned_repeats == 2
    assert sorted([first.transitions.count(), second.transitions.count()]) == [3, 5]
    assert transition_log_prune(now=NOW).pruned_repeats == 2
    assert [first.transitions.count(), second.transitions.count()] == [3, 3]


def test_only_connections_renewed_lately_are_looked_at(keep_3):
    idle = ConfigVariableFactory()
    for h in range(5):  # renewed long ago, not since: left until its next renewal
        _at(idle, timedelta(hours=h + 2), Status.CONNECTED, Status.CONNECTED, "Renewed")

    assert transition_log_prune(now=NOW).pruned_repeats == 0
    assert idle.transitions.count() == 5


def test_transitions_past_the_retention_go_real_changes_included(keep_3):
    cv = ConfigVariableFactory()
    _at(cv, timedelta(days=31), Status.EXCHANGING, Status.CONNECTED, "Connected")
    _at(cv, timedelta(days=30, hours=1), Status.CONNECTED, Status.FAILING)
    recent = _at(cv, timedelta(days=29), Status.FAILING, Status.CONNECTED)

    result = transition_log_prune(now=NOW)

    assert result.pruned_expired_transitions == 2
    assert list(cv.transitions.values_list("pk", flat=True)) == [recent.pk]


def test_the_history_after_pruning_says_since_the_oldest_kept_renewal(keep_3):
    cv = ConfigVariableFactory(status=Status.CONNECTED)
    _at(cv, timedelta(hours=42), Status.EXCHANGING, Status.CONNECTED, "Connected")
    renewals = _renewed_hourly(cv, 41)

    transition_log_prune(now=NOW)

    first, last = renewals[-3].created_at, renewals[-1].created_at
    since = f"{first:%H:%M}" if first.date() == last.date() else f"{first:%Y-%m-%d %H:%M}"
    assert customer_history(cv) == [
        (last, f"Renewed repeatedly since {since} (last {last:%H:%M})"),
        (NOW - timedelta(hours=42), "Connected"),
    ]


def test_the_admin_and_portal_pages_render_after_pruning(keep_3, admin_client):
    cv = ConfigVariableFactory(status=Status.CONNECTED)
    _at(cv, timedelta(hours=42), Status.EXCHANGING, Status.CONNECTED, "Connected")
    _renewed_hourly(cv, 10)
    transition_log_prune(now=NOW)

    admin_page = admin_client.get(reverse("admin:connections_configvariable_change", args=[cv.pk]))
    assert admin_page.status_code == 200
    html = admin_page.content.decode()
    assert "Renewed repeatedly since" in html  # the grouped history
    assert html.count(">Renewed<") == 3  # the raw rows the log kept

    customer = Client()
    customer.force_login(UserFactory(customer=cv.customer))
    portal_page = customer.get(reverse("connections:detail", args=[cv.pk]))
    assert portal_page.status_code == 200
    assert "Renewed repeatedly since" in portal_page.content.decode()


def test_the_beat_task_prunes_transitions_after_the_token_log(keep_3):
    cv = ConfigVariableFactory()
    _renewed_hourly(cv, 5)

    counts = tasks.prune_token_requests()

    assert counts["pruned_repeats"] == 2
    assert counts["pruned_expired_transitions"] == 0
    assert "summarised_id" in counts  # the token log's counts still there
