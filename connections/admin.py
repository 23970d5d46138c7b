"""Admin for Apps, Connections, Customers and ConfigVariables.

Secrets are write-only; tokens appear as fingerprints. The App admin lives in
``connections.app_admin``.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from connections.admin_common import (
    BigTableAdmin,
    ReadOnlyChangeFormMixin,
    ShownOnceAdmin,
    diagnosis_html,
    token_request_table,
    utc,
    utc_column,
    utc_display,
)
from connections.alerts import customer_tell_reconnect
from connections.api_keys import api_key_create
from connections.app_admin import AppAdmin  # noqa: F401 - registers the App admin
from connections.charts import DASHBOARD_POLL_SECONDS, dashboard_charts
from connections.dashboard import dashboard_data
from connections.fingerprints import fingerprint
from connections.models import (
    ApiKey,
    ConfigVariable,
    Connection,
    Customer,
    CustomerUser,
    Status,
    StatusTransition,
)
from connections.selectors import customer_history
from connections.services import config_variables_mark_for_reconnection
from oauthflow.diagnosis import explain
from oauthflow.revocation import config_variable_disconnect_revoking
from oauthflow.tasks import renew_config_variable


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
class CustomerAdmin(BigTableAdmin):
    list_display = ("name", "contact_email", "created_at_column")
    search_fields = ("name",)
    inlines = (CustomerUserInline,)

    created_at_column = utc_column("created_at", "Created")


class StatusTransitionInline(admin.TabularInline):
    """Every status transition as recorded, one row each (the grouped history is the
    page's "History" field)."""

    model = StatusTransition
    verbose_name_plural = "status transitions, every one as recorded"
    classes = ("collapse",)
    extra = 0
    can_delete = False
    fields = ("created_at_utc", "from_status", "to_status", "reason")
    readonly_fields = fields
    ordering = ("-created_at", "-id")

    created_at_utc = utc_display("created_at", "When")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ExpiresWithinFilter(admin.SimpleListFilter):
    title = "expires within"
    parameter_name = "expires_within"
    WINDOWS = {"expired": None, "5m": 5 * 60, "1h": 3600, "24h": 86400}

    def lookups(self, request: HttpRequest, model_admin: object) -> list[tuple[str, str]]:
        return [("expired", "Expired"), ("5m", "5 minutes"), ("1h", "1 hour"), ("24h", "24 hours")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value is None or value not in self.WINDOWS:
            return queryset
        now = timezone.now()
        seconds = self.WINDOWS[value]
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
        value = self.value()
        if value is None or value not in self.WINDOWS:
            return queryset
        since = timezone.now() - timedelta(seconds=self.WINDOWS[value])
        return queryset.filter(failing_since__lte=since)


@admin.register(ConfigVariable)
class ConfigVariableAdmin(ReadOnlyChangeFormMixin, BigTableAdmin):
    # Every field is read-only (the actions change rows): no Save buttons on the page.
    list_display = (
        "customer",
        "connection",
        "status",
        "expires_at_column",
        "refresh_at_column",
        "failures",
        "short_id",
    )
    list_display_links = ("customer", "connection")
    # No customer filter: its sidebar would list every customer (search finds one).
    list_filter = (
        "status",
        "connection__app",
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
        "expires_at_utc",
        "refresh_at_utc",
        "refresh_token_expires_at_utc",
        "scopes_granted",
        "token_extra",
        "warnings",
        "last_error",
        "failure_count",
        "failing_since_utc",
        "connected_at_utc",
        "refreshed_at_utc",
        "lease_expires_at_utc",
        "id",
        "history",
        "recent_token_requests",
    )
    readonly_fields = fields
    inlines = (StatusTransitionInline,)
    actions = ("renew_now", "mark_for_reconnection", "tell_customer_to_reconnect", "disconnect")
    change_list_template = "admin/connections/configvariable_change_list.html"

    expires_at_column = utc_column("expires_at", "Expires")
    refresh_at_column = utc_column("refresh_at", "Renews")
    expires_at_utc = utc_display("expires_at", "Expires at")
    refresh_at_utc = utc_display("refresh_at", "Renews at")
    refresh_token_expires_at_utc = utc_display(
        "refresh_token_expires_at", "Refresh token expires at"
    )
    failing_since_utc = utc_display("failing_since", "Failing since")
    connected_at_utc = utc_display("connected_at", "Connected at")
    refreshed_at_utc = utc_display("refreshed_at", "Refreshed at")
    lease_expires_at_utc = utc_display("lease_expires_at", "Lease expires at")

    @admin.display(description="Failures", ordering="failure_count")
    def failures(self, obj: ConfigVariable) -> int:
        return obj.failure_count

    @admin.display(description="ID")
    def short_id(self, obj: ConfigVariable) -> SafeString:
        """The UUID's first block, whole on hover: searchable without wrapping the row."""
        return format_html("<code title='{}'>{}…</code>", obj.pk, str(obj.pk)[:8])

    def get_urls(self) -> list:
        dashboard = path(
            "dashboard/",
            self.admin_site.admin_view(self.dashboard_view),
            name="connections_dashboard",
        )
        # Polled by htmx while the dashboard is open: not admin_view, whose redirect to
        # the login page htmx would follow and swap into the page.
        dashboard_live = path(
            "dashboard/live/",
            never_cache(require_GET(self.dashboard_live_view)),
            name="connections_dashboard_live",
        )
        return [dashboard, dashboard_live, *super().get_urls()]

    def dashboard_live_view(self, request: HttpRequest) -> HttpResponse:
        """The dashboard's live fragment; signed out: a 401 asking htmx to reload the
        page once (``HX-Refresh``), which lands on the login page."""
        if not self.admin_site.has_permission(request):
            response = HttpResponse("Signed out.", status=401, content_type="text/plain")
            response["HX-Refresh"] = "true"
            return response
        return self.dashboard_view(request, fragment=True)

    def dashboard_view(self, request: HttpRequest, fragment: bool = False) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        data = dashboard_data()
        context = {
            **self.admin_site.each_context(request),
            "title": "Connection health",
            "data": data,
            "statuses": [(s, label, data.by_status[s]) for s, label in Status.choices],
            "attention_statuses": Status.attention(),
            "attention": [
                (cv, explain(cv.diagnosis or "rejected", app=cv.connection.app).message)
                for cv in data.attention
            ],
            "failures": [
                (r, explain(r.diagnosis or "rejected", app=r.app).message)
                for r in data.recent_failures
            ],
            "charts": dashboard_charts(data),
            "poll_seconds": DASHBOARD_POLL_SECONDS,
        }
        template = "_dashboard_live.html" if fragment else "dashboard.html"
        return TemplateResponse(request, f"admin/connections/{template}", context)

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
        marked = config_variables_mark_for_reconnection(
            config_variables=queryset.select_related("customer", "connection__app"),
            actor=str(request.user),
        )
        self.message_user(
            request, f"{marked} connection(s) marked: their customers will see Reconnect."
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created by customers pressing Connect

    @admin.display(description="Diagnosis")
    def diagnosis_explained(self, obj: ConfigVariable) -> SafeString | str:
        return diagnosis_html(obj.diagnosis, obj.connection.app)

    @admin.display(description="History (renewals grouped; every row below)")
    def history(self, obj: ConfigVariable) -> SafeString | str:
        rows = customer_history(obj, limit=20, words=dict(Status.choices))
        if not rows:
            return "—"
        return format_html_join(
            "", "<div><code>{}</code> {}</div>", ((utc(when), said) for when, said in rows)
        )

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
            queryset.filter(status__in=Status.renewable()).values_list("pk", flat=True)
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
class ApiKeyAdmin(ShownOnceAdmin):
    """Keys for the token API. The key is shown once, on creation; only a hash is kept."""

    shown_once_template = "admin/connections/apikey/created.html"
    shown_once_title = "Copy the new API key"
    shown_once_names = ("api_key", "raw_key")

    list_display = (
        "name",
        "customer",
        "prefix",
        "created_at_column",
        "last_used_at_column",
        "revoked",
    )
    list_filter = ("revoked",)  # no customer filter: it would list every customer
    search_fields = ("name", "prefix", "customer__name")
    readonly_fields = ("prefix", "created_at_utc", "last_used_at_utc")

    created_at_utc = utc_display("created_at", "Created at")
    last_used_at_utc = utc_display("last_used_at", "Last used at")
    created_at_column = utc_column("created_at", "Created")
    last_used_at_column = utc_column("last_used_at", "Last used")

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple:
        if obj is None:
            return ("customer", "name")
        return ("customer", "name", "prefix", "created_at_utc", "last_used_at_utc", "revoked")

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
        self.keep_shown_once(obj, raw)
