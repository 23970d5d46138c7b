"""The OpenAPI document's shared parts: the Bearer security scheme and the error body."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: object) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A customer key (cpk_…: one customer, every scope) or an "
            "environment key (cpe_…: every customer, its scopes), created in the admin.",
        }


class ErrorSerializer(serializers.Serializer):
    """Every error's body."""

    error = serializers.CharField(help_text="A code to match on, e.g. insufficient_scope.")
    message = serializers.CharField(help_text="What went wrong, for the person who can fix it.")
    field = serializers.CharField(required=False, help_text="The offending body field (400).")
    scope = serializers.CharField(required=False, help_text="The missing scope (403).")


_MEANINGS = {
    400: "Bad request body or query (field names the first problem).",
    401: "No API key, or an unknown, malformed or revoked one.",
    403: "The key lacks the scope named in `scope`, or acts for another customer.",
    404: "No such connection for this key (another customer's is a 404 too).",
    409: "The connection needs the customer to reconnect (reauthorization_required), "
    "or the app rejected the token the portal just renewed (access_token_rejected).",
    429: "Too many failed API keys from this address or for this key; see Retry-After.",
    503: "The app is unavailable (temporarily_unavailable); retry after Retry-After seconds.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """``extend_schema(responses=…)`` entries for these error statuses; 401 and 429 are
    always possible."""
    return {
        status: OpenApiResponse(ErrorSerializer, description=_MEANINGS[status])
        for status in sorted({401, 429, *statuses})
    }


class RequiredBodySchema(AutoSchema):
    """For an operation that needs its body: a ``oneOf`` of shapes has no required
    property from which drf-spectacular would infer ``requestBody.required``."""

    def _get_request_body(self, direction: str = "request") -> Any:
        body = super()._get_request_body(direction)
        if body:
            body["required"] = True
        return body
