"""What a client locked out for failed logins gets (django-axes' lockout response)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def login_locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """A 429 naming the wait, with ``Retry-After`` in seconds (RFC 6585 §4)."""
    response = HttpResponse(
        settings.AXES_COOLOFF_MESSAGE, status=429, content_type="text/plain; charset=utf-8"
    )
    response["Retry-After"] = str(settings.LOGIN_FAILURE_WINDOW)
    return response
