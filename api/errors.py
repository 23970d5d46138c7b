"""Every API error as ``{"error": <code>, "message": <sentence>}`` (the token API's
shape since v1), with ``field`` naming the offending body field on a 400 and ``scope``
the missing scope on a 403. Installed as DRF's ``EXCEPTION_HANDLER``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from api.authentication import MissingScope


class ApiError(exceptions.APIException):
    """An API answer that is not DRF's own: ``error`` is the code integrations match on;
    ``headers`` go on the response (``Retry-After``)."""

    def __init__(
        self,
        *,
        status: int,
        error: str,
        message: str,
        field: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=error)
        self.status_code = status
        self.error = error
        self.field = field
        self.headers = headers or {}


# DRF exception → our error code (RFC 6749 §5.2 / RFC 6750 §3.1 words where they fit).
CODES: tuple[tuple[type[Exception], str], ...] = (
    (MissingScope, "insufficient_scope"),
    (exceptions.NotAuthenticated, "unauthorized"),
    (exceptions.AuthenticationFailed, "unauthorized"),
    (exceptions.PermissionDenied, "forbidden"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.Throttled, "too_many_requests"),
    (exceptions.ValidationError, "invalid_request"),
    (exceptions.ParseError, "invalid_request"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.NotAcceptable, "not_acceptable"),
)
MESSAGES = {
    exceptions.NotAuthenticated: "Send Authorization: Bearer <API key>.",
    exceptions.NotFound: "No such connection for this API key.",
}


def _flatten(detail: Any, path: str = "") -> list[tuple[str, str]]:
    """``(field path, message)`` pairs of a ValidationError's nested detail."""
    if isinstance(detail, dict):
        return [
            pair
            for name, inner in detail.items()
            for pair in _flatten(inner, f"{path}.{name}" if path else str(name))
        ]
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [(path, str(item)) for item in detail]
        return [
            pair
            for index, inner in enumerate(detail)
            for pair in _flatten(inner, f"{path}[{index}]")
        ]
    return [(path, str(detail))]


def _body(exc: exceptions.APIException) -> dict[str, Any]:
    body: dict[str, Any]
    if isinstance(exc, ApiError):
        body = {"error": exc.error, "message": str(exc.detail)}
        if exc.field:
            body["field"] = exc.field
    elif isinstance(exc, exceptions.ValidationError):
        pairs = _flatten(exc.detail)
        message = "; ".join(f"{field}: {text}" if field else text for field, text in pairs)
        body = {"error": "invalid_request", "message": message or "Invalid request."}
        if pairs and pairs[0][0] and pairs[0][0] != "non_field_errors":
            body["field"] = pairs[0][0]
    else:
        code = next((code for kind, code in CODES if isinstance(exc, kind)), "error")
        message = str(exc.detail)
        if message == str(type(exc).default_detail):
            message = MESSAGES.get(type(exc), message)
        body = {"error": code, "message": message}
        if isinstance(exc, MissingScope):
            body["scope"] = exc.scope
    return body


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler (status, ``WWW-Authenticate``, ``Retry-After``), our body. A body
    over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (Django's ``RequestDataTooBig``, else its HTML
    400 page) is a 400 ``invalid_request`` too."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = exceptions.ParseError(f"The request body is over {limit} bytes.")
    response = exception_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's 500
    if not isinstance(exc, exceptions.APIException):
        exc = (
            exceptions.NotFound() if response.status_code == 404 else exceptions.PermissionDenied()
        )
    if isinstance(exc, ApiError):
        for name, value in exc.headers.items():
            response[name] = value
    response.data = _body(exc)
    return response
