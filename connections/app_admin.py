"""Admin for Apps: credentials write-only, the callback URL to register, warnings,
presets, discovery from an issuer URL and the App check."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from connections.admin_common import token_request_table, utc
from connections.forms import AppForm
from connections.models import App, GrantType
from oauthflow import inputs
from oauthflow.app_check import app_check
from oauthflow.app_sources import app_apply_source, app_source_values
from oauthflow.authorize import authorize_url_build, callback_url
from oauthflow.discovery import app_discover, endpoints_elsewhere
from oauthflow.exceptions import ConfigurationError
from oauthflow.flavors import FLAVORS_BY_NUMBER
from oauthflow.presets import presets_all
from oauthflow.records import app_test_client_credentials, last_failed_chain
from oauthflow.replay import postman_collection


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    form = AppForm
    list_display = ("name", "preset", "grant_type", "token_url", "flavor_that_works", "checked")
    list_filter = ("grant_type", "preset")
    search_fields = ("name", "slug", "client_id", "token_url")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = (
        "callback_url_to_register",
        "configuration_warnings",
        "flavor_that_works",
        "authorize_url_preview",
        "recent_token_requests",
        "origin",
        "app_check_table",
    )
    actions = ("check_app", "rediscover", "test_client_credentials")
    change_list_template = "admin/connections/app/change_list.html"
    fieldsets = (
        (None, {"fields": ("name", "slug", "grant_type", "callback_url_to_register")}),
        ("Where it came from", {"fields": ("preset", "docs_url", "origin")}),
        ("App check", {"fields": ("app_check_table",)}),
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
                    "flavor_that_works",
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
        (
            "Customer inputs and metadata",
            {
                "fields": (
                    "customer_inputs",
                    "allowed_host_suffix",
                    "reply_metadata",
                    "callback_metadata",
                ),
                "description": "Values each customer types before Connect (a subdomain), "
                "used in the URLs above as {name}, and what integrations get with the token.",
            },
        ),
        ("Troubleshooting", {"fields": ("recent_token_requests",)}),
    )

    # What only the authorization-code grant uses: a client-credentials App has no
    # customer at a consent screen, so no callback, authorize URL, PKCE or offline access.
    AUTHORIZATION_CODE_ONLY = frozenset(
        {
            "callback_url_to_register",
            "authorize_url",
            "authorize_url_preview",
            "offline_strategy",
            "prompt_consent",
            "use_pkce",
            "extra_authorize_params",
            "callback_metadata",
        }
    )

    def get_fieldsets(self, request: HttpRequest, obj: App | None = None) -> tuple:
        fieldsets: tuple[tuple[str | None, Mapping[str, Any]], ...] = tuple(self.fieldsets)
        if obj is not None and obj.grant_type == GrantType.CLIENT_CREDENTIALS:
            fieldsets = tuple(
                (
                    "Scopes" if name == "Scopes and offline access" else name,
                    {
                        **options,
                        "fields": tuple(
                            f for f in options["fields"] if f not in self.AUTHORIZATION_CODE_ONLY
                        ),
                    },
                )
                for name, options in fieldsets
            )
        # View-only staff (operators) would see every field rendered read-only, the
        # secret included: show whether one is set instead.
        if self.has_change_permission(request, obj):
            return fieldsets
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
            for name, options in fieldsets
        )

    def get_readonly_fields(self, request: HttpRequest, obj: App | None = None) -> tuple:
        return (*self.readonly_fields, "client_secret_status")

    @admin.display(description="Client secret")
    def client_secret_status(self, obj: App | None) -> str:
        return "set (write-only)" if obj is not None and obj.client_secret else "not set"

    @admin.display(description="Flavor that works", ordering="preferred_flavor")
    def flavor_that_works(self, obj: App | None) -> str:
        if obj is None or obj.preferred_flavor is None:
            return "Not known yet (the first token request tries all six)"
        flavor = FLAVORS_BY_NUMBER.get(obj.preferred_flavor)
        return flavor.label if flavor else f"#{obj.preferred_flavor}"

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

    @admin.display(description="Checked", boolean=True)
    def checked(self, obj: App) -> bool | None:
        if obj.checked_at is None:
            return None
        return any(row.get("key") == "code_rejected" for row in obj.check_results)

    @admin.display(description="Origin")
    def origin(self, obj: App | None) -> SafeString | str:
        if obj is None or obj.pk is None:
            return "—"
        parts = []
        if obj.preset:
            parts.append(format_html("Made from the <strong>{}</strong> preset.", obj.preset))
        if obj.discovery_url:
            found = ", ".join(
                f"{name}: {value}"
                for name, value in obj.discovered_metadata.items()
                if name != "issuer"
            )
            parts.append(
                format_html(
                    "Discovered from <code>{}</code> at {}: <small>{}</small>",
                    obj.discovery_url,
                    utc(obj.discovered_at),
                    found,
                )
            )
        if obj.docs_url:
            parts.append(
                format_html("<a href='{}' rel='noopener'>The app's OAuth docs</a>", obj.docs_url)
            )
        return (
            format_html_join("", "<p>{}</p>", ((part,) for part in parts))
            if parts
            else "Typed by hand."
        )

    @admin.display(description="Last App check")
    def app_check_table(self, obj: App | None) -> SafeString | str:
        if obj is None or obj.checked_at is None:
            return "Not checked yet (the Check App action sends each flavor a fake code)."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((row["label"], row["status"] or "—", row["verdict"]) for row in obj.check_results),
        )
        return format_html(
            "<p>{}</p><table><thead><tr><th>Flavor</th><th>Status</th><th>Verdict</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            utc(obj.checked_at),
            rows,
        )

    @admin.display(description="Authorize URL preview")
    def authorize_url_preview(self, obj: App | None) -> str:
        if obj is None or obj.pk is None or not obj.authorize_url:
            return "—"
        shown = copy.copy(obj)
        shown.customer_inputs = []  # placeholders stay visible as {name}
        try:
            url = authorize_url_build(
                app=shown, scopes=obj.default_scopes.split(), state="STATE", code_verifier=None
            )
        except inputs.InvalidCustomerInput:
            url = obj.authorize_url
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
            ),
            path(
                "add-from/",
                self.admin_site.admin_view(self.add_from_view),
                name="connections_app_add_from",
            ),
        ]
        return extra + super().get_urls()

    def add_from_view(self, request: HttpRequest) -> HttpResponse:
        """Pick a preset or paste an issuer URL; the add form then comes filled in."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Add App from a preset or an issuer URL",
            "presets": presets_all(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/connections/app/add_from.html", context)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        initial = super().get_changeform_initial_data(request)
        try:
            values = app_source_values(
                preset=request.GET.get("preset", ""), issuer=request.GET.get("issuer", "")
            )
        except (KeyError, ConfigurationError) as exc:
            self.message_user(request, str(exc).strip("'\""), messages.ERROR)
            return initial
        for name in ("preferred_flavor", "discovery"):
            values.pop(name, None)
        return {**initial, **values}

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

    @admin.action(
        description="Check App (a fake code to each flavor: at most six requests)",
        permissions=["change"],
    )
    def check_app(self, request: HttpRequest, queryset: QuerySet[App]) -> None:
        for app in queryset:
            self._report_check(request, app)

    @admin.action(description="Re-discover from the issuer URL", permissions=["change"])
    def rediscover(self, request: HttpRequest, queryset: QuerySet[App]) -> None:
        for app in queryset:
            try:
                changes = app_discover(app=app)
            except ConfigurationError as exc:
                self.message_user(request, f"{app.name}: {exc}", messages.ERROR)
                continue
            said = ", ".join(changes) if changes else "nothing changed"
            self.message_user(request, f"{app.name}: re-discovered ({said}).", messages.SUCCESS)
            self._report_check(request, app)

    def _report_check(self, request: HttpRequest, app: App) -> None:
        try:
            result = app_check(app=app)
        except ConfigurationError as exc:
            self.message_user(request, f"{app.name}: {exc}", messages.WARNING)
            return
        level = messages.SUCCESS if result.ok else messages.ERROR
        self.message_user(
            request, f"{app.name}: {result.summary} ({len(result.rows)} request(s))", level
        )

    def save_model(self, request: HttpRequest, obj: App, form: AppForm, change: bool) -> None:
        source = {}
        if not change:
            try:
                source = app_source_values(
                    preset=obj.preset if "preset" in request.GET else "",
                    issuer=request.GET.get("issuer", ""),
                )
            except (KeyError, ConfigurationError) as exc:
                self.message_user(request, str(exc).strip("'\""), messages.WARNING)
            app_apply_source(app=obj, values=source)
        super().save_model(request, obj, form, change)
        secret_changed = "client_secret" in form.changed_data
        elsewhere = endpoints_elsewhere(obj)
        if elsewhere:
            self.message_user(request, elsewhere, messages.WARNING)
        if (
            obj.grant_type == GrantType.AUTHORIZATION_CODE
            and obj.client_secret
            and (not change or secret_changed)
            and not obj.customer_inputs
            and not elsewhere  # the admin runs Check App after looking
        ):
            self._report_check(request, obj)
        for warning in obj.credential_whitespace_warnings:
            self.message_user(request, warning, messages.WARNING)
        offline = obj.offline_access_warning(obj.default_scopes)
        if offline:
            self.message_user(request, offline, messages.WARNING)
