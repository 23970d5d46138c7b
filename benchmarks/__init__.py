"""Benchmarks of the portal (not shipped in the wheel): ``python -m benchmarks renewal …``.

Measurements, not tests: each needs PostgreSQL and Redis of its own and prints a report
that states every target next to its figure (see ``benchmarks.cli``).
"""


class BenchRefused(Exception):
    """The environment is not fit for the benchmark; the message says what to change."""
