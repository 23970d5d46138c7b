"""Pieces the admin pages share: the token-request table, a diagnosis block, the one
date format (ISO 8601 with seconds, in UTC), read-only change pages and a paginator for
tables of millions of rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from connections.estimates import estimated_count
from connections.models import App
from oauthflow.diagnosis import explain
from oauthflow.models import TokenRequest

RECENT_TOKEN_REQUESTS = 20
# Above this many rows (the planner's estimate) a change list shows the estimate rather
# than count: a COUNT(*) reads every matching row, seconds for tens of millions.
ESTIMATE_ABOVE = 100_000
UTC_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def utc(value: datetime | None) -> str:
    """The admin's one date format: ``2026-01-31 14:05:09 UTC`` (``—`` for none)."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime(UTC_FORMAT)


def utc_display(field: str, description: str) -> Callable[[Any, Model], str]:
    """A ModelAdmin display method showing the datetime ``field`` as :func:`utc`, sortable
    by the field: ``expires_at_utc = utc_display("expires_at", "Expires at")``."""

    @admin.display(description=description, ordering=field)
    def display(self: Any, obj: Model) -> str:
        return utc(getattr(obj, field))

    display.__name__ = f"{field}_utc"
    return display


def utc_column(field: str, description: str) -> Callable[[Any, Model], SafeString | str]:
    """The same date for a changelist column: "(UTC)" in the header, the cell kept on one
    line (``2026-01-31 14:05:09``) so a row never wraps a date over four lines."""

    @admin.display(description=f"{description} (UTC)", ordering=field)
    def display(self: Any, obj: Model) -> SafeString | str:
        value = getattr(obj, field)
        if value is None:
            return "—"
        return format_html(
            "<span style='white-space:nowrap'>{}</span>",
            value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        )

    display.__name__ = f"{field}_column"
    return display


class ShownOnceAdmin(admin.ModelAdmin):
    """An admin whose add form creates a secret (an API key, a signing secret) shown once:
    ``save_model`` hands it to ``keep_shown_once``, and the page after the add shows it in
    its body only — not in a message (cookie storage would put it in a cookie), not in the
    session — and never cached. The secret lives on the unsaved attribute only."""

    shown_once_template = ""
    shown_once_title = ""
    shown_once_names = ("object", "secret")  # the template's names for the row and secret

    @staticmethod
    def keep_shown_once(obj: Model, secret: str) -> None:
        obj._shown_once = secret  # type: ignore[attr-defined]  # for response_add; never stored

    def response_add(
        self, request: HttpRequest, obj: Model, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(obj, "_shown_once", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        row_name, secret_name = self.shown_once_names
        context = {
            **self.admin_site.each_context(request),
            "title": self.shown_once_title,
            "opts": self.opts,
            row_name: obj,
            secret_name: secret,
        }
        response = TemplateResponse(request, self.shown_once_template, context)
        response["Cache-Control"] = "no-store"
        return response


class ReadOnlyChangeFormMixin(admin.ModelAdmin):
    """For change pages where every field is read-only: no Save buttons, no form to post.

    Change permission still governs the list's actions (renew, disconnect); only the
    change form itself offers nothing to save.
    """

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Model | None = None,
    ) -> Any:
        context.update(
            show_save=False,
            show_save_and_continue=False,
            show_save_and_add_another=False,
            show_save_as_new=False,
        )
        return super().render_change_form(request, context, add, change, form_url, obj)


class EstimatedCountPaginator(Paginator):
    """A change list's paginator for tables that reach millions of rows: no page counts
    more than ``ESTIMATE_ABOVE + 1`` rows. On PostgreSQL, when the planner expects more
    than ``ESTIMATE_ABOVE`` rows (:func:`estimated_count`), the count shown is that
    estimate; otherwise the rows are counted up to ``ESTIMATE_ABOVE + 1`` (exact below
    it; past it, elsewhere than PostgreSQL, the later pages are reached by filtering).
    Use with ``show_full_result_count = False``."""

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if not isinstance(rows, QuerySet):  # a list: its length is known
            return len(rows)
        estimate = estimated_count(rows)
        if estimate is not None and estimate > ESTIMATE_ABOVE:
            return estimate
        return rows[: ESTIMATE_ABOVE + 1].count()


class BigTableAdmin(admin.ModelAdmin):
    """A ModelAdmin whose change list never counts a big table (see
    :class:`EstimatedCountPaginator`); its filtered pages say "N results" without "of M
    total"."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False


def token_request_table(queryset: QuerySet[TokenRequest]) -> SafeString | str:
    """The newest token requests as an HTML table linking to each record (curl, reply)."""
    rows = list(queryset.order_by("-created_at", "-id")[:RECENT_TOKEN_REQUESTS])
    if not rows:
        return "None yet."
    body = format_html_join(
        "",
        "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>#{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td><td>{} ms</td></tr>",
        (
            (
                reverse("admin:oauthflow_tokenrequest_change", args=[r.pk]),
                r.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                r.get_kind_display(),
                r.flavor,
                r.status_code or r.error or "—",
                r.get_outcome_display(),
                explain(r.diagnosis).message if r.diagnosis not in ("", "ok") else "",
                r.duration_ms,
            )
            for r in rows
        ),
    )
    return format_html(
        "<table><thead><tr><th>When (UTC)</th><th>Kind</th><th>Flavor</th><th>Status</th>"
        "<th>Outcome</th><th>Diagnosis</th><th>Time</th></tr></thead><tbody>{}</tbody></table>",
        body,
    )


def diagnosis_html(key: str, app: App | None, detail: str = "") -> SafeString | str:
    if not key:
        return "—"
    diagnosis = explain(key, app=app, detail=detail)
    return format_html("<p><strong>{}</strong></p><p>Fix: {}</p>", diagnosis.message, diagnosis.fix)
