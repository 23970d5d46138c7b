"""Customer inputs: values a customer types before Connect, templated into an App's URLs.

Multi-tenant apps put the customer's own subdomain in their URLs (Shopify, Zendesk,
Okta, Auth0). An App declares its inputs (name, label, help, a strict pattern) and an
``allowed_host_suffix``; its authorize, token and revocation URLs and extra parameters
use them as ``{subdomain}``. A value is refused before any request when it fails its
pattern, holds anything that could move a request to another host (dots, slashes,
``@``, ``%``, ``#``, ``?``, ``:``, a backslash, whitespace, non-ASCII look-alikes), or
when a rendered URL's host does not end with the App's fixed domain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]{0,31})\}")
ALLOWED = re.compile(r"[A-Za-z0-9_-]+")  # never a dot, slash, @, %, #, ?, :, &, ; or space
MAX_VALUE = 100
SAMPLE_VALUE = "sample"  # stands in for every input when checking a URL's shape


class InvalidCustomerInput(ValueError):
    """A customer input was refused; ``errors`` maps each input's name to why."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {why}" for name, why in errors.items()))


def declared(app: Any) -> list[dict[str, str]]:
    """The App's declared inputs (``App.customer_inputs``), each a dict with ``name``,
    ``label``, ``help`` and ``pattern``; malformed entries are skipped."""
    inputs = getattr(app, "customer_inputs", None) or []
    return [item for item in inputs if isinstance(item, dict) and item.get("name")]


def placeholders(text: str) -> set[str]:
    """The ``{name}`` placeholders in ``text``."""
    return set(PLACEHOLDER.findall(text or ""))


def render(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each ``{name}`` replaced by ``values[name]`` (unknown names stay)."""
    return PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), text or "")


def host_allowed(url: str, suffix: str) -> bool:
    """True when ``url``'s host is ``suffix`` or ends with ``.`` + ``suffix``."""
    try:
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return False
    suffix = suffix.lower().strip(".")
    return bool(suffix) and (host == suffix or host.endswith("." + suffix))


def _value_problem(value: object, item: Mapping[str, str]) -> str | None:
    label = item.get("label") or item["name"]
    if not isinstance(value, str) or not value:
        return f"{label} is required."
    if len(value) > MAX_VALUE:
        return f"{label} is too long (at most {MAX_VALUE} characters)."
    if not ALLOWED.fullmatch(value):
        return (
            f"{label} may hold only letters, digits and hyphens (no dots, slashes, @, % or spaces)."
        )
    pattern = item.get("pattern") or r"^[a-z0-9][a-z0-9-]{0,62}$"
    try:
        matched = re.fullmatch(pattern, value)
    except re.error:
        return f"{label} cannot be checked: the App's pattern is invalid."
    if not matched:
        return f"{label} is not in the expected form ({item.get('help') or pattern})."
    return None


def templated_texts(app: Any) -> list[str]:
    """Every App text that may hold placeholders: its URLs and extra parameter values."""
    texts = [getattr(app, name, "") or "" for name in ("authorize_url", "token_url")]
    texts.append(getattr(app, "revocation_url", "") or "")
    for name in ("extra_authorize_params", "extra_token_params"):
        mapping = getattr(app, name, None)
        if isinstance(mapping, Mapping):
            texts += [str(value) for value in mapping.values()]
    return texts


def validate(app: Any, values: Mapping[str, object]) -> dict[str, str]:
    """The App's declared inputs taken from ``values``, checked; raises
    ``InvalidCustomerInput`` naming each refused input (before any request)."""
    cleaned: dict[str, str] = {}
    errors: dict[str, str] = {}
    for item in declared(app):
        raw = values.get(item["name"])
        # ASCII is checked before lower-casing: "\u212a" (Kelvin) lowers to "k".
        value = raw.strip() if isinstance(raw, str) else raw
        if isinstance(value, str) and value.isascii():
            value = value.lower()
        problem = _value_problem(value, item)
        if problem:
            errors[item["name"]] = problem
        else:
            cleaned[item["name"]] = str(value)
    if not errors:
        suffix = getattr(app, "allowed_host_suffix", "") or ""
        for name in ("authorize_url", "token_url", "revocation_url"):
            url = getattr(app, name, "") or ""
            if url and placeholders(url) and not host_allowed(render(url, cleaned), suffix):
                domain = suffix or "the App's domain"
                errors["__all__"] = f"These values would send requests outside {domain}."
    if errors:
        raise InvalidCustomerInput(errors)
    return cleaned


def endpoint(app: Any, name: str, values: Mapping[str, str] | None) -> str:
    """The App's URL ``name`` (``token_url``, …) with the customer's ``values`` filled in.

    Raises ``InvalidCustomerInput`` when the URL has placeholders and ``values`` are
    missing or refused (checked again here: stored values are not trusted blindly)."""
    url = getattr(app, name, "") or ""
    if not placeholders(url):
        return url
    cleaned = validate(app, values or {})
    return render(url, cleaned)


def params(app: Any, mapping: Mapping[str, object] | None, values: Mapping[str, str] | None):
    """An extra-parameters mapping with customer values filled in (as strings)."""
    return {str(name): render(str(value), values or {}) for name, value in (mapping or {}).items()}


def shape_problems(
    *, urls: Sequence[str], inputs: Sequence[Mapping[str, Any]], suffix: str
) -> list[str]:
    """Why an App's templated URLs and inputs do not fit together (an admin's error):
    unknown placeholders, inputs without a fixed domain, patterns that do not compile."""
    names = {str(item.get("name")) for item in inputs if isinstance(item, Mapping)}
    problems = []
    for url in urls:
        unknown = placeholders(url) - names
        if unknown:
            problems.append(f"{url} uses {', '.join(sorted(unknown))}, which is no customer input.")
    if names:
        problems.extend(_host_problems(urls, suffix))
    problems.extend(_pattern_problems(inputs))
    return problems


def _host_problems(urls: Sequence[str], suffix: str) -> list[str]:
    """An App with customer inputs: a fixed domain, and endpoint URLs that stay under it."""
    if "." not in suffix.strip("."):
        return [
            "Customer inputs need an allowed host suffix: the app's fixed domain, with a dot "
            "(zendesk.com, not com)."
        ]
    problems = []
    for url in urls[:3]:  # the three endpoint URLs
        sample = render(url, dict.fromkeys(placeholders(url), SAMPLE_VALUE))
        if url and placeholders(url) and not host_allowed(sample, suffix):
            problems.append(f"{url} leads outside {suffix}.")
    return problems


def _pattern_problems(inputs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each input has a name and a pattern that compiles and is anchored ``^…$``."""
    problems = []
    for item in inputs:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            problems.append('Each customer input needs a "name".')
            continue
        pattern = str(item.get("pattern") or "")
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"The pattern of {item['name']} does not compile: {exc}.")
            continue
        if pattern and not (pattern.startswith("^") and pattern.endswith("$")):
            problems.append(f"The pattern of {item['name']} must be anchored: ^…$.")
    return problems
