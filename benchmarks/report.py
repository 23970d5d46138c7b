"""The benchmark's printed report: figures first, then each issue-15 target next to its
figure with PASS or FAIL, then notes and the sweep's query plans.

``format_report`` joins named steps, one per section, so each stays short.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.runs import RateResult, RenewalRun, share_of_ceiling
from benchmarks.steady import SteadyResult
from benchmarks.sweep import SweepResult

# Issue 15's targets.
TARGET_SHARE_OF_CEILING = 0.8  # loopback endpoint, one worker process
TARGET_RENEWALS_PER_SECOND = 300.0  # a slow endpoint, all worker processes together
TARGET_LAG_P99 = 60.0  # seconds, steady state
TARGET_SWEEP_GROWTH = 3.0  # sweep time at the large table / at the small one


@dataclass
class BenchReport:
    """Everything one benchmark run measured, for ``format_report``."""

    command: str
    environment: list[str] = field(default_factory=list)
    n: int = 0
    latency_ms: int = 0  # the endpoint's delay before each reply
    ceiling: RateResult | None = None  # the median of ceiling_samples
    ceiling_samples: list[RateResult] = field(default_factory=list)
    runs: list[RenewalRun] = field(default_factory=list)
    steady: SteadyResult | None = None
    sweeps: list[SweepResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _target(ok: bool, text: str) -> str:
    return f"  {_verdict(ok)}  {text}"


def _indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _header_lines(report: BenchReport) -> list[str]:
    lines = ["Renewal benchmark", "=================", f"command: {report.command}"]
    lines += [f"  {item}" for item in report.environment]
    lines.append(f"  token endpoint: replies after {report.latency_ms} ms")
    return lines


def _ceiling_lines(report: BenchReport) -> list[str]:
    ceiling = report.ceiling
    if ceiling is None:
        return []
    samples = report.ceiling_samples
    spread = ""
    if len(samples) > 1:
        figures = ", ".join(f"{x.per_second:.1f}" for x in samples)
        spread = (
            f", the median of {len(samples)} samples ({figures}), one before each run "
            "and one after the last"
        )
    return [
        "",
        f"Ceiling: {ceiling.count} raw requests.Session().post calls, one process",
        f"  {ceiling.per_second:8.1f} requests/s  ({ceiling.seconds:.2f} s){spread}",
    ]


def _share_text(share: float, processes: int) -> str:
    """The share of the raw ceiling, or a dash when no ceiling was measured (a slow
    endpoint's runs are judged by renewals/s, not against loopback)."""
    if math.isnan(share):
        return "   —"
    return f"{share * processes:>7.2f} ({share:.2f} per proc)"


def _run_line(run: RenewalRun, ceiling: RateResult | None) -> list[str]:
    share = share_of_ceiling(run, ceiling)
    line = (
        f"  {run.processes:>5} {run.pool:<9} {run.per_second:>10.1f}"
        f"  {_share_text(share, run.processes):<26}  "
        f"  {run.requests_per_renewal:>11.2f}  {run.endpoint.double_spends:>13}"
        f"  {run.failed:>6}  {run.seconds:>6.2f}  {run.first_after:>8.2f}"
        f"  {run.mean_http_ms:>7.2f}  {run.sessions_per_renewal:>16.2f}"
        f"  {run.endpoint.in_flight_peak:>9}"
    )
    lines = [line + ("  TIMED OUT" if run.timed_out else "")]
    if run.logged_requests != run.endpoint.requests:
        lines.append(
            f"        token-request log has {run.logged_requests} refresh rows, "
            f"the endpoint saw {run.endpoint.requests} requests"
        )
    return lines


def _runs_lines(report: BenchReport) -> list[str]:
    if not report.runs:
        return []
    lines = [
        "",
        f"Renewals through Celery ({report.n} due rows per run)",
        "  procs pool      renewals/s  share of ceiling (per proc)  req/renewal"
        "  double spends  failed  wall s  1st at s  http ms  db conns/renewal  in flight",
    ]
    for run in report.runs:
        lines += _run_line(run, report.ceiling)
    return lines


def _steady_lines(report: BenchReport) -> list[str]:
    steady = report.steady
    if steady is None:
        return []
    return [
        "",
        f"Steady state: {steady.connections:,} connections, {steady.lifetime} s tokens, "
        f"{steady.seconds / 60:.1f} minutes, renewed by celery beat and {steady.processes} "
        f"worker process(es) ({steady.pool})",
        f"  renewals: {steady.renewals:,} ({steady.per_second:.1f}/s; a steady load needs "
        f"about {steady.needed_per_second:.1f}/s), failed {steady.failed}",
        f"  renewal lag (refreshed_at - refresh_at): p50 {steady.lag_p50:.1f} s, "
        f"p99 {steady.lag_p99:.1f} s, max {steady.lag_max:.1f} s",
        f"  token requests per renewal: {steady.requests_per_renewal:.2f}; double spends: "
        f"{steady.endpoint.double_spends}",
        f"  connections ever past expiry: {steady.past_expiry} (the token ran out); "
        f"past the stored expires_at (expiry less OAUTH_EXPIRY_MARGIN, when "
        f"get_access_token renews on demand): {steady.past_expires_at}",
    ]


def _sweep_lines(report: BenchReport) -> list[str]:
    if not report.sweeps:
        return []
    lines = [
        "",
        "Sweep query (due_queryset, one batch)",
        "  rows in table  due  returned  median ms  best ms  EXPLAIN exec ms  scan",
    ]
    for sweep in report.sweeps:
        exec_ms = f"{sweep.execution_ms:.3f}" if sweep.execution_ms is not None else "?"
        scan = "index only" if sweep.index_only else ("index" if sweep.uses_index else "NO INDEX")
        lines.append(
            f"  {sweep.rows:>13,} {sweep.due:>4} {sweep.returned:>9} {sweep.median_ms:>10.3f}"
            f" {sweep.best_ms:>8.3f}  {exec_ms:>15}  {scan}"
        )
    return lines


def _loopback_targets(report: BenchReport) -> list[str]:
    single = [run for run in report.runs if run.processes == 1]
    if report.latency_ms or not single:
        return []
    share = share_of_ceiling(single[0], report.ceiling)
    return [
        _target(
            share >= TARGET_SHARE_OF_CEILING,
            f"loopback, 1 process: {share:.2f} of the raw ceiling "
            f"(target >= {TARGET_SHARE_OF_CEILING:.2f})",
        )
    ]


def _slow_endpoint_targets(report: BenchReport) -> list[str]:
    if not report.latency_ms or not report.runs:
        return []
    best = max(report.runs, key=lambda run: run.per_second)
    return [
        _target(
            best.per_second >= TARGET_RENEWALS_PER_SECOND,
            f"{report.latency_ms} ms endpoint: {best.per_second:.1f} renewals/s with "
            f"{best.processes} process(es) (target >= {TARGET_RENEWALS_PER_SECOND:.0f}, "
            "all workers; issue 15 names a 200 ms endpoint)",
        )
    ]


def _correctness_targets(report: BenchReport) -> list[str]:
    if not report.runs:
        return []
    per_renewal = [run.requests_per_renewal for run in report.runs]
    spends = sum(run.endpoint.double_spends for run in report.runs)
    complete = all(run.renewed == run.due and not run.timed_out for run in report.runs)
    return [
        _target(
            all(abs(x - 1.0) < 0.005 for x in per_renewal),
            f"token requests per renewal: {', '.join(f'{x:.2f}' for x in per_renewal)} "
            "(target 1.00)",
        ),
        _target(spends == 0, f"double spends: {spends} (target 0)"),
        _target(complete, "every due row renewed in every run"),
    ]


def _steady_targets(report: BenchReport) -> list[str]:
    steady = report.steady
    if steady is None:
        return []
    return [
        _target(
            steady.lag_p99 < TARGET_LAG_P99,
            f"steady state: p99 renewal lag {steady.lag_p99:.1f} s "
            f"(target < {TARGET_LAG_P99:.0f} s)",
        ),
        _target(
            steady.past_expiry == 0,
            f"steady state: {steady.past_expiry} connections ever past expiry (target 0)",
        ),
        _target(
            abs(steady.requests_per_renewal - 1.0) < 0.005 and steady.endpoint.double_spends == 0,
            f"steady state: {steady.requests_per_renewal:.2f} token requests per renewal, "
            f"{steady.endpoint.double_spends} double spends (target 1.00, 0)",
        ),
    ]


def _sweep_targets(report: BenchReport) -> list[str]:
    if not report.sweeps:
        return []
    lines = [
        _target(
            all(s.index_only for s in report.sweeps),
            "sweep reads only config_variable_due (Index Only Scan) at every size",
        )
    ]
    if len(report.sweeps) >= 2:
        small, large = report.sweeps[0], report.sweeps[-1]
        growth = large.best_ms / small.best_ms if small.best_ms else math.nan
        median_growth = large.median_ms / small.median_ms if small.median_ms else math.nan
        lines.append(
            _target(
                growth < TARGET_SWEEP_GROWTH,
                f"sweep time x{growth:.2f} (best; median x{median_growth:.2f}) for "
                f"x{large.rows / max(small.rows, 1):.0f} rows (flat: < x{TARGET_SWEEP_GROWTH:.0f})",
            )
        )
    return lines


TARGET_STEPS: tuple[Callable[[BenchReport], list[str]], ...] = (
    _loopback_targets,
    _slow_endpoint_targets,
    _correctness_targets,
    _steady_targets,
    _sweep_targets,
)


def _targets_lines(report: BenchReport) -> list[str]:
    lines = [line for step in TARGET_STEPS for line in step(report)]
    return ["", "Targets (issue 15)", *lines] if lines else []


def _notes_lines(report: BenchReport) -> list[str]:
    notes = list(report.notes)
    if any(run.sessions_per_renewal >= 0.5 for run in report.runs):
        notes.append(
            "workers opened a PostgreSQL connection per renewal: Celery's Django fix-up "
            "closes database connections before and after every task unless "
            "CELERY_DB_REUSE_MAX is set (CONN_MAX_AGE alone does not keep them)"
        )
    if report.runs:
        notes.append("in flight = the most token requests the endpoint held at once (its peak)")
    return ["", "Notes", *(f"  - {note}" for note in notes)] if notes else []


def _plan_lines(report: BenchReport) -> list[str]:
    lines: list[str] = []
    for sweep in report.sweeps:
        lines += ["", f"Plan at {sweep.rows:,} rows:", _indent(sweep.plan)]
    return lines


SECTIONS: tuple[Callable[[BenchReport], list[str]], ...] = (
    _header_lines,
    _ceiling_lines,
    _runs_lines,
    _steady_lines,
    _sweep_lines,
    _targets_lines,
    _notes_lines,
    _plan_lines,
)


def format_report(report: BenchReport) -> str:
    """The report as plain text, section by section (``SECTIONS``)."""
    lines = [line for section in SECTIONS for line in section(report)]
    lines += ["", f"Total benchmark time: {report.elapsed:.1f} s"]
    return "\n".join(lines)
