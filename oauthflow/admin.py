"""The token-request log in the admin: read-only, secrets already redacted."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from connections.admin_common import BigTableAdmin, utc_column, utc_display
from oauthflow.diagnosis import explain
from oauthflow.flavors import FLAVORS, FLAVORS_BY_NUMBER
from oauthflow.models import TokenRequest
from oauthflow.replay import curl_command


class FlavorFilter(admin.SimpleListFilter):
    """The six flavors by name, without reading the log for its distinct values."""

    title = "flavor"
    parameter_name = "flavor"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [(str(flavor.number), flavor.label) for flavor in FLAVORS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(flavor=self.value()) if self.value() else queryset


@admin.register(TokenRequest)
class TokenRequestAdmin(BigTableAdmin):
    list_display = (
        "created_at_column",
        "app",
        "kind",
        "flavor",
        "status_code",
        "outcome",
        "error",
        "duration_ms",
    )
    # Filters that read no rows to draw: a date hierarchy or a distinct-values filter
    # would scan the whole log on every page.
    list_filter = (
        "kind",
        "outcome",
        "app",
        FlavorFilter,
        ("created_at", admin.DateFieldListFilter),
    )
    list_select_related = ("app",)
    search_fields = ("app__name", "error", "url", "config_variable__id")

    created_at_utc = utc_display("created_at", "When")
    created_at_column = utc_column("created_at", "When")

    def get_readonly_fields(
        self, request: HttpRequest, obj: TokenRequest | None = None
    ) -> list[str]:
        # Read-only throughout (no change permission): Django shows Close, not Save.
        shown = {
            "created_at": "created_at_utc",
            "request_body": "request_body_wrapped",
            "flavor": "flavor_named",
        }
        return ["diagnosis_explained", "copy_as_curl"] + [
            shown.get(f.name, f.name) for f in TokenRequest._meta.fields
        ]

    def get_fields(  # type: ignore[override]  # plain names: a subset of Django's shapes
        self, request: HttpRequest, obj: TokenRequest | None = None
    ) -> list[str]:
        return self.get_readonly_fields(request, obj)

    @admin.display(description="Diagnosis")
    def diagnosis_explained(self, obj: TokenRequest) -> SafeString:
        diagnosis = explain(obj.diagnosis or "rejected", app=obj.app)
        return format_html(
            "<p><strong>{}</strong></p><p>Fix: {}</p>", diagnosis.message, diagnosis.fix
        )

    @admin.display(description="Request body")
    def request_body_wrapped(self, obj: TokenRequest) -> SafeString:
        return format_html(
            "<code style='white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-all'>"
            "{}</code>",
            obj.request_body or "—",
        )

    @admin.display(description="Flavor")
    def flavor_named(self, obj: TokenRequest) -> str:
        flavor = FLAVORS_BY_NUMBER.get(obj.flavor)
        return flavor.label if flavor else str(obj.flavor)

    @admin.display(description="Copy as curl (secrets are shell variables)")
    def copy_as_curl(self, obj: TokenRequest) -> SafeString:
        # Long tokens and URLs have no spaces to break at: wrap anywhere, and scroll
        # inside the box rather than push the page wider.
        return format_html(
            "<pre style='white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-all;"
            "max-width:100%;max-height:30em;overflow:auto;box-sizing:border-box;"
            "padding:8px;margin:0'>{}</pre>",
            curl_command(obj),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TokenRequest | None = None) -> bool:
        return False
