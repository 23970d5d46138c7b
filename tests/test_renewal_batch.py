"""Batch renewal (the sweep's path): many due rows per task, same rules as one row."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from urllib.parse import parse_qsl

import pytest
import responses
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connections.models import ConfigVariable, Status, StatusTransition
from oauthflow import lease as lease_module
from oauthflow import renewal, renewal_writer, tasks
from oauthflow.lease import lease_claim
from oauthflow.models import Outcome, TokenRequest
from oauthflow.renewal import RenewalOutcome, config_variables_renew
from tests.factories import ConfigVariableFactory, ConnectionFactory, CustomerFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "https://app.example.com/oauth2/token"
ODD_TOKEN_URL = "https://odd.example.com/oauth2/token"


@pytest.fixture
def shared_connection():
    return ConnectionFactory()


def _due_rows(connection_, count: int, **overrides) -> list[ConfigVariable]:
    now = timezone.now()
    return [
        ConfigVariableFactory(
            connection=connection_,
            customer=CustomerFactory(),
            status=Status.CONNECTED,
            access_token=f"old-access-{index}",
            refresh_token=f"old-refresh-{index}",
            expires_at=now + timedelta(seconds=30),
            refresh_at=now - timedelta(seconds=count - index),
            **overrides,
        )
        for index in range(count)
    ]


def _rotating_provider(refused: frozenset[str] = frozenset()) -> None:
    """A token endpoint that answers each refresh token with tokens derived from it,
    rotating the refresh token, and ``invalid_grant`` for the ``refused`` ones."""

    def reply(request):
        fields = dict(parse_qsl(request.body.decode()))
        presented = fields["refresh_token"]
        if presented in refused:
            return 400, {}, '{"error": "invalid_grant"}'
        suffix = presented.removeprefix("old-refresh-")
        body = (
            f'{{"access_token": "new-access-{suffix}", "refresh_token": "new-refresh-{suffix}",'
            ' "token_type": "Bearer", "expires_in": 3600}'
        )
        return 200, {"Content-Type": "application/json"}, body

    responses.add_callback(responses.POST, TOKEN_URL, callback=reply)


@responses.activate
def test_a_batch_renews_every_due_row_with_its_own_rotated_token(shared_connection):
    rows = _due_rows(shared_connection, 7)
    _rotating_provider()

    outcome = config_variables_renew(config_variable_ids=[str(cv.pk) for cv in rows])

    assert outcome == RenewalOutcome(renewed=7)
    assert len(responses.calls) == 7
    for index, cv in enumerate(rows):
        cv.refresh_from_db()
        assert (cv.status, cv.access_token, cv.refresh_token) == (
            Status.CONNECTED,
            f"new-access-{index}",
            f"new-refresh-{index}",
        )
        assert cv.refresh_at > timezone.now() + timedelta(minutes=40)
        assert (cv.lease_token, cv.lease_expires_at, cv.enqueued_at) == (None, None, None)
        assert cv.refreshed_at is not None
        transition = StatusTransition.objects.get(config_variable=cv)
        assert transition.reason.startswith("Access token renewed (refresh)")
        log = TokenRequest.objects.get(config_variable=cv)
        assert log.outcome == Outcome.SUCCEEDED
        assert f"old-refresh-{index}" not in log.request_body  # redacted in the log
    # The tokens are encrypted in the database, never stored in the clear.
    with connection.cursor() as cursor:
        cursor.execute("SELECT refresh_token, access_token FROM connections_configvariable")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)
    assert "new-refresh-" not in stored
    assert "new-access-" not in stored


@responses.activate
def test_a_batchs_queries_do_not_grow_with_its_rows(shared_connection, settings):
    """One claim, one load and one write for the whole batch: 40 rows cost the same
    number of queries as 4."""
    settings.RENEWAL_WRITE_BATCH = 100
    _rotating_provider()
    small = _due_rows(shared_connection, 4)
    config_variables_renew(config_variable_ids=[cv.pk for cv in small])  # warms the App's flavor
    counts = []
    for size in (4, 40):
        ConfigVariable.objects.all().delete()
        rows = _due_rows(shared_connection, size)
        with CaptureQueriesContext(connection) as queries:
            assert (
                config_variables_renew(config_variable_ids=[cv.pk for cv in rows]).renewed == size
            )
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


@responses.activate
def test_one_batch_handles_refusals_leases_and_rows_no_longer_due(shared_connection):
    renewed, refused, leased, not_due = _due_rows(shared_connection, 4)
    ConfigVariable.objects.filter(pk=not_due.pk).update(
        refresh_at=timezone.now() + timedelta(minutes=5)
    )
    lease = lease_claim(config_variable_id=leased.pk)
    _rotating_provider(refused=frozenset({refused.refresh_token}))

    outcome = config_variables_renew(
        config_variable_ids=[cv.pk for cv in (renewed, refused, leased, not_due)]
    )

    assert outcome == RenewalOutcome(renewed=1, failed=1, skipped=2)
    sent = [
        dict(parse_qsl(call.request.body.decode()))["refresh_token"] for call in responses.calls
    ]
    assert sorted(sent) == ["old-refresh-0", "old-refresh-1"]  # one request each, no more
    for cv in (renewed, refused, leased, not_due):
        cv.refresh_from_db()
    assert renewed.status == Status.CONNECTED
    assert renewed.access_token == "new-access-0"
    assert refused.status == Status.REAUTHORIZATION_REQUIRED
    assert refused.diagnosis == "refresh_token_revoked"
    assert refused.refresh_at is None
    assert leased.lease_token == lease, "another worker's lease is left alone"
    assert leased.access_token == "old-access-2"
    assert not_due.access_token == "old-access-3"
    assert not_due.lease_token is None


@responses.activate
def test_every_answered_renewal_is_written_when_another_row_crashes(shared_connection, monkeypatch):
    """A bug on one row ends the batch, but no refresh token that reached the provider
    is lost: every row whose request was answered holds its rotated token, the rest
    keep theirs, and every lease is released."""
    rows = _due_rows(shared_connection, 5)
    _rotating_provider()
    real_chain = renewal.run_token_chain

    def chain_crashing_on_the_fourth_row(**kwargs):
        if kwargs["config_variable"].pk == rows[3].pk:
            raise RuntimeError("a bug, not a provider error")
        return real_chain(**kwargs)

    monkeypatch.setattr(renewal, "run_token_chain", chain_crashing_on_the_fourth_row)

    with pytest.raises(RuntimeError):
        config_variables_renew(config_variable_ids=[cv.pk for cv in rows])

    sent = {dict(parse_qsl(c.request.body.decode()))["refresh_token"] for c in responses.calls}
    assert {"old-refresh-0", "old-refresh-1", "old-refresh-2"} <= sent  # before the crash
    assert "old-refresh-3" not in sent
    for index, cv in enumerate(rows):
        cv.refresh_from_db()
        assert cv.lease_token is None
        assert cv.enqueued_at is None
        spent = f"old-refresh-{index}" in sent
        expected = f"new-refresh-{index}" if spent else f"old-refresh-{index}"
        assert cv.refresh_token == expected, "a rotated refresh token was lost"
    assert TokenRequest.objects.count() == len(sent)


@responses.activate
def test_a_failed_write_is_retried_and_logged_loudly(shared_connection, monkeypatch, caplog):
    rows = _due_rows(shared_connection, 3)
    _rotating_provider()
    monkeypatch.setattr(renewal_writer.time, "sleep", lambda seconds: None)
    real_save = renewal_writer.transitions_save
    failures = []

    def save_failing_once(prepared):
        if not failures:
            failures.append(1)
            raise DatabaseError("connection reset")
        return real_save(prepared)

    monkeypatch.setattr(renewal_writer, "transitions_save", save_failing_once)

    with caplog.at_level(logging.CRITICAL, logger="oauthflow.renewal_writer"):
        assert config_variables_renew(config_variable_ids=[cv.pk for cv in rows]).renewed == 3

    assert [r.message for r in caplog.records] == ["oauthflow.renewal.write_failed"]
    assert caplog.records[0].rotated_refresh_token is True
    assert "new-refresh" not in caplog.text
    assert "old-refresh" not in caplog.text
    assert len(responses.calls) == 3, "the write is retried, not the token request"
    for index, cv in enumerate(rows):
        cv.refresh_from_db()
        assert cv.refresh_token == f"new-refresh-{index}"
    assert StatusTransition.objects.count() == 3, "one transition per row, not per attempt"


@responses.activate
def test_rows_past_the_time_budget_are_deferred_to_the_next_sweep(shared_connection, settings):
    """With less of the task's time limit left than one token request may take, only
    the first row is tried; the others are released (not enqueued) so the next sweep
    sends them again."""
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 15  # < 2 x OAUTH_HTTP_TIMEOUT (10 s)
    rows = _due_rows(shared_connection, 3)
    _rotating_provider()

    outcome = config_variables_renew(config_variable_ids=[cv.pk for cv in rows])

    assert outcome == RenewalOutcome(renewed=1, deferred=2)
    assert len(responses.calls) == 1
    assert sorted(renewal.renewals_due()) == sorted(cv.pk for cv in rows[1:])


@responses.activate
def test_one_apps_unstorable_reply_does_not_cost_other_rows_their_tokens(shared_connection):
    """An app answering ``expires_in`` = 2**63 - 1 ("never") used to overflow while
    storing; now it is capped, and no row's reply can stop the others being written."""
    odd_app_rows = _due_rows(ConnectionFactory(app__token_url=ODD_TOKEN_URL), 2)
    rows = _due_rows(shared_connection, 3)
    _rotating_provider()
    responses.post(
        ODD_TOKEN_URL,
        json={"access_token": "odd", "refresh_token": "odd-r", "expires_in": 2**63 - 1},
    )

    outcome = config_variables_renew(config_variable_ids=[cv.pk for cv in odd_app_rows + rows])

    assert outcome == RenewalOutcome(renewed=5)
    for index, cv in enumerate(rows):
        cv.refresh_from_db()
        assert cv.refresh_token == f"new-refresh-{index}"
    for cv in odd_app_rows:
        cv.refresh_from_db()
        assert cv.refresh_token == "odd-r"
        assert cv.expires_at > timezone.now() + timedelta(days=3000)


@responses.activate
def test_a_lease_taken_over_meanwhile_is_left_to_its_holder(shared_connection, monkeypatch):
    """If a row's lease expired during the batch and another worker claimed it, the
    batch still writes the tokens it was answered (the spent refresh token's successor
    is the only one that works) but leaves the other worker's lease alone."""
    rows = _due_rows(shared_connection, 2)
    _rotating_provider()
    real_save = renewal_writer.transitions_save
    other = uuid.uuid4()

    def lease_lost_before_the_write(prepared):
        ConfigVariable.objects.filter(pk=rows[0].pk).update(lease_token=other)
        return real_save(prepared)

    monkeypatch.setattr(renewal_writer, "transitions_save", lease_lost_before_the_write)
    config_variables_renew(config_variable_ids=[cv.pk for cv in rows])

    taken, mine = rows
    taken.refresh_from_db()
    mine.refresh_from_db()
    assert taken.refresh_token == "new-refresh-0"
    assert taken.lease_token == other, "another worker's live lease was wiped"
    assert mine.refresh_token == "new-refresh-1"
    assert mine.lease_token is None


@responses.activate
def test_a_failed_preferred_flavor_update_loses_no_token(shared_connection, monkeypatch):
    rows = _due_rows(shared_connection, 2)
    _rotating_provider()

    def flavor_remember_failing(**kwargs):
        raise DatabaseError("database is locked")

    monkeypatch.setattr(renewal_writer, "flavor_remember", flavor_remember_failing)
    assert config_variables_renew(config_variable_ids=[cv.pk for cv in rows]).renewed == 2
    for index, cv in enumerate(rows):
        cv.refresh_from_db()
        assert cv.refresh_token == f"new-refresh-{index}"


@responses.activate
def test_the_sweep_sends_due_rows_in_batches_of_renewal_task_batch(
    shared_connection, settings, monkeypatch
):
    settings.RENEWAL_TASK_BATCH = 3
    rows = _due_rows(shared_connection, 7)
    _rotating_provider()
    batches = []
    real_delay = tasks.renew_config_variables.delay
    monkeypatch.setattr(
        tasks.renew_config_variables,
        "delay",
        lambda ids: batches.append(list(ids)) or real_delay(ids),
    )

    assert tasks.sweep_renewals() == 7  # eager: the batches ran too

    assert [len(batch) for batch in batches] == [3, 3, 1]
    assert [id_ for batch in batches for id_ in batch] == [
        str(cv.pk) for cv in rows
    ]  # oldest first
    assert all(isinstance(id_, str) for batch in batches for id_ in batch)  # JSON task messages
    assert {cv.access_token for cv in ConfigVariable.objects.all()} == {
        f"new-access-{index}" for index in range(7)
    }


@responses.activate
def test_a_deeply_nested_extra_field_costs_no_row_its_tokens(shared_connection):
    """A reply whose extra field nests 900 levels deep used to overflow the stack when
    written, losing every pending row of the batch; such a field is now not kept."""
    rows = _due_rows(shared_connection, 3)
    odd_rows = _due_rows(ConnectionFactory(app__token_url=ODD_TOKEN_URL), 1)
    _rotating_provider()
    deep = "[" * 900 + "]" * 900
    responses.post(
        ODD_TOKEN_URL,
        body=(
            '{"access_token": "odd", "refresh_token": "odd-r", "expires_in": 3600,'
            f' "instance_url": "https://eu.example.com", "x": {deep}}}'
        ),
        content_type="application/json",
    )

    outcome = config_variables_renew(config_variable_ids=[cv.pk for cv in rows + odd_rows])

    assert outcome == RenewalOutcome(renewed=4)
    for index, cv in enumerate(rows):
        cv.refresh_from_db()
        assert cv.refresh_token == f"new-refresh-{index}"
    odd = odd_rows[0]
    odd.refresh_from_db()
    assert odd.refresh_token == "odd-r"
    assert odd.token_extra == {"instance_url": "https://eu.example.com"}


@responses.activate
def test_leases_are_kept_alive_and_a_row_lost_meanwhile_is_skipped(
    shared_connection, settings, monkeypatch
):
    """A batch slower than a third of its lease extends it (here while waiting for a slow
    chain); a row whose lease another worker took meanwhile gets no token request."""
    settings.RENEWAL_LEASE_SECONDS = 2  # extended every 2/3 s
    settings.RENEWAL_BATCH_THREADS = 1
    rows = _due_rows(shared_connection, 3)
    _rotating_provider()
    real_chain, real_extend = renewal.run_token_chain, lease_module.lease_extend_many
    other = uuid.uuid4()
    extensions = []

    def slow_first_chain(**kwargs):
        if kwargs["config_variable"].pk == rows[0].pk:
            time.sleep(1.3)
        return real_chain(**kwargs)

    def extend_after_losing_the_last_row(**kwargs):
        if not extensions:  # another worker took the last row's lease (it had expired)
            ConfigVariable.objects.filter(pk=rows[2].pk).update(lease_token=other)
        extensions.append(time.monotonic())
        return real_extend(**kwargs)

    monkeypatch.setattr(renewal, "run_token_chain", slow_first_chain)
    monkeypatch.setattr(lease_module, "lease_extend_many", extend_after_losing_the_last_row)

    outcome = config_variables_renew(config_variable_ids=[cv.pk for cv in rows])

    assert extensions, "the lease was never extended"
    assert outcome == RenewalOutcome(renewed=2, skipped=1)
    sent = [dict(parse_qsl(c.request.body.decode()))["refresh_token"] for c in responses.calls]
    assert sent == ["old-refresh-0", "old-refresh-1"]
    lost = rows[2]
    lost.refresh_from_db()
    assert lost.lease_token == other
    assert lost.refresh_token == "old-refresh-2"


@responses.activate
def test_a_row_the_write_cannot_take_is_dropped_and_the_others_written(
    shared_connection, monkeypatch, caplog
):
    rows = _due_rows(shared_connection, 3)
    _rotating_provider()
    real_save = renewal_writer.transitions_save

    def save_choking_on_the_middle_row(prepared):
        if any(item.config_variable.pk == rows[1].pk for item in prepared):
            raise RecursionError("maximum recursion depth exceeded")
        return real_save(prepared)

    monkeypatch.setattr(renewal_writer, "transitions_save", save_choking_on_the_middle_row)
    with caplog.at_level(logging.CRITICAL, logger="oauthflow.renewal_writer"):
        outcome = config_variables_renew(config_variable_ids=[cv.pk for cv in rows])

    assert outcome == RenewalOutcome(renewed=2, failed=1)
    expected = ["new-refresh-0", "old-refresh-1", "new-refresh-2"]
    for cv, refresh_token in zip(rows, expected, strict=True):
        cv.refresh_from_db()
        assert cv.refresh_token == refresh_token
        assert cv.lease_token is None
    assert "oauthflow.renewal.store_failed" in [r.message for r in caplog.records]
    assert TokenRequest.objects.count() == 3  # every request that was sent is logged
