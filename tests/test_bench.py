"""Smoke tests of the renewal benchmark's pure pieces (``benchmarks``).

The benchmark itself needs PostgreSQL, Redis and real workers and is run by hand
(``python -m benchmarks renewal``); here: the fake endpoint's rotation and double-spend
counting, its HTTP handling on loopback (in a process of its own, with a reply delay),
the report, and the refusals.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from benchmarks import BenchRefused
from benchmarks.cli import main
from benchmarks.data import BENCH_CLIENT_ID, BENCH_CLIENT_SECRET
from benchmarks.environment import bench_environment_check, command_line
from benchmarks.fake_endpoint import (
    STATS_PATH,
    EndpointProcess,
    EndpointStats,
    RotatingTokenEndpoint,
)
from benchmarks.http_server import HTTPRequest
from benchmarks.report import BenchReport, format_report
from benchmarks.runs import RateResult, RenewalRun, median_rate, share_of_ceiling
from benchmarks.steady import LagTracker, SteadyResult, percentile
from benchmarks.suite import bench_endpoint, parse_processes
from benchmarks.sweep import SweepResult
from connections.models import ConfigVariable, Status
from tests.factories import ConfigVariableFactory

FORM = {"content-type": "application/x-www-form-urlencoded"}


def _post(ledger: RotatingTokenEndpoint, body: bytes, headers: dict | None = None):
    request = HTTPRequest("POST", "/token", headers or FORM, body, arrived=0.0)
    status, _headers, reply = ledger.respond(request)
    return status, reply


def _refresh(ledger: RotatingTokenEndpoint, token: str) -> tuple[int, dict]:
    return _post(ledger, f"grant_type=refresh_token&refresh_token={token}".encode())


def test_ledger_rotates_refresh_tokens_and_counts_double_spends():
    ledger = RotatingTokenEndpoint(lifetime=60, accept_unknown=True)

    status, first = _refresh(ledger, "seed-1")
    assert status == 200
    assert first["expires_in"] == 60
    assert first["refresh_token"] != "seed-1"
    status, second = _refresh(ledger, first["refresh_token"])
    assert status == 200
    assert second["refresh_token"] not in ("seed-1", first["refresh_token"])

    status, reused = _refresh(ledger, "seed-1")
    assert status == 400
    assert reused["error"] == "invalid_grant"
    _refresh(ledger, "seed-1")

    assert ledger.stats() == EndpointStats(
        requests=4, refresh_requests=4, double_spends=2, tokens_seen=2
    )


def test_ledger_reads_json_bodies_and_other_grants():
    ledger = RotatingTokenEndpoint(accept_unknown=True)
    body = json.dumps({"grant_type": "refresh_token", "refresh_token": "j-1"}).encode()
    assert _post(ledger, body, {"content-type": "application/json"})[0] == 200
    status, reply = _post(ledger, b"grant_type=client_credentials")
    assert status == 200
    assert "refresh_token" not in reply
    assert _post(ledger, b"grant_type=password")[0] == 400
    assert _post(ledger, b"grant_type=refresh_token")[0] == 400  # no token
    assert ledger.stats().refresh_requests == 2


def test_a_strict_endpoint_refuses_unknown_tokens_and_wrong_clients():
    ledger = RotatingTokenEndpoint(client=("id", "secret"))
    _access, refresh = ledger.grant()
    body = f"grant_type=refresh_token&refresh_token={refresh}&client_id=id"
    assert _post(ledger, (body + "&client_secret=wrong").encode())[0] == 401
    assert _post(ledger, (body + "&client_secret=secret").encode())[0] == 200
    assert not ledger.is_live(refresh)
    unknown = (
        b"grant_type=refresh_token&refresh_token=never-issued&client_id=id&client_secret=secret"
    )
    status, reply = _post(ledger, unknown)
    assert (status, reply["error_description"]) == (400, "Unknown refresh token.")
    assert ledger.stats().double_spends == 0


def test_stats_minus_gives_the_counts_of_a_run():
    before = EndpointStats(requests=5, refresh_requests=4, double_spends=1, tokens_seen=3)
    after = EndpointStats(requests=9, refresh_requests=8, double_spends=1, tokens_seen=7)
    assert after.minus(before) == EndpointStats(4, 4, 0, 4)


def test_token_endpoint_process_serves_keep_alive_and_pipelined_requests():
    with EndpointProcess(RotatingTokenEndpoint(lifetime=120, accept_unknown=True)) as endpoint:
        session = requests.Session()
        token = "seed-http"
        for _ in range(3):  # one kept-alive connection, each reply rotating the token
            reply = session.post(
                endpoint.url,
                data={"grant_type": "refresh_token", "refresh_token": token},
                timeout=5,
            )
            assert reply.status_code == 200
            token = reply.json()["refresh_token"]
        reused = session.post(
            endpoint.url,
            data={"grant_type": "refresh_token", "refresh_token": "seed-http"},
            timeout=5,
        )
        assert reused.json() == {
            "error": "invalid_grant",
            "error_description": "The refresh token was already used.",
        }

        body = b"grant_type=refresh_token&refresh_token=pipelined-"
        request = (
            b"POST /token HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%s"
        )
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=5) as raw:
            both = request % (len(body) + 1, body + b"a") + request % (len(body) + 1, body + b"b")
            raw.sendall(both)  # two requests in one write: two replies, in order
            received = b""
            while received.count(b"HTTP/1.1 200 OK") < 2:
                received += raw.recv(65536)

        assert endpoint.stats() == EndpointStats(
            requests=6, refresh_requests=6, double_spends=1, tokens_seen=5, in_flight_peak=2
        )
        assert requests.get(f"http://127.0.0.1:{endpoint.port}{STATS_PATH}", timeout=5).ok
    assert endpoint.process is None


def test_a_slow_endpoint_keeps_many_requests_in_flight_at_once():
    """With ``--latency-ms``, each reply waits without holding up the others: requests
    sent together all wait out their delay together (the peak the endpoint saw), and
    each still gets its own rotated token."""
    clients = 12
    with bench_endpoint(lifetime=60, latency_ms=1500) as endpoint:
        barrier = threading.Barrier(clients)

        def refresh(i: int) -> requests.Response:
            barrier.wait(timeout=10)
            return requests.post(
                endpoint.url,
                data={"grant_type": "refresh_token", "refresh_token": f"seed-{i}"},
                auth=(BENCH_CLIENT_ID, BENCH_CLIENT_SECRET),
                timeout=30,
            )

        with ThreadPoolExecutor(max_workers=clients) as pool:
            replies = list(pool.map(refresh, range(clients)))
        stats = endpoint.stats()
    assert [reply.status_code for reply in replies] == [200] * clients
    assert len({reply.json()["refresh_token"] for reply in replies}) == clients
    assert stats.in_flight_peak == clients
    assert stats.double_spends == 0


def _report() -> BenchReport:
    ceiling = RateResult(count=1000, seconds=1.0)
    runs = [
        RenewalRun(
            processes=processes,
            pool="prefork",
            due=1000,
            renewed=1000,
            failed=0,
            seconds=seconds,
            first_after=0.1,
            endpoint=EndpointStats(1000, 1000, 0, 1000),
            logged_requests=1000,
            mean_http_ms=1.5,
        )
        for processes, seconds in ((1, 1.6), (2, 1.25))
    ]
    sweeps = [
        SweepResult(
            rows=rows,
            due=500,
            returned=500,
            median_ms=median,
            best_ms=median * 0.9,
            execution_ms=0.5,
            uses_index=True,
            plan="Index Only Scan using config_variable_due on connections_configvariable",
        )
        for rows, median in ((10_000, 1.0), (1_000_000, 1.2))
    ]
    return BenchReport(
        command="python -m benchmarks renewal --n 1000", n=1000, ceiling=ceiling, runs=runs,
        sweeps=sweeps,
    )  # fmt: skip


def test_report_shows_every_figure_and_checks_the_targets():
    report = _report()
    assert share_of_ceiling(report.runs[0], report.ceiling) == pytest.approx(0.625)
    assert share_of_ceiling(report.runs[1], report.ceiling) == pytest.approx(0.4)

    text = format_report(report)

    assert "python -m benchmarks renewal --n 1000" in text
    assert "1000.0 requests/s" in text
    assert "FAIL  loopback, 1 process: 0.62 of the raw ceiling (target >= 0.80)" in text
    assert "PASS  token requests per renewal: 1.00, 1.00" in text
    assert "PASS  double spends: 0" in text
    assert "PASS  sweep reads only config_variable_due (Index Only Scan) at every size" in text
    assert "PASS  sweep time x1.20 (best; median x1.20) for x100 rows" in text
    assert "Plan at 1,000,000 rows:" in text


def test_report_flags_double_spends_and_extra_requests():
    report = _report()
    run = report.runs[0]
    report.runs[0] = RenewalRun(
        **{**run.__dict__, "endpoint": EndpointStats(1100, 1100, 3, 1097), "logged_requests": 1100}
    )
    text = format_report(report)
    assert "FAIL  token requests per renewal: 1.10, 1.00" in text
    assert "FAIL  double spends: 3" in text
    assert "connection per renewal" not in text  # db_sessions unknown


def test_report_names_a_connection_per_renewal():
    report = _report()
    report.runs[0] = RenewalRun(**{**report.runs[0].__dict__, "db_sessions": 1001})
    assert "opened a PostgreSQL connection per renewal" in format_report(report)


def test_parse_processes():
    assert parse_processes("1,2") == (1, 2)
    with pytest.raises(ValueError, match="positive"):
        parse_processes("0")


def test_command_line_masks_passwords(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://bench:s3cret@db:5432/bench")
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    line = command_line(["-m", "benchmarks", "renewal", "--n", "10"])
    assert line == (
        "DATABASE_URL=postgres://bench:***@db:5432/bench python -m benchmarks renewal --n 10"
    )


def test_refuses_without_postgresql_and_redis(monkeypatch, capsys):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(BenchRefused, match="PostgreSQL"):
        bench_environment_check()
    assert main(["renewal", "--n", "10"]) == 2
    assert "needs PostgreSQL" in capsys.readouterr().err


def test_the_command_line_refuses_bad_numbers(capsys):
    with pytest.raises(SystemExit):
        main(["renewal", "--latency-ms", "-5"])
    assert "--latency-ms: must be at least 0, got -5" in capsys.readouterr().err


def test_the_ceiling_is_the_median_of_its_samples_and_the_report_lists_them():
    samples = [RateResult(1000, 2.0), RateResult(1000, 1.0), RateResult(1000, 4.0)]
    ceiling = median_rate(samples)
    assert ceiling.per_second == 500.0  # not the best (1000/s) nor the worst (250/s)
    report = BenchReport(command="bench", ceiling=ceiling, ceiling_samples=samples)
    assert "the median of 3 samples (500.0, 1000.0, 250.0)" in format_report(report)


def _steady(**changes) -> SteadyResult:
    fields = {
        "connections": 5000, "lifetime": 360, "processes": 2, "pool": "prefork",
        "seconds": 180.0, "renewals": 3000, "failed": 0, "lag_p50": 20.0, "lag_p99": 45.0,
        "lag_max": 58.0, "past_expiry": 0, "past_expires_at": 4,
        "endpoint": EndpointStats(3000, 3000, 0, 3000), "renewal_interval": 300.0,
    }  # fmt: skip
    return SteadyResult(**{**fields, **changes})


def test_report_states_the_steady_state_targets():
    text = format_report(BenchReport(command="bench", steady=_steady()))
    assert "Steady state: 5,000 connections, 360 s tokens, 3.0 minutes" in text
    assert "renewals: 3,000 (16.7/s; a steady load needs about 16.7/s), failed 0" in text
    assert "p50 20.0 s, p99 45.0 s, max 58.0 s" in text
    assert "PASS  steady state: p99 renewal lag 45.0 s (target < 60 s)" in text
    assert "PASS  steady state: 0 connections ever past expiry (target 0)" in text

    late = format_report(BenchReport(command="bench", steady=_steady(lag_p99=75.0, past_expiry=3)))
    assert "FAIL  steady state: p99 renewal lag 75.0 s (target < 60 s)" in late
    assert "FAIL  steady state: 3 connections ever past expiry (target 0)" in late


def test_a_slow_endpoint_run_is_judged_by_renewals_per_second():
    report = _report()
    report.latency_ms, report.ceiling, report.ceiling_samples = 200, None, []
    text = format_report(report)
    assert "PASS  200 ms endpoint: 800.0 renewals/s with 2 process(es) (target >= 300" in text
    assert "of the raw ceiling" not in text  # no ceiling against a slow endpoint


def test_percentile_is_the_nearest_rank():
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.5))


@pytest.mark.django_db
def test_the_lag_tracker_measures_each_renewal_against_the_refresh_at_it_replaced():
    start = timezone.now()
    rows = [
        ConfigVariableFactory(
            status=Status.CONNECTED,
            refresh_at=start + timedelta(seconds=10),
            expires_at=start + timedelta(seconds=100),
        )
        for _ in range(3)
    ]
    on_time, late, untouched = rows
    tracker = LagTracker(ConfigVariable.objects.all(), window_start=start, margin=30)
    ConfigVariable.objects.filter(pk=on_time.pk).update(
        refreshed_at=start + timedelta(seconds=12), refresh_at=start + timedelta(seconds=400)
    )
    ConfigVariable.objects.filter(pk=late.pk).update(
        refreshed_at=start + timedelta(seconds=135), refresh_at=start + timedelta(seconds=500)
    )
    tracker.poll()
    tracker.poll()  # the same renewals read again count once

    assert sorted(tracker.lags) == [2.0, 125.0]
    assert tracker.past_expiry == {late.pk}  # 35 s past expires_at: 5 s past the token's end
    ConfigVariable.objects.filter(pk=untouched.pk).update(
        expires_at=timezone.now() - timedelta(seconds=10)
    )
    tracker.poll()
    assert tracker.past_expires_at == {late.pk, untouched.pk}
    assert tracker.past_expiry == {late.pk}  # within the margin: the token still works
    ConfigVariable.objects.filter(pk=untouched.pk).update(
        expires_at=timezone.now() - timedelta(seconds=31)
    )
    tracker.poll()
    assert tracker.past_expiry == {late.pk, untouched.pk}  # found run out, not renewed
