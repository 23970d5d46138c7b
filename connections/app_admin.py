"""Admin for Apps: credentials write-only, the callback URL to register, warnings,
presets, discovery from an issuer URL and the App check."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from connections.admin_common import token_request_table
from connections.forms import AppForm
from connections.models import (
    App,
)
from oauthflow.authorize import authorize_url_build, callback_url
from oauthflow.records import app_test_client_credentials, last_failed_chain
from oauthflow.replay import postman_collection


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    form = AppForm
    list_display = ("name", "grant_type", "token_url", "preferred_flavor", "pinned_flavor")
    list_filter = ("grant_type",)
    search_fields = ("name", "slug", "client_id", "token_url")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = (
        "callback_url_to_register",
        "configuration_warnings",
        "preferred_flavor",
        "authorize_url_preview",
        "recent_token_requests",
    )
    actions = ("test_client_credentials",)
    fieldsets = (
        (None, {"fields": ("name", "slug", "grant_type", "callback_url_to_register")}),
        ("Endpoints", {"fields": ("authorize_url", "token_url", "revocation_url")}),
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
                    "authorize_url_preview",
                    "preferred_flavor",
                    "pinned_flavor",
                    "extra_authorize_params",
                    "extra_token_params",
                    "extra_token_headers",
                    "token_path",
                    "client_id_param",
                    "client_secret_param",
                )
            },
        ),
        ("Troubleshooting", {"fields": ("recent_token_requests",)}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: App | None = None) -> tuple:
        # View-only staff (operators) would see every field rendered read-only, the
        # secret included: show whether one is set instead.
        if self.has_change_permission(request, obj):
            return self.fieldsets
        return tuple(
            (
                name,
                {
                    **options,
                    "fields": tuple(
                        "client_secret_status" if f == "client_secret" else f
                        for f in options["fields"]
                    ),
                },
            )
            for name, options in self.fieldsets
        )

    def get_readonly_fields(self, request: HttpRequest, obj: App | None = None) -> tuple:
        return (*self.readonly_fields, "client_secret_status")

    @admin.display(description="Client secret")
    def client_secret_status(self, obj: App | None) -> str:
        return "set (write-only)" if obj is not None and obj.client_secret else "not set"

    @admin.display(description="Callback URL to register at the app")
    def callback_url_to_register(self, obj: App | None) -> str:
        return format_html("<code>{}</code>", callback_url())

    @admin.display(description="Warnings")
    def configuration_warnings(self, obj: App | None) -> str:
        if obj is None or obj.pk is None:
            return "—"
        warnings = list(obj.credential_whitespace_warnings)
        offline = obj.offline_access_warning(obj.default_scopes)
        if offline:
            warnings.append(offline)
        if not warnings:
            return "None"
        return format_html_join("", "<p style='color:#7d4e00'>⚠ {}</p>", ((w,) for w in warnings))

    @admin.display(description="Authorize URL preview")
    def authorize_url_preview(self, obj: App | None) -> str:
        if obj is None or obj.pk is None or not obj.authorize_url:
            return "—"
        url = authorize_url_build(
            app=obj, scopes=obj.default_scopes.split(), state="STATE", code_verifier=None
        )
        return format_html(
            "<code style='word-break:break-all'>{}</code><br><small>Customers are sent here "
            "(with a signed state{}).</small>",
            url,
            " and a PKCE challenge" if obj.use_pkce else "",
        )

    @admin.display(description="Recent token requests")
    def recent_token_requests(self, obj: App | None) -> SafeString | str:
        if obj is None or obj.pk is None:
            return "—"
        export = reverse("admin:connections_app_postman", args=[obj.pk])
        return format_html(
            "{}<p><a href='{}'>Export the last failed chain as a Postman collection</a></p>",
            token_request_table(obj.token_requests.all()),
            export,
        )

    def get_urls(self) -> list:
        extra = [
            path(
                "<int:pk>/postman/",
                self.admin_site.admin_view(self.postman_view),
                name="connections_app_postman",
            )
        ]
        return extra + super().get_urls()

    def postman_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        app = get_object_or_404(App, pk=pk)
        if not self.has_view_permission(request, app):
            raise PermissionDenied
        collection = postman_collection(
            last_failed_chain(app=app), name=f"{app.name}: last failed token requests"
        )
        response = HttpResponse(json.dumps(collection, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{app.slug}-last-failed.json"'
        return response

    @admin.action(
        description="Test client credentials (request a token, then discard it)",
        permissions=["change"],
    )
    def test_client_credentials(self, request: HttpRequest, queryset: QuerySet[App]) -> None:
        for app in queryset:
            check = app_test_client_credentials(app=app)
            level = messages.SUCCESS if check.ok else messages.ERROR
            text = (
                check.diagnosis.message
                if check.ok
                else (f"{check.diagnosis.message} Fix: {check.diagnosis.fix}")
            )
            self.message_user(
                request, f"{app.name}: {text} ({check.attempts} token request(s))", level
            )

    def save_model(self, request: HttpRequest, obj: App, form: AppForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        for warning in obj.credential_whitespace_warnings:
            self.message_user(request, warning, messages.WARNING)
        offline = obj.offline_access_warning(obj.default_scopes)
        if offline:
            self.message_user(request, offline, messages.WARNING)
