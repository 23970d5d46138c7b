"""Validators of App fields: endpoint URLs and flat JSON mappings."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from oauthflow import inputs
from oauthflow.netguard import scheme_problem


def validate_endpoint_url(value: str) -> None:
    """A URL (its ``{input}`` placeholders stand for customer inputs): https only; http
    for loopback hosts when OAUTH_ALLOW_HTTP_LOOPBACK is on."""
    sample = inputs.render(value, dict.fromkeys(inputs.placeholders(value), inputs.SAMPLE_VALUE))
    URLValidator(schemes=["http", "https"])(sample)
    problem = scheme_problem(sample)
    if problem:
        raise ValidationError(problem)


def flat_mapping_problem(value: object, *, header: bool) -> str | None:
    """Why ``value`` is not a flat ``{"name": "value"}`` object, or None."""
    if not isinstance(value, dict):
        return 'Use a JSON object of names to values, e.g. {"audience": "api"}.'
    for name, item in value.items():
        if not isinstance(item, str | int | float | bool):
            return f"The value of {name!r} must be a string or a number."
        text = f"{name}{item}"
        if any(ord(char) < 32 or ord(char) == 127 for char in text):
            return f"{name!r} contains a line break or control character."
        if header and not name.replace("-", "").isalnum():
            return f"{name!r} is not a valid header name."
    return None
