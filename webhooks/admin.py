"""Admin: webhook endpoints (secret shown once, on creation), the delivery log with
"send again", and a "send test event" action."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from connections.admin_common import (
    BigTableAdmin,
    ReadOnlyChangeFormMixin,
    ShownOnceAdmin,
    utc_column,
    utc_display,
)
from webhooks.models import (
    SUBSCRIBABLE,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from webhooks.services import generate_secret, send_again, send_test


class WebhookEndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=SUBSCRIBABLE, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("name", "url", "events", "enabled")


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    fields = (
        "event",
        "status",
        "attempts",
        "response_status",
        "response_excerpt",
        "next_retry_at",
        "created_at",
    )
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        return super().get_queryset(request).select_related("event")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ShownOnceAdmin):
    """The signing secret is generated on creation, shown once in that response's body
    (not in a message, which cookie storage would put in a cookie) and never again."""

    shown_once_template = "admin/webhooks/webhookendpoint/created.html"
    shown_once_title = "Copy the signing secret"
    shown_once_names = ("endpoint", "secret")

    form = WebhookEndpointForm
    list_display = ("name", "url", "enabled", "created_at_column")
    list_filter = ("enabled",)
    search_fields = ("name", "url")
    readonly_fields = ("created_at_utc",)
    actions = ("send_test_event",)
    inlines = (DeliveryInline,)

    created_at_utc = utc_display("created_at", "Created at")
    created_at_column = utc_column("created_at", "Created")

    def get_fields(self, request: HttpRequest, obj: WebhookEndpoint | None = None) -> tuple:
        base = ("name", "url", "events", "enabled")
        return base if obj is None else (*base, "created_at_utc")

    def get_inlines(self, request: HttpRequest, obj: WebhookEndpoint | None = None) -> tuple:
        return self.inlines if obj is not None else ()

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: object, change: bool
    ) -> None:
        if not change:
            obj.secret = generate_secret()
            self.keep_shown_once(obj, obj.secret)
        super().save_model(request, obj, form, change)

    @admin.action(description="Send a test event", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        sent = [endpoint.name for endpoint in queryset if send_test(endpoint) is not None]
        self.message_user(
            request,
            f"Test event queued for {len(sent)} endpoint(s); see the delivery log.",
            messages.SUCCESS,
        )


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "at", "response_status", "response_excerpt", "error", "duration_ms")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyChangeFormMixin, BigTableAdmin):
    list_display = (
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "response_status",
        "next_retry_column",
        "created_at_column",
    )
    list_filter = ("status", "endpoint", "event__type")
    search_fields = ("event__id", "event__config_variable_id")
    list_select_related = ("event", "endpoint")
    fields = (
        "endpoint",
        "event",
        "event_payload",
        "status",
        "attempts",
        "response_status",
        "response_excerpt",
        "error",
        "next_retry_at_utc",
        "last_attempt_at_utc",
        "delivered_at_utc",
    )
    readonly_fields = fields
    actions = ("send_again_action",)
    inlines = (AttemptInline,)

    created_at_column = utc_column("created_at", "Created")
    next_retry_column = utc_column("next_retry_at", "Next retry")
    next_retry_at_utc = utc_display("next_retry_at", "Next retry")
    last_attempt_at_utc = utc_display("last_attempt_at", "Last attempt")
    delivered_at_utc = utc_display("delivered_at", "Delivered at")

    @admin.display(description="Event", ordering="event__type")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    @admin.display(description="Payload (as sent)")
    def event_payload(self, obj: WebhookDelivery) -> dict:
        return obj.event.payload

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Send again", permissions=["change"])
    def send_again_action(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = send_again(queryset.order_by("created_at", "id"))
        self.message_user(request, f"{count} deliver(ies) queued again.", messages.SUCCESS)
