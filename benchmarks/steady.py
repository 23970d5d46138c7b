"""The steady state: N connections whose tokens live S seconds, renewed for M minutes by
the real ``celery beat`` (the sweep on its production schedule) and workers.

Reports the renewal lag (how late each renewal ran versus the row's ``refresh_at``),
renewals per second, token requests per renewal, double spends, and how many connections
were ever past their ``expires_at``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmarks.fake_endpoint import EndpointStats


@dataclass(frozen=True)
class SteadyResult:
    """One steady-state run. ``lifetime`` and ``seconds`` (the measured window) in
    seconds; lags in seconds (p50, p99, max over every renewal in the window)."""

    connections: int
    lifetime: int
    processes: int
    pool: str
    seconds: float
    renewals: int
    failed: int
    lag_p50: float
    lag_p99: float
    lag_max: float
    past_expiry: int  # connections whose expires_at passed before their renewal
    endpoint: EndpointStats
    renewal_interval: float = math.nan  # seconds between a row's renewals (mean)

    @property
    def per_second(self) -> float:
        return self.renewals / self.seconds if self.seconds > 0 else 0.0

    @property
    def needed_per_second(self) -> float:
        """The rate that keeps every connection fresh: connections / renewal interval."""
        interval = self.renewal_interval
        return self.connections / interval if interval and interval > 0 else math.nan

    @property
    def requests_per_renewal(self) -> float:
        return self.endpoint.requests / self.renewals if self.renewals else math.nan


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of ``values`` (``share`` in [0, 1]); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(share * len(ordered)), 1)
    return ordered[rank - 1]
