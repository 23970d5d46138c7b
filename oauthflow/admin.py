"""The token-request log in the admin: read-only, secrets already redacted."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from oauthflow.models import TokenRequest


@admin.register(TokenRequest)
class TokenRequestAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "app",
        "kind",
        "flavor",
        "status_code",
        "outcome",
        "error",
        "duration_ms",
    )
    list_filter = ("kind", "outcome", "app", "flavor")
    list_select_related = ("app",)
    search_fields = ("app__name", "error", "url", "config_variable__id")
    date_hierarchy = "created_at"

    def get_readonly_fields(
        self, request: HttpRequest, obj: TokenRequest | None = None
    ) -> list[str]:
        return [field.name for field in TokenRequest._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TokenRequest | None = None) -> bool:
        return False
