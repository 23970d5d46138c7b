"""Request and response bodies of the connections and token endpoints. Read-only views
of the models: nothing here writes."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from connect_sessions.selectors import end_user_for
from connections.fingerprints import fingerprint
from connections.models import ConfigVariable, Status
from oauthflow.access import token_metadata
from oauthflow.diagnosis import explain

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise

FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{12}$")  # connections.fingerprints.fingerprint
MAX_REPORTED_TOKEN = 16384  # characters: an access token is far shorter


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField would turn 7 into "7"."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a string: DRF's UUIDField would turn 123 into …00007b."""

    def to_internal_value(self, data: object) -> uuid.UUID:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class NamedSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()


class CustomerRefSerializer(serializers.Serializer):
    external_id = serializers.CharField(allow_null=True, help_text="Your ID for the customer.")
    name = serializers.CharField()


class DiagnosisSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="A diagnosis key, e.g. refresh_token_revoked.")
    message = serializers.CharField(help_text="What it means, in plain words.")


class MetadataSerializer(serializers.Serializer):
    inputs = serializers.DictField(help_text="What the customer typed before Connect.")
    callback = serializers.DictField(help_text="Values the app sent on the callback (realmId).")
    reply = serializers.DictField(help_text="Non-secret token-reply fields (instance_url).")


class ConnectionSerializer(serializers.ModelSerializer):
    """One ConfigVariable as integrations see it: never a token, code or secret. Times are
    UTC (ISO 8601)."""

    status_label = serializers.CharField(source="get_status_display")
    connection = serializers.SerializerMethodField()
    app = serializers.SerializerMethodField()
    customer = serializers.SerializerMethodField()
    scopes = serializers.SerializerMethodField(help_text="Scopes the app granted.")
    customer_inputs = serializers.DictField(
        read_only=True, help_text="What the customer typed before Connect (a subdomain)."
    )
    metadata = serializers.SerializerMethodField()
    diagnosis = serializers.SerializerMethodField(
        help_text="Why the last attempt failed; null when it did not."
    )

    class Meta:
        model = ConfigVariable
        fields: tuple[str, ...] = (
            "id",
            "status",
            "status_label",
            "connection",
            "app",
            "customer",
            "scopes",
            "expires_at",
            "refresh_token_expires_at",
            "customer_inputs",
            "metadata",
            "diagnosis",
            "failing_since",
            "connected_at",
            "refreshed_at",
            "created_at",
        )
        read_only_fields = fields

    @extend_schema_field(NamedSerializer)
    def get_connection(self, obj: ConfigVariable) -> dict[str, str]:
        return {"slug": obj.connection.slug, "name": obj.connection.name}

    @extend_schema_field(NamedSerializer)
    def get_app(self, obj: ConfigVariable) -> dict[str, str]:
        return {"slug": obj.connection.app.slug, "name": obj.connection.app.name}

    @extend_schema_field(CustomerRefSerializer)
    def get_customer(self, obj: ConfigVariable) -> dict[str, str | None]:
        return {"external_id": obj.customer.external_id, "name": obj.customer.name}

    def get_scopes(self, obj: ConfigVariable) -> list[str]:
        return obj.scopes_granted.split()

    @extend_schema_field(MetadataSerializer)
    def get_metadata(self, obj: ConfigVariable) -> dict[str, dict[str, Any]]:
        return token_metadata(obj)

    @extend_schema_field(DiagnosisSerializer(allow_null=True))
    def get_diagnosis(self, obj: ConfigVariable) -> dict[str, str] | None:
        if not obj.diagnosis:
            return None
        found = explain(obj.diagnosis, app=obj.connection.app)
        return {"key": obj.diagnosis, "message": found.customer_message}


class EndUserRefSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Your ID for the end user.")
    email = serializers.CharField()
    display_name = serializers.CharField()


class ConnectionDetailSerializer(ConnectionSerializer):
    """One connection, with the end user who connected it through a connect session
    (null when it was connected in the portal). Not in the list: one query per row."""

    end_user = serializers.SerializerMethodField()

    class Meta(ConnectionSerializer.Meta):
        fields = (*ConnectionSerializer.Meta.fields, "end_user")
        read_only_fields = fields

    @extend_schema_field(EndUserRefSerializer(allow_null=True))
    def get_end_user(self, obj: ConfigVariable) -> dict[str, str] | None:
        return end_user_for(obj)


class ConnectionFilterSerializer(serializers.Serializer):
    """The list's query parameters; all optional, combined with AND."""

    customer_external_id = serializers.CharField(required=False, max_length=200)
    app = serializers.SlugField(required=False, help_text="An App's slug.")
    connection = serializers.SlugField(required=False, help_text="A Connection's slug.")
    status = serializers.ChoiceField(required=False, choices=Status.choices)


class AccessTokenSerializer(serializers.Serializer):
    """A usable access token (RFC 6749 §5.1); answered with Cache-Control: no-store."""

    access_token = serializers.CharField()
    token_type = serializers.CharField(help_text="Bearer for any spelling the app used.")
    expires_at = serializers.DateTimeField(allow_null=True, help_text="UTC; null: no expiry.")
    scope = serializers.CharField(help_text="Granted scopes, space-separated.")
    metadata = MetadataSerializer()


REPORT_HINT = (
    'Send JSON {"access_token": "<the rejected token>"} or '
    '{"fingerprint": "sha256:<first 12 hex digits of its SHA-256>"}.'
)
# DRF formats field messages with str.format: the braces are escaped.
_REPORT_ERRORS: dict[str, str | StrPromise] = dict.fromkeys(
    ("invalid", "blank", "null", "max_length"), REPORT_HINT.replace("{", "{{").replace("}", "}}")
)


class TokenRejectedSerializer(serializers.Serializer):
    """The token the app answered 401 to: the token itself or its fingerprint, one of
    them (the document describes the two shapes: ``TOKEN_REJECTED_REQUEST``)."""

    access_token = StrictCharField(
        required=False, max_length=MAX_REPORTED_TOKEN, error_messages=_REPORT_ERRORS
    )
    # Checked in validate_fingerprint: a RegexField's validator would show the message
    # without formatting it, doubled braces and all.
    fingerprint = StrictCharField(
        required=False,
        max_length=100,
        error_messages=_REPORT_ERRORS,
        help_text="sha256:<first 12 hex digits of the token's SHA-256>.",
    )

    def validate_fingerprint(self, value: str) -> str:
        if not FINGERPRINT.fullmatch(value):
            raise serializers.ValidationError(REPORT_HINT)
        return value

    def validate(self, attrs: dict[str, str]) -> dict[str, str]:
        if len(attrs) != 1:
            raise serializers.ValidationError(REPORT_HINT)
        if attrs.get("access_token"):
            return {"fingerprint": fingerprint(attrs["access_token"])}
        if attrs.get("fingerprint"):
            return {"fingerprint": attrs["fingerprint"]}
        raise serializers.ValidationError(REPORT_HINT)


class RejectedTokenSerializer(serializers.Serializer):
    access_token = serializers.CharField(help_text="The token the app answered 401 to.")


class RejectedFingerprintSerializer(serializers.Serializer):
    fingerprint = serializers.RegexField(
        FINGERPRINT, help_text="sha256:<first 12 hex digits of the token's SHA-256>."
    )


# What the document says a report is: exactly one of the two shapes.
TOKEN_REJECTED_REQUEST = PolymorphicProxySerializer(
    component_name="TokenRejectedReport",
    serializers=[RejectedTokenSerializer, RejectedFingerprintSerializer],
    resource_type_field_name=None,
)
