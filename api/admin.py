"""Environment keys in the admin: created with their scopes and shown once, listed with
prefix, scopes and last use, revoked for good."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from api.keys import environment_key_create, environment_keys_revoke
from api.models import EnvironmentKey, Scope
from connections.admin_common import ShownOnceAdmin, utc_column, utc_display


class EnvironmentKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Grant only what the integration needs.",
    )

    class Meta:
        model = EnvironmentKey
        fields = ("name", "scopes", "revoked")


@admin.register(EnvironmentKey)
class EnvironmentKeyAdmin(ShownOnceAdmin):
    """Keys for the API that act across customers. The key is shown once, on creation;
    only a hash is kept. Scopes are fixed at creation: a key that needs others is
    replaced, so a leaked key never gains reach."""

    shown_once_template = "admin/api/environmentkey/created.html"
    shown_once_title = "Copy the new environment key"
    shown_once_names = ("environment_key", "raw_key")

    list_display = (
        "name",
        "prefix",
        "scope_list",
        "created_at_column",
        "last_used_at_column",
        "revoked",
    )
    list_filter = ("revoked",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "scope_list", "created_at_utc", "last_used_at_utc")
    actions = ("revoke",)

    created_at_utc = utc_display("created_at", "Created at")
    last_used_at_utc = utc_display("last_used_at", "Last used at")
    created_at_column = utc_column("created_at", "Created")
    last_used_at_column = utc_column("last_used_at", "Last used")

    @admin.display(description="Scopes")
    def scope_list(self, obj: EnvironmentKey) -> str:
        return ", ".join(obj.scopes)

    def get_form(
        self,
        request: HttpRequest,
        obj: EnvironmentKey | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[forms.ModelForm]:
        # Scopes are chosen once, on the add form; the change form only names or revokes.
        kwargs["form"] = EnvironmentKeyForm if obj is None else forms.ModelForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: EnvironmentKey | None = None) -> tuple:
        if obj is None:
            return ("name", "scopes")
        return ("name", "prefix", "scope_list", "created_at_utc", "last_used_at_utc", "revoked")

    def get_readonly_fields(self, request: HttpRequest, obj: EnvironmentKey | None = None) -> tuple:
        # A revoked key stays revoked: issue a new one instead of reviving a leaked one.
        if obj is not None and obj.revoked:
            return (*self.readonly_fields, "revoked")
        return self.readonly_fields

    def save_model(
        self, request: HttpRequest, obj: EnvironmentKey, form: forms.ModelForm, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created, raw = environment_key_create(name=obj.name, scopes=form.cleaned_data["scopes"])
        obj.pk, obj.prefix, obj.key_hash = created.pk, created.prefix, created.key_hash
        self.keep_shown_once(obj, raw)

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[EnvironmentKey]) -> None:
        count = environment_keys_revoke(keys=queryset)
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)
