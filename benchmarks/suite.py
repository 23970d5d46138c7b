"""The whole renewal benchmark: preflight, the renewal runs, the sweep at scale.

Measures, in one run, against PostgreSQL and Redis (never SQLite or eager tasks):

* renewals per second through the real Celery path (``sweep_renewals`` enqueues, real
  ``celery worker`` processes renew) with each count of worker processes, against the
  fake rotating endpoint (``benchmarks.fake_endpoint``) in a process of its own, replying
  at once or after ``latency_ms``;
* the ceiling (loopback only): as many raw ``requests.Session().post`` calls per second,
  from one process, to the same endpoint; and our throughput as a share of it;
* token requests per renewal (must be 1.00) and double spends (must be 0), counted by
  the endpoint and cross-checked against the token-request log;
* the sweep's query plan and time at a small and a large table.

Units: times in seconds unless a name ends in ``_ms``; rates per second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connections as db_connections

from benchmarks import BenchRefused
from benchmarks.data import (
    BENCH_CLIENT_ID,
    BENCH_CLIENT_SECRET,
    bench_app_create,
    bench_cleanup,
    connected_rows_create,
    execute,
    renewal_rows_create,
)
from benchmarks.environment import (
    bench_environment_check,
    environment_lines,
    foreign_config_variables,
    schema_drift,
)
from benchmarks.fake_endpoint import EndpointProcess, RotatingTokenEndpoint
from benchmarks.report import BenchReport
from benchmarks.runs import median_rate, raw_post_rate, renewal_run
from benchmarks.steady import steady_run
from benchmarks.sweep import sweep_bench
from benchmarks.workers import BeatProcess, WorkerGroup
from connections.models import ConfigVariable

Say = Callable[[str], None]
TOKEN_LIFETIME = 3600  # seconds: rows renewed in a throughput run are not due again
UNUSED_TOKEN_URL = "http://127.0.0.1:9/token"  # noqa: S105 - the sweep never renews its rows


@dataclass(frozen=True)
class BenchOptions:
    """What to run: ``n`` due rows per renewal run, worker ``processes`` per run, the
    endpoint's ``latency_ms`` before each reply, the sweep table sizes (rows),
    ``timeout`` per run (seconds); a steady state of ``connections`` rows whose tokens
    live ``lifetime`` seconds, measured for ``minutes`` with the most ``processes``."""

    n: int = 2000
    processes: tuple[int, ...] = (1, 2)
    pool: str = "prefork"
    latency_ms: int = 0
    rows_small: int = 10_000
    rows_large: int = 1_000_000
    sweep_due: int = 500
    sweep_repeats: int = 15
    timeout: float = 300.0
    worker_log_level: str = "WARNING"
    connections: int = 0  # steady state: rows renewed by beat and workers (0: no run)
    lifetime: int = 360  # seconds, the steady state's access tokens
    minutes: float = 3.0  # the steady state's measured window
    renewal: bool = True
    sweep: bool = True
    migrate: bool = True
    log_dir: Path = field(default_factory=lambda: Path(settings.VAR_DIR) / "bench")


def bench_endpoint(*, lifetime: int, latency_ms: int) -> EndpointProcess:
    """The fake rotating endpoint for a run, in a process of its own (not started):
    it accepts the rows' seeded refresh tokens once and counts, not records, requests."""
    return EndpointProcess(
        RotatingTokenEndpoint(
            lifetime=lifetime,
            reply_delay=latency_ms / 1000,
            client=(BENCH_CLIENT_ID, BENCH_CLIENT_SECRET),
            accept_unknown=True,
            record=False,
        )
    )


def _prepare(options: BenchOptions) -> None:
    """Refuse an unfit environment; migrate; clean the previous run's rows and logs."""
    # The parent's idle broadcast connection (worker pings) makes kombu warn; harmless.
    logging.getLogger("kombu.transport.redis").setLevel(logging.ERROR)
    bench_environment_check()
    if options.migrate:
        call_command("migrate", interactive=False, verbosity=0)
    missing = schema_drift()
    if missing:
        raise BenchRefused(
            f"The database lacks columns the models have ({', '.join(missing)}): it was "
            "migrated before a migration was edited. Recreate it: dropdb bench; createdb bench."
        )
    bench_cleanup()
    others = foreign_config_variables()
    if others:
        raise BenchRefused(
            f"The database holds {others} ConfigVariables outside the benchmark; the sweep "
            "would renew them too. Use a database of its own (createdb bench)."
        )
    for old_log in options.log_dir.glob("bench-*.log"):  # the previous run's worker logs
        old_log.unlink()


def _sample_ceiling(report: BenchReport, url: str, options: BenchOptions, say: Say) -> None:
    # Sampled before each run and after the last; the median is used, so a moment of
    # noise on this host sways neither side. Sequential posts to a slow endpoint would
    # measure its delay, not our overhead: loopback only.
    if options.latency_ms:
        return
    report.ceiling_samples.append(raw_post_rate(url, options.n))
    say(f"Ceiling: {report.ceiling_samples[-1].per_second:.1f} requests/s")


def throughput_bench(report: BenchReport, options: BenchOptions, say: Say) -> None:
    """One renewal run per count of worker processes, each of ``options.n`` due rows."""
    db_connections.close_all()  # before forking the endpoint
    with bench_endpoint(lifetime=TOKEN_LIFETIME, latency_ms=options.latency_ms) as endpoint:
        app = bench_app_create(endpoint.url)
        say(f"Token endpoint at {endpoint.url}; creating {options.n} rows")
        connection = renewal_rows_create(app, options.n)
        for processes in options.processes:
            _sample_ceiling(report, endpoint.url, options, say)
            run = renewal_run(
                app=app,
                connection=connection,
                endpoint=endpoint,
                processes=processes,
                pool=options.pool,
                log_dir=options.log_dir,
                log_level=options.worker_log_level,
                timeout=options.timeout,
            )
            report.runs.append(run)
            say(
                f"{processes} process(es): {run.per_second:.1f} renewals/s, "
                f"{run.renewed}/{run.due} renewed in {run.seconds:.2f} s"
            )
        _sample_ceiling(report, endpoint.url, options, say)
    report.ceiling = median_rate(report.ceiling_samples) if report.ceiling_samples else None
    ConfigVariable.objects.filter(connection=connection).delete()
    # Every renewal moved refresh_at, leaving a dead entry in the partial index until
    # vacuum; measure the sweep on a vacuumed table, as autovacuum keeps it.
    execute(f"VACUUM {ConfigVariable._meta.db_table}")
    report.notes += [
        "renewals/s = due rows / (last refreshed_at - enqueue of sweep_renewals); the run "
        "includes the sweep task itself and each worker's first database connection",
        "share of ceiling = renewals/s / processes / raw requests/s; all processes, the "
        "endpoint, PostgreSQL and Redis share the host's CPUs",
        "http ms = mean duration_ms the token-request log recorded for the run's requests",
        "db conns/renewal = PostgreSQL sessions opened while the run's workers were up "
        "(pg_stat_database.sessions, including each worker process's first) / renewals",
    ]


def steady_bench(report: BenchReport, options: BenchOptions, say: Say) -> None:
    """The steady state: ``options.connections`` rows renewed by beat and workers."""
    db_connections.close_all()  # before forking the endpoint
    with bench_endpoint(lifetime=options.lifetime, latency_ms=options.latency_ms) as endpoint:
        app = bench_app_create(endpoint.url)
        say(f"Token endpoint at {endpoint.url}; creating {options.connections} rows")
        connection = connected_rows_create(app, "steady", [(None, None)] * options.connections)
        report.steady = steady_run(
            connection=connection,
            endpoint=endpoint,
            lifetime=options.lifetime,
            minutes=options.minutes,
            workers=WorkerGroup(
                processes=max(options.processes),
                pool=options.pool,
                log_dir=options.log_dir,
                log_level=options.worker_log_level,
            ),
            beat=BeatProcess(log_dir=options.log_dir, log_level=options.worker_log_level),
            say=say,
        )
    ConfigVariable.objects.filter(connection=connection).delete()
    report.notes += [
        f"steady state: beat sweeps every {settings.RENEWAL_SWEEP_INTERVAL:g} s "
        "(RENEWAL_SWEEP_INTERVAL); the window opens at its first sweep; lag = refreshed_at "
        "- the refresh_at the row had, read by polling every second",
        "past expiry = renewed after, or found past, the token's end (the stored "
        "expires_at + the expiry margin), polled every second",
    ]


def bench_run(options: BenchOptions, *, command: str, say: Say = print) -> BenchReport:
    """Run the benchmark and return its report; cleans its rows before and after.

    Raises ``BenchRefused`` (with what to change) when the environment is unfit."""
    began = time.monotonic()
    _prepare(options)
    report = BenchReport(
        command=command, environment=environment_lines(), n=options.n,
        latency_ms=options.latency_ms,
    )  # fmt: skip
    try:
        if options.renewal:
            throughput_bench(report, options, say)
        if options.connections:
            steady_bench(report, options, say)
        if options.sweep:
            say("Sweep query at scale")
            report.sweeps = sweep_bench(
                bench_app_create(UNUSED_TOKEN_URL),
                sizes=sorted({options.rows_small, options.rows_large}),
                due=options.sweep_due,
                repeats=options.sweep_repeats,
                say=say,
            )
    finally:
        say("Cleaning up the benchmark's rows")
        bench_cleanup()
    report.elapsed = time.monotonic() - began
    return report


def parse_processes(value: str) -> tuple[int, ...]:
    """``"1,2"`` → ``(1, 2)``: worker process counts, each at least 1."""
    counts = tuple(int(part) for part in value.split(",") if part.strip())
    if not counts or min(counts) < 1:
        raise ValueError("worker process counts must be positive integers, e.g. 1,2")
    return counts
