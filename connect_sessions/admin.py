"""Admin: connect sessions, read-only (never a token: only its hash is stored, and that
is not shown either), and the allow-list of return URLs."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from connect_sessions.models import ConnectSession, ReturnUrlAllowed
from connections.admin_common import ReadOnlyChangeFormMixin, utc_column, utc_display


@admin.register(ReturnUrlAllowed)
class ReturnUrlAllowedAdmin(admin.ModelAdmin):
    """Where connect sessions may send the end user back: same scheme, host and port
    as an entry, and a path under the entry's path."""

    list_display = ("url", "note", "created_at_column")
    search_fields = ("url", "note")
    fields = ("url", "note")
    created_at_column = utc_column("created_at", "Added")


@admin.register(ConnectSession)
class ConnectSessionAdmin(ReadOnlyChangeFormMixin, admin.ModelAdmin):
    list_display = (
        "customer",
        "end_user_id",
        "mode",
        "outcome",
        "created_at_column",
        "opened_at_column",
        "finished_at_column",
    )
    list_filter = ("mode", "outcome")
    search_fields = ("customer__name", "customer__external_id", "end_user_id", "end_user_email")
    list_select_related = ("customer",)
    fields = (
        "customer",
        "end_user_id",
        "end_user_email",
        "end_user_display_name",
        "allowed_connections",
        "reconnect_config_variable",
        "return_url",
        "mode",
        "created_at_utc",
        "expires_at_utc",
        "opened_at_utc",
        "finished_at_utc",
        "outcome",
        "config_variable",
    )
    readonly_fields = fields

    created_at_column = utc_column("created_at", "Created")
    opened_at_column = utc_column("opened_at", "Opened")
    finished_at_column = utc_column("finished_at", "Finished")
    created_at_utc = utc_display("created_at", "Created at")
    expires_at_utc = utc_display("expires_at", "Expires at")
    opened_at_utc = utc_display("opened_at", "Opened at")
    finished_at_utc = utc_display("finished_at", "Finished at")

    @admin.display(description="Allowed Connections")
    def allowed_connections(self, obj: ConnectSession) -> str:
        return ", ".join(c.name for c in obj.connections.all())

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConnectSession]:
        return super().get_queryset(request).prefetch_related("connections")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sessions are created through the API, which shows the token once
