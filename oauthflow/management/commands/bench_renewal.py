"""``manage.py bench_renewal``: renewal throughput and the sweep's plan, in one run.

A benchmark, not a test: it needs PostgreSQL and Redis of its own (see
:mod:`oauthflow.bench`, which does the work). Example::

    createdb -h 127.0.0.1 -U postgres bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/7 \\
    python manage.py bench_renewal --n 2000 --rows-large 1000000
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser, ArgumentTypeError
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from oauthflow.bench import (
    BenchOptions,
    BenchRefused,
    bench_run,
    command_line,
    format_report,
    parse_processes,
)


def _processes(value: str) -> tuple[int, ...]:
    try:
        return parse_processes(value)
    except ValueError as exc:
        raise ArgumentTypeError(str(exc)) from exc


class Command(BaseCommand):
    help = (
        "Benchmark renewals through the real Celery path (PostgreSQL, Redis, real workers, "
        "a local rotating token endpoint) against raw requests, and the sweep's query plan "
        "at two table sizes. Needs DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis), "
        "both of its own."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        defaults = BenchOptions()
        parser.add_argument(
            "--n", type=int, default=defaults.n, help="Due rows renewed per run (default 2000)."
        )
        parser.add_argument(
            "--processes",
            type=_processes,
            default=defaults.processes,
            help="Worker process counts, one run each (default 1,2).",
        )
        parser.add_argument(
            "--pool",
            choices=("prefork", "solo", "threads"),
            default=defaults.pool,
            help="prefork: one worker with -c N (default); solo: N single-process workers; "
            "threads: N single-process workers with THREADS_PER_WORKER threads each.",
        )
        parser.add_argument(
            "--rows-small",
            type=int,
            default=defaults.rows_small,
            help="Rows in the table for the first sweep measurement (default 10000).",
        )
        parser.add_argument(
            "--rows-large",
            type=int,
            default=defaults.rows_large,
            help="Rows in the table for the second sweep measurement (default 1000000).",
        )
        parser.add_argument(
            "--sweep-due",
            type=int,
            default=defaults.sweep_due,
            help="Due rows among the sweep's rows (default 500, one batch).",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=defaults.timeout,
            help="Seconds one renewal run may take before it is reported as timed out.",
        )
        parser.add_argument(
            "--worker-log-level",
            default=defaults.worker_log_level,
            help="Log level of the benchmark's workers (default WARNING).",
        )
        parser.add_argument(
            "--log-dir", type=Path, default=None, help="Worker logs (default var/bench/)."
        )
        parser.add_argument("--no-renewal", action="store_true", help="Skip the renewal runs.")
        parser.add_argument("--no-sweep", action="store_true", help="Skip the sweep plan.")
        parser.add_argument(
            "--no-migrate", action="store_true", help="Do not apply migrations first."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        bench_options = BenchOptions(
            n=options["n"],
            processes=options["processes"],
            pool=options["pool"],
            rows_small=options["rows_small"],
            rows_large=options["rows_large"],
            sweep_due=options["sweep_due"],
            timeout=options["timeout"],
            worker_log_level=options["worker_log_level"],
            renewal=not options["no_renewal"],
            sweep=not options["no_sweep"],
            migrate=not options["no_migrate"],
            **({"log_dir": options["log_dir"]} if options["log_dir"] else {}),
        )
        if bench_options.n < 1 or bench_options.rows_small < 1:
            raise CommandError("--n and --rows-small must be at least 1.")

        def say(text: str) -> None:
            self.stderr.write(text)

        try:
            report = bench_run(bench_options, command=command_line(sys.argv), say=say)
        except BenchRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(format_report(report))
