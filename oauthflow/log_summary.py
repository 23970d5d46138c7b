"""A bounded token-request log: count every request into summaries, keep few in full.

A million connections renewed hourly write 24 M token requests a day. What the log is
for needs far fewer full rows: a failed request is what an admin opens, diagnoses, copies
as curl or exports to Postman, so every failure stays in full (until
``TOKEN_REQUEST_RETENTION_DAYS``), as does the newest ``TOKEN_LOG_KEEP_SUCCESSES``
successful requests of each ConfigVariable (of each App, for requests made for no
ConfigVariable), and a success whose chain also holds failures (so the chain reads
whole). Every request, kept or not, is first counted into ``TokenRequestSummary`` (per
App and hour: counts, duration sum and maximum, and a latency histogram with the fixed
bounds ``LATENCY_BOUNDS_MS``, from which p50/p95 are estimated) and, for renewals, into
``RenewalMinute`` (per minute, kept ``RENEWAL_MINUTES_KEPT``).

When: the Celery beat task ``oauthflow.prune_token_requests`` (every
``TOKEN_LOG_ROLLUP_INTERVAL`` seconds) runs :func:`token_log_roll_up`. The write path is
unchanged (one INSERT per batch of requests); counting at insert time instead would put
a contended UPDATE of one hot summary row in every renewal.

What has been counted is tracked by id, not by time: ``created_at`` is stamped when a
reply arrives, some time before the row is inserted, so a time cut-off would miss late
rows. Each run records the highest id (its horizon); a later run, at least
``TOKEN_LOG_SETTLE_SECONDS`` after, counts every row up to that horizon: by then every
transaction that took a lower id has committed or rolled back (the writers' transactions
last milliseconds). Summaries and the watermark move in one transaction, so a request is
counted exactly once. Readers (dashboard, ``/metrics``) add the summaries to the few rows
above the watermark (:func:`token_request_figures`), so a figure is the same before and
after a roll-up.

Deleting happens in batches of ``TOKEN_LOG_BATCH`` rows by primary key, each its own
short statement in autocommit (no long locks; a killed run loses no progress), at most
``TOKEN_LOG_MAX_BATCHES`` batches per run, and never a row the summaries do not hold yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import RowNumber, TruncHour, TruncMinute
from django.utils import timezone

from oauthflow.models import (
    RENEWAL_KINDS,
    Outcome,
    RenewalMinute,
    TokenLogState,
    TokenRequest,
    TokenRequestSummary,
)

# Upper bounds (ms) of the latency histogram's buckets; one more bucket holds the rest.
# Denser where token endpoints answer (50 ms to 1 s): p50/p95 land within one bucket.
LATENCY_BOUNDS_MS = (
    5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750,
    1000, 1500, 2000, 3000, 5000, 10000, 30000,
)  # fmt: skip
RENEWAL_MINUTES_KEPT = timedelta(days=2)  # the per-minute chart shows 24 hours

Key = tuple[int, datetime, str, str, int]  # app_id, hour, kind, outcome, flavor
FIGURES = ("count", "duration_ms_sum", "duration_ms_max", "latency_histogram")


@dataclass
class Figures:
    """Token requests of one key or a merge of several: ``count``, durations in ms."""

    count: int = 0
    duration_ms_sum: int = 0
    duration_ms_max: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))

    def add(self, other: Figures) -> None:
        self.count += other.count
        self.duration_ms_sum += other.duration_ms_sum
        self.duration_ms_max = max(self.duration_ms_max, other.duration_ms_max)
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]

    @property
    def mean_ms(self) -> float:
        return self.duration_ms_sum / self.count if self.count else 0.0

    def quantile_ms(self, q: float) -> float:
        """The ``q`` quantile (0..1) estimated from the histogram, interpolating linearly
        inside the bucket that holds it (as Prometheus' ``histogram_quantile``); never
        above the largest duration seen. Raises ValueError when there are no requests."""
        if not self.count:
            raise ValueError("no values")
        rank = q * self.count
        below = 0
        for index, n in enumerate(self.histogram):
            if n and below + n >= rank:
                lower = LATENCY_BOUNDS_MS[index - 1] if index else 0
                upper = (
                    LATENCY_BOUNDS_MS[index]
                    if index < len(LATENCY_BOUNDS_MS)
                    else max(self.duration_ms_max, lower)
                )
                estimate = lower + (upper - lower) * (rank - below) / n
                return float(min(estimate, self.duration_ms_max))
            below += n
        return float(self.duration_ms_max)


@dataclass(frozen=True)
class RollUp:
    """What one :func:`token_log_roll_up` did: requests counted into the summaries, full
    rows deleted (surplus successes, then rows past retention), and the watermark."""

    summarised: int
    pruned_successes: int
    pruned_expired: int
    summarised_id: int


def hour_of(at: datetime) -> datetime:
    """The start of the hour holding ``at`` (UTC)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _bucket() -> Case:
    """The histogram bucket of a row's ``duration_ms``, computed by the database."""
    return Case(
        *(When(duration_ms__lte=bound, then=Value(i)) for i, bound in enumerate(LATENCY_BOUNDS_MS)),
        default=Value(len(LATENCY_BOUNDS_MS)),
        output_field=IntegerField(),
    )


def _aggregate(
    rows: QuerySet[TokenRequest], unit: type[TruncHour | TruncMinute] = TruncHour
) -> dict[Key, Figures]:
    """Figures per key of ``rows`` (the hour, or with ``TruncMinute`` the minute, in the
    key's second place), in one GROUP BY (one result row per key and bucket)."""
    grouped = (
        rows.annotate(period=unit("created_at", tzinfo=UTC), bucket=_bucket())
        .values_list("app_id", "period", "kind", "outcome", "flavor", "bucket")
        .annotate(n=Count("pk"), total=Sum("duration_ms"), peak=Max("duration_ms"))
        .order_by()
    )
    found: dict[Key, Figures] = {}
    for app_id, hour, kind, outcome, flavor, bucket, n, total, peak in grouped:
        figures = found.setdefault((app_id, hour, kind, outcome, flavor), Figures())
        figures.count += n
        figures.duration_ms_sum += total or 0
        figures.duration_ms_max = max(figures.duration_ms_max, peak or 0)
        figures.histogram[bucket] += n
    return found


def _state(*, lock: bool = False) -> TokenLogState:
    state, _ = TokenLogState.objects.get_or_create(pk=1)
    return TokenLogState.objects.select_for_update().get(pk=1) if lock else state


def summarised_through() -> int:
    """The highest token-request id the summaries hold (0: none yet)."""
    return TokenLogState.objects.filter(pk=1).values_list("summarised_id", flat=True).first() or 0


def unsummarised(*, since: datetime, through: int | None = None) -> QuerySet[TokenRequest]:
    """Token requests created since ``since`` that the summaries do not hold yet: the
    rows of the last minute or two (a range of the primary key)."""
    through = summarised_through() if through is None else through
    return TokenRequest.objects.filter(pk__gt=through, created_at__gte=since)


@dataclass(frozen=True)
class Unsummarised:
    """The token requests the summaries do not hold yet (the last minute or two), created
    since ``since``: figures per App, minute, kind, outcome and flavor. Read once per
    page and shared by the readers below."""

    since: datetime
    by_minute: dict[Key, Figures]


def unsummarised_figures(*, since: datetime) -> Unsummarised:
    """One GROUP BY over the rows above the roll-up's watermark (a primary-key range)."""
    rows = unsummarised(since=since, through=summarised_through())
    return Unsummarised(since, _aggregate(rows, TruncMinute))


def _tail(tail: Unsummarised | None, since: datetime) -> Unsummarised:
    if tail is None or tail.since > since:
        return unsummarised_figures(since=since)
    return tail


def token_request_figures(
    *, since: datetime, tail: Unsummarised | None = None
) -> dict[Key, Figures]:
    """Every token request from the hour holding ``since`` (UTC) until now, per App, hour,
    kind, outcome and flavor: the summaries plus the rows not yet summarised (``tail``,
    read here when not given). Reads a number of rows bounded by Apps x hours, whatever
    the traffic."""
    start = hour_of(since)
    found: dict[Key, Figures] = {}
    for (app_id, minute, kind, outcome, flavor), figures in _tail(tail, start).by_minute.items():
        if minute >= start:
            key = (app_id, hour_of(minute), kind, outcome, flavor)
            found.setdefault(key, Figures()).add(figures)
    stored = TokenRequestSummary.objects.filter(hour__gte=start).values_list(
        "app_id", "hour", "kind", "outcome", "flavor", *FIGURES
    )
    for app_id, hour, kind, outcome, flavor, count, total, peak, histogram in stored:
        figures = _figures(count, total, peak, histogram)
        found.setdefault((app_id, hour, kind, outcome, flavor), Figures()).add(figures)
    return found


def token_request_counts(
    *, since: datetime, tail: Unsummarised | None = None
) -> dict[tuple[int, str, str, int], int]:
    """Token requests per (app_id, kind, outcome, flavor) from the hour holding ``since``:
    one GROUP BY over the summaries, plus the rows not yet summarised (``tail``)."""
    start = hour_of(since)
    keys = ("app_id", "kind", "outcome", "flavor")
    counts: dict[tuple[int, str, str, int], int] = {}
    summed = (
        TokenRequestSummary.objects.filter(hour__gte=start)
        .values_list(*keys)
        .annotate(n=Sum("count"))
        .order_by()
    )
    for app_id, kind, outcome, flavor, n in summed:
        counts[app_id, kind, outcome, flavor] = n
    for (app_id, minute, kind, outcome, flavor), figures in _tail(tail, start).by_minute.items():
        if minute >= start:
            key = (app_id, kind, outcome, flavor)
            counts[key] = counts.get(key, 0) + figures.count
    return counts


def renewals_per_minute(
    *, since: datetime, until: datetime, tail: Unsummarised | None = None
) -> dict[datetime, tuple[int, int]]:
    """(renewal requests, failed ones) per minute in [since, until], non-zero minutes
    only: ``RenewalMinute`` plus the rows not yet summarised (``tail``)."""
    per_minute: dict[datetime, list[int]] = {}
    stored = RenewalMinute.objects.filter(minute__gte=since, minute__lte=until)
    for minute, renewals, failures in stored.values_list("minute", "renewals", "failures"):
        per_minute[minute] = [renewals, failures]
    for (_app, minute, kind, outcome, _flavor), figures in _tail(tail, since).by_minute.items():
        if since <= minute <= until and kind in RENEWAL_KINDS:
            sums = per_minute.setdefault(minute, [0, 0])
            sums[0] += figures.count
            sums[1] += figures.count if Outcome(outcome).is_failure else 0
    return {m: (r, f) for m, (r, f) in sorted(per_minute.items()) if r or f}


def _figures(count: int, total: int, peak: int, histogram: list[int]) -> Figures:
    # A histogram stored before a bound was added is shorter: its missing buckets are 0.
    padded = [*histogram, *[0] * (len(LATENCY_BOUNDS_MS) + 1 - len(histogram))]
    return Figures(count, total, peak, padded)


def _figures_of(summary: TokenRequestSummary) -> Figures:
    return _figures(*(getattr(summary, name) for name in FIGURES))


# --- The roll-up ------------------------------------------------------------------------


def token_log_roll_up(*, now: datetime | None = None) -> RollUp:
    """Count settled token requests into the summaries, then delete the full rows no
    longer needed, in batches. Safe to run concurrently (the state row is locked while
    the summaries move) and after a crash (every step resumes from the state row)."""
    now = now or timezone.now()
    budget = [settings.TOKEN_LOG_MAX_BATCHES]
    summarised = _summarise(now=now, budget=budget)
    pruned = _prune_surplus_successes(budget=budget)
    expired = _prune_expired(now=now, budget=budget)
    TokenRequestSummary.objects.filter(
        hour__lt=now - timedelta(days=settings.TOKEN_LOG_SUMMARY_RETENTION_DAYS)
    ).delete()
    RenewalMinute.objects.filter(minute__lt=now - RENEWAL_MINUTES_KEPT).delete()
    return RollUp(summarised, pruned, expired, summarised_through())


def _summarise(*, now: datetime, budget: list[int]) -> int:
    settle = timedelta(seconds=settings.TOKEN_LOG_SETTLE_SECONDS)
    state = _state()
    counted = 0
    if state.horizon_at is not None and now - state.horizon_at >= settle:
        low = state.summarised_id
        while low < state.horizon_id and budget[0] > 0:
            budget[0] -= 1
            high = _batch_end(low=low, through=state.horizon_id)
            counted += _summarise_range(low=low, high=high, now=now)
            low = high
    state = _state()
    if state.summarised_id >= state.horizon_id:  # the horizon is counted: take the next
        newest = TokenRequest.objects.order_by("-pk").values_list("pk", flat=True).first()
        TokenLogState.objects.filter(pk=1).update(horizon_id=newest or 0, horizon_at=now)
    return counted


def _batch_end(*, low: int, through: int) -> int:
    """The end of the batch after id ``low``: ``TOKEN_LOG_BATCH`` ids from the next id
    that exists, at most ``through``. A gap in the ids (rows gone by retention, a log
    older than the roll-up) costs one index probe, not a step per batch of ids."""
    first = (
        TokenRequest.objects.filter(pk__gt=low, pk__lte=through)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    return through if first is None else min(first - 1 + settings.TOKEN_LOG_BATCH, through)


def _summarise_range(*, low: int, high: int, now: datetime) -> int:
    """Count the rows with ``low < id <= high`` into the summaries, in one transaction
    with the watermark (skipped when another run counted them first)."""
    with transaction.atomic():
        state = _state(lock=True)
        if state.summarised_id != low:
            return 0
        rows = TokenRequest.objects.filter(pk__gt=low, pk__lte=high)
        found = _aggregate(rows)
        _merge_summaries(found)
        _merge_minutes(rows, now=now)
        state.summarised_id = high
        state.rolled_up_at = now
        state.save(update_fields=["summarised_id", "rolled_up_at"])
    return sum(f.count for f in found.values())


def _merge_summaries(found: dict[Key, Figures]) -> None:
    if not found:
        return
    existing = {
        (s.app_id, s.hour, s.kind, s.outcome, s.flavor): s
        for s in TokenRequestSummary.objects.filter(
            hour__in={key[1] for key in found}, app_id__in={key[0] for key in found}
        )
    }
    changed, added = [], []
    for key, figures in found.items():
        summary = existing.get(key)
        if summary is None:
            app_id, hour, kind, outcome, flavor = key
            summary = TokenRequestSummary(
                app_id=app_id, hour=hour, kind=kind, outcome=outcome, flavor=flavor
            )
            added.append(summary)
        else:
            changed.append(summary)
        merged = _figures_of(summary)
        merged.add(figures)
        summary.count = merged.count
        summary.duration_ms_sum = merged.duration_ms_sum
        summary.duration_ms_max = merged.duration_ms_max
        summary.latency_histogram = merged.histogram
    TokenRequestSummary.objects.bulk_update(changed, FIGURES)
    TokenRequestSummary.objects.bulk_create(added)


def _merge_minutes(rows: QuerySet[TokenRequest], *, now: datetime) -> None:
    counted = (
        rows.filter(kind__in=RENEWAL_KINDS, created_at__gte=now - RENEWAL_MINUTES_KEPT)
        .annotate(minute=TruncMinute("created_at", tzinfo=UTC))
        .values_list("minute")
        .annotate(n=Count("pk"), failed=Count("pk", filter=Q(outcome__in=Outcome.failures())))
        .order_by()
    )
    found = {minute: (n, failed) for minute, n, failed in counted}
    if not found:
        return
    existing = {m.minute: m for m in RenewalMinute.objects.filter(minute__in=list(found))}
    for minute, (n, failed) in found.items():
        row = existing.setdefault(minute, RenewalMinute(minute=minute))
        row.renewals += n
        row.failures += failed
    stored = [m for m in existing.values() if m.pk]
    RenewalMinute.objects.bulk_update(stored, ["renewals", "failures"])
    RenewalMinute.objects.bulk_create([m for m in existing.values() if not m.pk])


# --- Pruning ----------------------------------------------------------------------------


def _delete(ids: Iterable[int]) -> int:
    """One DELETE by primary key, committed on its own (autocommit)."""
    deleted, _ = TokenRequest.objects.filter(pk__in=list(ids)).delete()
    return deleted


def surplus_successes(
    *, low: int, high: int, through: int, per_app: bool = False
) -> QuerySet[TokenRequest]:
    """Successful requests (id <= ``through``) no longer needed in full, among the
    ConfigVariables (``per_app``: the Apps, for requests for no ConfigVariable) that had a
    success with ``low < id <= high``: all but each one's newest
    ``TOKEN_LOG_KEEP_SUCCESSES``, leaving any success whose chain also holds other
    requests (failed flavors before it). Two queries rather than one with an OR, which
    PostgreSQL could only answer by reading the whole log."""
    touched = TokenRequest.objects.filter(pk__gt=low, pk__lte=high, outcome=Outcome.SUCCEEDED)
    if per_app:
        among = Q(
            config_variable=None, app_id__in=touched.filter(config_variable=None).values("app_id")
        )
    else:
        among = Q(
            config_variable_id__in=touched.exclude(config_variable=None).values(
                "config_variable_id"
            )
        )
    lone = ~Exists(
        TokenRequest.objects.filter(chain_id=OuterRef("chain_id")).exclude(pk=OuterRef("pk"))
    )
    return (
        TokenRequest.objects.filter(among, pk__lte=through, outcome=Outcome.SUCCEEDED)
        .filter(lone)
        .annotate(
            newest=Window(
                RowNumber(),
                partition_by=[F("app_id"), F("config_variable_id")],
                order_by=[F("created_at").desc(), F("pk").desc()],
            )
        )
        .filter(newest__gt=settings.TOKEN_LOG_KEEP_SUCCESSES)
    )


def _prune_surplus_successes(*, budget: list[int]) -> int:
    state = _state()
    low, through = state.pruned_id, state.summarised_id
    deleted = 0
    while low < through and budget[0] > 0:
        budget[0] -= 1
        high = _batch_end(low=low, through=through)
        ids = [
            pk
            for per_app in (False, True)
            for pk in surplus_successes(
                low=low, high=high, through=through, per_app=per_app
            ).values_list("pk", flat=True)
        ]
        for start in range(0, len(ids), settings.TOKEN_LOG_BATCH):
            deleted += _delete(ids[start : start + settings.TOKEN_LOG_BATCH])
        TokenLogState.objects.filter(pk=1, pruned_id=low).update(pruned_id=high)
        low = high
    return deleted


def _prune_expired(*, now: datetime, budget: list[int]) -> int:
    """Rows older than ``TOKEN_REQUEST_RETENTION_DAYS`` (already summarised), oldest
    first, a batch at a time."""
    cutoff = now - timedelta(days=settings.TOKEN_REQUEST_RETENTION_DAYS)
    through = summarised_through()
    deleted = 0
    while budget[0] > 0:
        budget[0] -= 1
        ids = list(
            TokenRequest.objects.filter(created_at__lt=cutoff, pk__lte=through)
            .order_by("created_at")
            .values_list("pk", flat=True)[: settings.TOKEN_LOG_BATCH]
        )
        if not ids:
            break
        deleted += _delete(ids)
    return deleted
