"""The health dashboard's charts, drawn on the server as inline SVG with pygal.

Why pygal: it is pure Python (no numpy, no font files), kept up, and writes SVG whose
labels are real text (readable, selectable, searchable) styled by CSS; matplotlib would
add tens of megabytes, draws text as paths by default and keeps global state. The page
must load nothing from elsewhere and run no script without the CSP nonce, so:

- ``js=[]``: pygal's tooltip script (served from a CDN by default) is not referenced;
- every chart goes through ``_inline_only``, a pygal XML filter that removes the small
  inline ``<script>`` pygal writes into every SVG (its tooltip config; the CSP would block
  it and log a violation), its tooltip layer and comments, and names the picture for
  screen readers (``role="img"`` and ``aria-label``);
- the style names no web font, and its colours are the admin's CSS variables, so the
  charts follow the admin's light and dark themes;
- sparklines keep only pygal's base CSS and two rules of their own (``SPARKLINE_CSS``),
  so a table row costs about 1.5 kB.

The numbers are always beside the pictures (tables and figures in the template): the
charts are for the eye, the tables for reading exact values and for screen readers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from xml.etree import ElementTree

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

from connections.dashboard import (
    CHART_APPS,
    CHART_WINDOW,
    Activity,
    AppLatency,
    AppTrend,
    Dashboard,
)
from connections.metrics_history import SNAPSHOT_EVERY, snapshot_slot
from connections.models import Status

SVG_NS = "{http://www.w3.org/2000/svg}"
CHART_WIDTH = 640  # about the width the charts get on a laptop: labels stay legible
RENEWALS_COLOUR = "#417690"  # the admin's primary blue
FAILURES_COLOUR = "#ba2121"  # the admin's error red
P50_COLOUR = "#79aec8"
P95_COLOUR = "#264b5d"
STATUS_COLOURS = {
    Status.PENDING: "#9e9e9e",
    Status.AUTHORIZING: "#b39ddb",
    Status.EXCHANGING: "#7e57c2",
    Status.CONNECTED: "#2e7d32",
    Status.FAILING: "#f9a825",
    Status.REAUTHORIZATION_REQUIRED: "#ef6c00",
    Status.ERROR: "#ba2121",
    Status.DISCONNECTED: "#546e7a",
}
DASHBOARD_POLL_SECONDS = 15  # the open dashboard fetches its live fragment this often
# Sparklines skip pygal's own style sheets (about 8 kB a chart): these few rules draw them.
SPARKLINE_CSS = (
    "inline:.pygal-sparkline .background{fill:none}"
    f".pygal-sparkline .line{{fill:none;stroke:{RENEWALS_COLOUR};stroke-width:1.5}}"
)
STATUS_TABLE_AGO = (timedelta(hours=24), timedelta(hours=6), timedelta(hours=1))


def _style(colours: Sequence[str]) -> Style:
    """Transparent, system fonts, the admin's text colours (CSS variables)."""
    font = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
    return Style(
        background="transparent",
        plot_background="transparent",
        foreground="var(--body-fg, #333)",
        foreground_strong="var(--body-fg, #333)",
        foreground_subtle="var(--body-quiet-color, #666)",
        guide_stroke_color="var(--hairline-color, #ccc)",
        major_guide_stroke_color="var(--border-color, #999)",
        font_family=font,
        label_font_size=12,
        major_label_font_size=12,
        legend_font_size=13,
        value_font_size=12,
        title_font_size=14,
        colors=tuple(colours),
        opacity=".35",
        opacity_hover=".5",
        stroke_width="2",
        stroke_width_hover="2",
        transition="0s",
    )


def _inline_only(label: str) -> Callable[[ElementTree.Element], ElementTree.Element]:
    """A pygal XML filter: no script, no tooltip layer or tooltip texts (``desc``), no
    comments; a name for assistive technology."""

    def strip(root: ElementTree.Element) -> ElementTree.Element:
        for parent in list(root.iter()):
            for child in list(parent):
                tag = child.tag if isinstance(child.tag, str) else ""
                classes = (child.get("class") or "").split()
                if (
                    tag in ("script", f"{SVG_NS}script", "desc", f"{SVG_NS}desc")
                    or child.tag is ElementTree.Comment
                    or "tooltip-overlay" in classes
                ):
                    parent.remove(child)
                elif tag in ("title", f"{SVG_NS}title") and parent is root:
                    child.text = label
        root.set("role", "img")
        root.set("aria-label", label)
        root.set("focusable", "false")
        return root

    return strip


def _svg(chart: pygal.graph.graph.Graph, label: str, **render: object) -> SafeString:
    """The chart as an inline ``<svg>`` element. Safe: pygal builds it with an XML
    serializer, so App names and other text in it are escaped."""
    chart.add_xml_filter(_inline_only(label))
    if render:
        out = chart.render_sparkline(is_unicode=True, **render)
    else:
        out = chart.render(is_unicode=True)
    return mark_safe(out)  # noqa: S308 (serialized by ElementTree, text escaped)


def _options(**extra: object) -> dict[str, object]:
    return {
        "js": [],
        "disable_xml_declaration": True,
        "explicit_size": False,
        "pretty_print": False,
        "show_dots": False,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 4,
        "truncate_legend": -1,
        "truncate_label": -1,
        "no_data_text": "No data yet",
        **extra,
    }


def activity_chart(activity: Activity) -> SafeString:
    """Renewals and failed renewals per minute (averaged over each bucket), 24 h."""
    labels = [bucket.start.strftime("%H:%M") for bucket in activity.buckets]
    chart = pygal.Line(
        style=_style((RENEWALS_COLOUR, FAILURES_COLOUR)),
        **_options(
            width=CHART_WIDTH,
            height=240,
            fill=True,
            x_labels=labels,
            x_labels_major=_major(labels),
            show_minor_x_labels=False,
            y_title="per minute",
            min_scale=2,
            max_scale=6,
            value_formatter=lambda v: f"{v:g}",
        ),
    )
    chart.add("Renewals", [b.renewals_per_minute for b in activity.buckets])
    chart.add("Failures", [b.failures_per_minute for b in activity.buckets])
    peak_at, peak = activity.peak()
    label = (
        f"Renewals and failures per minute over the last 24 hours: {activity.renewals} "
        f"renewal requests, {activity.failures} failed"
        + (f"; busiest minute {peak_at:%H:%M} UTC with {peak}" if peak_at else "")
        + ". The numbers are in the table below the chart."
    )
    return _svg(chart, label)


def latency_chart(latency: Sequence[AppLatency]) -> SafeString:
    """p50 and p95 token-request latency per App, milliseconds."""
    chart = pygal.HorizontalBar(
        style=_style((P50_COLOUR, P95_COLOUR)),
        **_options(
            width=CHART_WIDTH,
            height=max(150, 80 + 40 * len(latency)),
            x_labels=[row.name for row in latency],
            value_formatter=lambda v: f"{v:,.0f} ms",
            min_scale=2,
            max_scale=5,  # few axis labels: they carry units and must not overlap
            print_values=True,
            print_values_position="top",
        ),
    )
    chart.add("p50", [round(row.p50) for row in latency])
    chart.add("p95", [round(row.p95) for row in latency])
    label = "Token-request latency per App, median and 95th percentile: " + (
        "; ".join(f"{r.name} p50 {r.p50:.0f} ms, p95 {r.p95:.0f} ms" for r in latency)
        or "no token requests in the last 24 hours"
    )
    return _svg(chart, label)


def _major(labels: Sequence[str]) -> list[str]:
    """Every other whole hour: the x labels worth printing."""
    return [label for label in labels if label.endswith(":00") and int(label[:2]) % 2 == 0]


def status_chart(
    history: Sequence[tuple[datetime, dict[str, int]]], *, now: datetime
) -> SafeString:
    """ConfigVariables by status over the last 24 hours, one line per status, on the
    snapshots' 5-minute slots: a slot with no snapshot (the sweep was down, or the history
    is younger than 24 hours) stays empty rather than drawn as zero (so not stacked:
    pygal's stacking would count a missing slot as zero). The last slot is now."""
    count = int(CHART_WINDOW / SNAPSHOT_EVERY)
    last = snapshot_slot(now)
    grid = [last - SNAPSHOT_EVERY * (count - 1 - i) for i in range(count)]
    by_slot = {snapshot_slot(at): counts for at, counts in history}
    values: list[dict[str, int] | None] = [by_slot.get(slot) for slot in grid]
    values[-1] = history[-1][1] if history else None
    shown = [s for s in Status.values if any(v and v.get(s) for v in values)]
    real = sum(1 for v in values if v is not None)
    labels = [slot.strftime("%H:%M") for slot in grid]
    chart = pygal.Line(
        style=_style([STATUS_COLOURS[Status(s)] for s in shown]),
        **_options(
            width=CHART_WIDTH,
            height=280,
            allow_interruptions=True,
            show_dots=real <= 3,
            legend_at_bottom_columns=3,
            dots_size=4,
            x_labels=labels,
            x_labels_major=_major(labels),
            show_minor_x_labels=False,
            y_title="config variables",
            min_scale=2,
            max_scale=6,
            value_formatter=lambda v: f"{v:g}",
        ),
    )
    for status in shown:
        chart.add(Status(status).label, [v.get(status, 0) if v else None for v in values])
    now_counts = values[-1] or {}
    label = "Config variables by status over the last 24 hours; now: " + (
        ", ".join(f"{Status(s).label} {now_counts.get(s, 0)}" for s in shown) or "none"
    )
    return _svg(chart, label)


def sparkline(trend: AppTrend, *, app: str) -> SafeString:
    """One App's token requests per hour over 24 hours, small enough for a table cell."""
    chart = pygal.Line(**_options(css=[SPARKLINE_CSS], style=_style((RENEWALS_COLOUR,))))
    chart.add("requests", trend.hourly)
    label = (
        f"{app}: token requests per hour over the last 24 hours, {trend.total} in all, "
        f"{trend.failures} failed"
    )
    return _svg(chart, label, width=120, height=28, margin=2)


@dataclass(frozen=True)
class StatusRow:
    label: str
    counts: list[int | None]  # at each of ``Charts.status_times``, then now


@dataclass(frozen=True)
class AppRow:
    """A row of the by-App table: its counts, and its sparkline when it had requests."""

    name: str
    total: int
    connected: int
    broken: int
    trend: AppTrend | None
    sparkline: SafeString | None


@dataclass
class Charts:
    """The rendered charts and the numbers shown beside them."""

    activity_svg: SafeString
    latency_svg: SafeString
    status_svg: SafeString
    by_app: list[AppRow] = field(default_factory=list)
    status_times: list[str] = field(default_factory=list)
    status_rows: list[StatusRow] = field(default_factory=list)
    last_hour: tuple[int, int] = (0, 0)  # (renewals, failures) in the last 60 minutes
    peak: tuple[datetime | None, int] = (None, 0)  # the busiest minute and its renewals


def _at(
    history: Sequence[tuple[datetime, dict[str, int]]], when: datetime
) -> dict[str, int] | None:
    """The snapshot of the slot holding ``when`` (None: no snapshot then)."""
    slot = snapshot_slot(when)
    return next((counts for at, counts in history if at == slot), None)


def dashboard_charts(data: Dashboard) -> Charts:
    """Every chart of the dashboard, from the figures ``dashboard_data`` read."""
    assert data.activity is not None  # noqa: S101 (dashboard_data always fills it)
    history = data.status_history
    columns = [_at(history, data.now - ago) for ago in STATUS_TABLE_AGO]
    columns.append(history[-1][1] if history else data.by_status)
    rows = [
        StatusRow(label, [None if c is None else c.get(status, 0) for c in columns])
        for status, label in Status.choices
        if any(c and c.get(status) for c in columns)
    ]
    by_app: list[AppRow] = []
    for row in data.by_app:
        name = row.name
        trend = data.trends.get(row.app_id)
        by_app.append(
            AppRow(
                name=name,
                total=row.total,
                connected=row.connected,
                broken=row.broken,
                trend=trend,
                sparkline=sparkline(trend, app=name)
                if trend and len(by_app) < CHART_APPS
                else None,
            )
        )
    return Charts(
        activity_svg=activity_chart(data.activity),
        latency_svg=latency_chart(data.latency),
        status_svg=status_chart(history, now=data.now),
        by_app=by_app,
        status_times=[f"{int(ago.total_seconds() // 3600)} h ago" for ago in STATUS_TABLE_AGO]
        + ["now"],
        status_rows=rows,
        last_hour=data.activity.last(60, now=data.now),
        peak=data.activity.peak(),
    )
