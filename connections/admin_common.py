"""Pieces the admin pages share: the token-request table and a diagnosis block."""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from connections.models import App
from oauthflow.diagnosis import explain
from oauthflow.models import TokenRequest

RECENT_TOKEN_REQUESTS = 20


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
                r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
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
