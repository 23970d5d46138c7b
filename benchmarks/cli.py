"""The command line: ``python -m benchmarks renewal [options]``.

A benchmark, not a test: it needs PostgreSQL and Redis of its own. Example::

    createdb -h 127.0.0.1 -U postgres bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/7 \\
    python -m benchmarks renewal --n 2000 --latency-ms 200 --rows-large 1000000

The report goes to stdout, progress to stderr; exit status 2 when the environment is
refused (the message says what to change).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import BenchRefused
from benchmarks.environment import command_line
from benchmarks.report import format_report
from benchmarks.suite import BenchOptions, bench_run, parse_processes


def _processes(value: str) -> tuple[int, ...]:
    try:
        return parse_processes(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
        return number

    return parse


def _renewal_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = BenchOptions()
    add = parser.add_argument
    add(
        "--n",
        type=_at_least(1),
        default=defaults.n,
        help="Due rows renewed per run (default %(default)s).",
    )
    add(
        "--processes",
        type=_processes,
        default=defaults.processes,
        help="Worker process counts, one run each (default 1,2).",
    )
    add(
        "--pool",
        choices=("prefork", "solo", "threads"),
        default=defaults.pool,
        help="prefork: one worker with -c N (default); solo: N single-process workers; "
        "threads: N single-process workers with THREADS_PER_WORKER threads each.",
    )
    add(
        "--latency-ms",
        type=_at_least(0),
        default=defaults.latency_ms,
        help="The token endpoint waits this long before each reply, without blocking "
        "others (default 0: loopback speed). Real providers answer in 100-500 ms.",
    )
    add(
        "--connections",
        type=_at_least(0),
        default=defaults.connections,
        help="Steady state: this many connections renewed by the real celery beat and "
        "workers (the most --processes) for --minutes (default 0: no steady state).",
    )
    add(
        "--lifetime",
        type=_at_least(60),
        default=defaults.lifetime,
        help="Steady state: seconds each access token lives (default %(default)s); the "
        "rows' first expiries are staggered evenly over one renewal period.",
    )
    add(
        "--minutes",
        type=float,
        default=defaults.minutes,
        help="Steady state: minutes measured after beat's first sweep (default %(default)s).",
    )
    add(
        "--rows-small",
        type=_at_least(1),
        default=defaults.rows_small,
        help="Rows in the table for the first sweep measurement (default %(default)s).",
    )
    add(
        "--rows-large",
        type=_at_least(1),
        default=defaults.rows_large,
        help="Rows in the table for the second sweep measurement (default %(default)s).",
    )
    add(
        "--sweep-due",
        type=_at_least(0),
        default=defaults.sweep_due,
        help="Due rows among the sweep's rows (default %(default)s, one batch).",
    )
    add(
        "--timeout",
        type=float,
        default=defaults.timeout,
        help="Seconds one renewal run may take before it is reported as timed out.",
    )
    add(
        "--worker-log-level",
        default=defaults.worker_log_level,
        help="Log level of the benchmark's workers (default %(default)s).",
    )
    add("--log-dir", type=Path, default=None, help="Worker logs (default var/bench/).")
    add("--no-renewal", action="store_true", help="Skip the renewal runs.")
    add("--no-sweep", action="store_true", help="Skip the sweep plan.")
    add("--no-migrate", action="store_true", help="Do not apply migrations first.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    renewal = commands.add_parser(
        "renewal",
        help="Renewals through the real Celery path (PostgreSQL, Redis, real workers, a "
        "fake rotating token endpoint) and the sweep's query plan at two table sizes.",
    )
    _renewal_arguments(renewal)
    return parser


def options_from(args: argparse.Namespace) -> BenchOptions:
    """The ``BenchOptions`` the parsed ``renewal`` arguments ask for."""
    return BenchOptions(
        n=args.n,
        processes=args.processes,
        pool=args.pool,
        latency_ms=args.latency_ms,
        rows_small=args.rows_small,
        rows_large=args.rows_large,
        sweep_due=args.sweep_due,
        timeout=args.timeout,
        connections=args.connections,
        lifetime=args.lifetime,
        minutes=args.minutes,
        worker_log_level=args.worker_log_level,
        renewal=not args.no_renewal,
        sweep=not args.no_sweep,
        migrate=not args.no_migrate,
        **({"log_dir": args.log_dir} if args.log_dir else {}),
    )


def main(argv: Sequence[str]) -> int:
    """Run the subcommand in ``argv``; print the report. Returns the exit status."""
    args = build_parser().parse_args(argv)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        report = bench_run(
            options_from(args), command=command_line(["-m", "benchmarks", *argv]), say=say
        )
    except BenchRefused as exc:
        say(f"Refused: {exc}")
        return 2
    print(format_report(report))
    return 0
