"""Admin for Apps, Connections, Customers and ConfigVariables.

Secrets are write-only; tokens appear as fingerprints. The App page shows the callback
URL to register at the app and warns about whitespace and a missing offline_access.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from connections.fingerprints import fingerprint
from connections.forms import AppForm
from connections.models import (
    App,
    ConfigVariable,
    Connection,
    Customer,
    CustomerUser,
    StatusTransition,
)
from connections.services import config_variable_disconnect
from oauthflow.authorize import callback_url
from oauthflow.models import TokenRequest
from oauthflow.tasks import renew_config_variable


def _offline_warning(app: App, scopes: str) -> str | None:
    if app.scopes_lack_offline_access(scopes):
        return (
            "The scopes lack offline_access: many apps then issue no refresh token, and "
            "connections die when the first access token expires."
        )
    return None


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    form = AppForm
    list_display = ("name", "grant_type", "token_url", "preferred_flavor", "pinned_flavor")
    list_filter = ("grant_type",)
    search_fields = ("name", "slug", "client_id", "token_url")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("callback_url_to_register", "configuration_warnings", "preferred_flavor")
    fieldsets = (
        (None, {"fields": ("name", "slug", "grant_type", "callback_url_to_register")}),
        ("Endpoints", {"fields": ("authorize_url", "token_url")}),
        ("Credentials", {"fields": ("client_id", "client_secret", "configuration_warnings")}),
        (
            "Scopes and offline access",
            {
                "fields": (
                    "default_scopes",
                    "scope_separator",
                    "offline_strategy",
                    "prompt_consent",
                    "use_pkce",
                )
            },
        ),
        (
            "Token requests",
            {
                "fields": (
                    "preferred_flavor",
                    "pinned_flavor",
                    "extra_authorize_params",
                    "extra_token_params",
                    "extra_token_headers",
                )
            },
        ),
    )

    @admin.display(description="Callback URL to register at the app")
    def callback_url_to_register(self, obj: App | None) -> str:
        return format_html("<code>{}</code>", callback_url())

    @admin.display(description="Warnings")
    def configuration_warnings(self, obj: App | None) -> str:
        if obj is None or obj.pk is None:
            return "—"
        warnings = list(obj.credential_whitespace_warnings)
        offline = _offline_warning(obj, obj.default_scopes)
        if offline:
            warnings.append(offline)
        if not warnings:
            return "None"
        return format_html_join("", "<p style='color:#7d4e00'>⚠ {}</p>", ((w,) for w in warnings))

    def save_model(self, request: HttpRequest, obj: App, form: AppForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        for warning in obj.credential_whitespace_warnings:
            self.message_user(request, warning, messages.WARNING)
        offline = _offline_warning(obj, obj.default_scopes)
        if offline:
            self.message_user(request, offline, messages.WARNING)


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ("name", "app", "grant_type", "scopes")
    list_filter = ("grant_type", "app")
    list_select_related = ("app",)
    search_fields = ("name", "slug", "app__name")
    prepopulated_fields = {"slug": ("name",)}

    def save_model(self, request: HttpRequest, obj: Connection, form: object, change: bool) -> None:
        super().save_model(request, obj, form, change)
        offline = _offline_warning(obj.app, " ".join(obj.effective_scopes))
        if offline:
            self.message_user(request, offline, messages.WARNING)


class CustomerUserInline(admin.TabularInline):
    model = CustomerUser
    extra = 1
    autocomplete_fields = ("user",)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)
    inlines = (CustomerUserInline,)


class StatusTransitionInline(admin.TabularInline):
    model = StatusTransition
    extra = 0
    can_delete = False
    fields = ("created_at", "from_status", "to_status", "reason")
    readonly_fields = fields
    ordering = ("-created_at", "-id")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class TokenRequestInline(admin.TabularInline):
    model = TokenRequest
    extra = 0
    can_delete = False
    fields = (
        "created_at",
        "kind",
        "flavor",
        "status_code",
        "outcome",
        "error",
        "duration_ms",
        "message",
    )
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ConfigVariable)
class ConfigVariableAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "customer",
        "connection",
        "status",
        "expires_at",
        "refresh_at",
        "failure_count",
    )
    list_filter = ("status", "connection__app", "customer")
    list_select_related = ("customer", "connection")
    search_fields = ("id", "customer__name", "connection__name")
    fields = (
        "customer",
        "connection",
        "status",
        "access_token_fingerprint",
        "refresh_token_fingerprint",
        "token_type",
        "expires_at",
        "refresh_at",
        "scopes_granted",
        "token_extra",
        "warnings",
        "last_error",
        "failure_count",
        "connected_at",
        "refreshed_at",
        "lease_expires_at",
    )
    readonly_fields = fields
    inlines = (StatusTransitionInline, TokenRequestInline)
    actions = ("renew_now", "disconnect")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created by customers pressing Connect

    @admin.display(description="Access token")
    def access_token_fingerprint(self, obj: ConfigVariable) -> str:
        return fingerprint(obj.access_token)

    @admin.display(description="Refresh token")
    def refresh_token_fingerprint(self, obj: ConfigVariable) -> str:
        return fingerprint(obj.refresh_token)

    @admin.action(description="Renew now")
    def renew_now(self, request: HttpRequest, queryset: QuerySet[ConfigVariable]) -> None:
        for pk in queryset.values_list("pk", flat=True):
            renew_config_variable.delay(str(pk), force=True)
        self.message_user(request, f"Renewal queued for {queryset.count()} connection(s).")

    @admin.action(description="Disconnect (forget tokens)")
    def disconnect(self, request: HttpRequest, queryset: QuerySet[ConfigVariable]) -> None:
        for config_variable in queryset:
            config_variable_disconnect(
                config_variable=config_variable,
                reason=f"Disconnected by {request.user} in the admin.",
            )
        self.message_user(request, f"Disconnected {queryset.count()} connection(s).")
