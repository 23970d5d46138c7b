"""Admin for Apps, Connections, Customers and ConfigVariables.

Secrets are write-only; tokens appear as fingerprints. The App page shows the callback
URL to register at the app and warns about whitespace and a missing offline_access.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from connections.alerts import customer_tell_reconnect
from connections.api_keys import api_key_create
from connections.dashboard import ATTENTION, dashboard_data
from connections.fingerprints import fingerprint
from connections.forms import AppForm
from connections.models import (
    RENEWABLE_STATUSES,
    ApiKey,
    App,
    ConfigVariable,
    Connection,
    Customer,
    CustomerUser,
    Status,
    StatusTransition,
)
from connections.services import config_variable_transition
from oauthflow.authorize import authorize_url_build, callback_url
from oauthflow.diagnosis import explain
from oauthflow.models import TokenRequest
from oauthflow.records import app_test_client_credentials, last_failed_chain
from oauthflow.replay import postman_collection
from oauthflow.revocation import config_variable_disconnect_revoking
from oauthflow.tasks import renew_config_variable

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
            raise PermissionError
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


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ("name", "app", "grant_type", "scopes")
    list_filter = ("grant_type", "app")
    list_select_related = ("app",)
    search_fields = ("name", "slug", "app__name")
    prepopulated_fields = {"slug": ("name",)}

    def save_model(self, request: HttpRequest, obj: Connection, form: object, change: bool) -> None:
        super().save_model(request, obj, form, change)
        offline = obj.app.offline_access_warning(" ".join(obj.effective_scopes))
        if offline:
            self.message_user(request, offline, messages.WARNING)


class CustomerUserInline(admin.TabularInline):
    model = CustomerUser
    extra = 1
    autocomplete_fields = ("user",)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_email", "created_at")
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


class ExpiresWithinFilter(admin.SimpleListFilter):
    title = "expires within"
    parameter_name = "expires_within"
    WINDOWS = {"expired": None, "5m": 5 * 60, "1h": 3600, "24h": 86400}

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [("expired", "Expired"), ("5m", "5 minutes"), ("1h", "1 hour"), ("24h", "24 hours")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in self.WINDOWS:
            return queryset
        now = timezone.now()
        seconds = self.WINDOWS[self.value()]
        limit = now if seconds is None else now + timedelta(seconds=seconds)
        return queryset.filter(expires_at__lt=limit)


class FailingSinceFilter(admin.SimpleListFilter):
    title = "failing since"
    parameter_name = "failing_for"
    WINDOWS = {"any": 0, "1h": 3600, "24h": 86400, "7d": 7 * 86400}

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [
            ("any", "Failing now"),
            ("1h", "More than 1 hour"),
            ("24h", "More than 24 hours"),
            ("7d", "More than 7 days"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in self.WINDOWS:
            return queryset
        since = timezone.now() - timedelta(seconds=self.WINDOWS[self.value()])
        return queryset.filter(failing_since__lte=since)


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
    list_filter = (
        "status",
        "connection__app",
        "customer",
        ExpiresWithinFilter,
        FailingSinceFilter,
    )
    list_select_related = ("customer", "connection")
    search_fields = ("id", "customer__name", "connection__name")
    fields = (
        "customer",
        "connection",
        "status",
        "diagnosis_explained",
        "access_token_fingerprint",
        "refresh_token_fingerprint",
        "token_type",
        "expires_at",
        "refresh_at",
        "refresh_token_expires_at",
        "scopes_granted",
        "token_extra",
        "warnings",
        "last_error",
        "failure_count",
        "connected_at",
        "refreshed_at",
        "lease_expires_at",
        "recent_token_requests",
    )
    readonly_fields = fields
    inlines = (StatusTransitionInline,)
    actions = ("renew_now", "mark_for_reconnection", "tell_customer_to_reconnect", "disconnect")
    change_list_template = "admin/connections/configvariable_change_list.html"

    def get_urls(self) -> list:
        dashboard = path(
            "dashboard/",
            self.admin_site.admin_view(self.dashboard_view),
            name="connections_dashboard",
        )
        return [dashboard, *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        data = dashboard_data()
        context = {
            **self.admin_site.each_context(request),
            "title": "Connection health",
            "data": data,
            "statuses": [(s, label, data.by_status[s]) for s, label in Status.choices],
            "attention_statuses": ATTENTION,
            "attention": [
                (cv, explain(cv.diagnosis or "rejected", app=cv.connection.app).message)
                for cv in data.attention
            ],
            "failures": [
                (r, explain(r.diagnosis or "rejected", app=r.app).message)
                for r in data.recent_failures
            ],
        }
        return TemplateResponse(request, "admin/connections/dashboard.html", context)

    @admin.action(description="Email the customer: reconnect needed", permissions=["change"])
    def tell_customer_to_reconnect(
        self, request: HttpRequest, queryset: QuerySet[ConfigVariable]
    ) -> None:
        by_customer: dict[Customer, list[str]] = {}
        for config_variable in queryset.select_related("customer", "connection"):
            by_customer.setdefault(config_variable.customer, []).append(
                config_variable.connection.name
            )
        told = [
            c.name
            for c, names in by_customer.items()
            if customer_tell_reconnect(customer=c, connections=names)
        ]
        untold = [c.name for c in by_customer if c.name not in told]
        self.message_user(
            request,
            f"Emailed: {', '.join(told) or 'nobody'}."
            + (f" No contact address for: {', '.join(untold).rstrip('.')}." if untold else ""),
            messages.SUCCESS if not untold else messages.WARNING,
        )

    @admin.action(description="Mark for reconnection", permissions=["change"])
    def mark_for_reconnection(
        self, request: HttpRequest, queryset: QuerySet[ConfigVariable]
    ) -> None:
        for config_variable in queryset.exclude(status=Status.DISCONNECTED):
            config_variable_transition(
                config_variable=config_variable,
                to_status=Status.REAUTHORIZATION_REQUIRED,
                reason=f"Marked for reconnection by {request.user} in the admin.",
                diagnosis="operator_reconnect",
                refresh_at=None,
            )
        self.message_user(request, "The customers will see Reconnect on those connections.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created by customers pressing Connect

    @admin.display(description="Diagnosis")
    def diagnosis_explained(self, obj: ConfigVariable) -> SafeString | str:
        return diagnosis_html(obj.diagnosis, obj.connection.app)

    @admin.display(description="Token requests (newest first)")
    def recent_token_requests(self, obj: ConfigVariable) -> SafeString | str:
        return token_request_table(obj.token_requests.select_related("app"))

    @admin.display(description="Access token")
    def access_token_fingerprint(self, obj: ConfigVariable) -> str:
        return fingerprint(obj.access_token)

    @admin.display(description="Refresh token")
    def refresh_token_fingerprint(self, obj: ConfigVariable) -> str:
        return fingerprint(obj.refresh_token)

    @admin.action(description="Renew now", permissions=["change"])
    def renew_now(self, request: HttpRequest, queryset: QuerySet[ConfigVariable]) -> None:
        renewable = list(
            queryset.filter(status__in=RENEWABLE_STATUSES).values_list("pk", flat=True)
        )
        for pk in renewable:
            renew_config_variable.delay(str(pk), force=True)
        skipped = queryset.count() - len(renewable)
        self.message_user(
            request,
            f"Renewal queued for {len(renewable)} connection(s)."
            + (
                f" {skipped} skipped: not connected (the customer must connect)." if skipped else ""
            ),
        )

    @admin.action(description="Disconnect (forget tokens)", permissions=["change"])
    def disconnect(self, request: HttpRequest, queryset: QuerySet[ConfigVariable]) -> None:
        failed = []
        for config_variable in queryset.select_related("customer", "connection__app"):
            outcome = config_variable_disconnect_revoking(
                config_variable=config_variable,
                reason=f"Disconnected by {request.user} in the admin.",
            )
            if outcome.revocation_failed:
                failed.append(str(config_variable))
        self.message_user(request, f"Disconnected {queryset.count()} connection(s).")
        if failed:
            self.message_user(
                request,
                "Revoking the token at the app failed for: "
                + "; ".join(failed)
                + ". Those tokens may keep working at the app until they expire; see the "
                "token requests.",
                messages.WARNING,
            )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys for the token API. The key is shown once, on creation; only a hash is kept."""

    list_display = ("name", "customer", "prefix", "created_at", "last_used_at", "revoked")
    list_filter = ("revoked", "customer")
    search_fields = ("name", "prefix", "customer__name")
    readonly_fields = ("prefix", "created_at", "last_used_at")

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple:
        if obj is None:
            return ("customer", "name")
        return ("customer", "name", "prefix", "created_at", "last_used_at", "revoked")

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple:
        # A revoked key stays revoked: issue a new one instead of reviving a leaked one.
        locked = ("customer", "revoked") if obj is not None and obj.revoked else ("customer",)
        return self.readonly_fields + (locked if obj else ())

    def save_model(self, request: HttpRequest, obj: ApiKey, form: object, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created, raw = api_key_create(customer=obj.customer, name=obj.name)
        obj.pk, obj.prefix, obj.key_hash = created.pk, created.prefix, created.key_hash
        self.message_user(
            request,
            f"Copy this API key now; it is not stored and will not be shown again: {raw}",
            messages.WARNING,
        )
