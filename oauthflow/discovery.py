"""Discovery: an App's endpoints and habits from its issuer URL.

RFC 8414 (OAuth 2.0 Authorization Server Metadata) and OpenID Connect Discovery 1.0.
An admin pastes an issuer (``https://login.example.com/tenant``) or a ``.well-known``
URL; the metadata is fetched through the same SSRF guard, timeouts and size cap as
token requests (``oauthflow.client.get``) and applied to the App: authorize, token and
revocation URLs; the flavor to try first from ``token_endpoint_auth_methods_supported``
(``client_secret_basic`` → 1, ``client_secret_post`` → 3); PKCE S256 when listed; and,
for OpenID Connect servers, ``prompt=consent`` with ``offline_access``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.utils import timezone

from connections.models import App
from oauthflow import client
from oauthflow.client import TransportError
from oauthflow.exceptions import ConfigurationError
from oauthflow.netguard import BlockedDestination, check_destination, scheme_problem

OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
# token_endpoint_auth_methods_supported → the guide's flavor (first supported wins).
AUTH_METHOD_FLAVORS = (("client_secret_basic", 1), ("client_secret_post", 3))
KEPT_FIELDS = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "token_endpoint_auth_methods_supported",
    "code_challenge_methods_supported",
    "grant_types_supported",
    "scopes_supported",
    "response_types_supported",
)


@dataclass(frozen=True)
class Metadata:
    """Fetched server metadata: ``url`` it came from, ``document`` (the kept fields),
    ``oidc`` when it is an OpenID Connect discovery document."""

    url: str
    document: dict[str, Any]
    oidc: bool


def candidate_urls(issuer: str) -> list[str]:
    """Where the metadata of ``issuer`` may be: the URL itself when it is a
    ``.well-known`` URL; else RFC 8414 §3.1's form (the well-known path inserted before
    the issuer's path), the same appended to the issuer (a common variant), and OpenID
    Connect Discovery's ``/.well-known/openid-configuration`` appended."""
    issuer = issuer.strip()
    if "/.well-known/" in issuer:
        return [issuer]
    parts = urlsplit(issuer.rstrip("/"))
    path = parts.path.rstrip("/")
    inserted = urlunsplit((parts.scheme, parts.netloc, OAUTH_WELL_KNOWN + path, "", ""))
    base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    urls = [inserted, base + OAUTH_WELL_KNOWN, base + OIDC_WELL_KNOWN]
    return list(dict.fromkeys(urls))


def _document(url: str) -> dict[str, Any] | None:
    try:
        reply = client.get(url)
    except TransportError:
        return None
    if reply.status != 200:
        return None
    try:
        data = json.loads(reply.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _check(document: dict[str, Any], url: str) -> None:
    for name in ("authorization_endpoint", "token_endpoint"):
        value = document.get(name)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"The metadata at {url} has no {name}.")
        _guard(name, value)
    revocation = document.get("revocation_endpoint")
    if revocation is not None:
        if not isinstance(revocation, str):
            raise ConfigurationError("The metadata's revocation_endpoint is not a URL.")
        _guard("revocation_endpoint", revocation)


def _guard(name: str, url: str) -> None:
    """The same guard as every request: https, and no private addresses in production."""
    try:
        check_destination(url)
    except BlockedDestination as exc:
        raise ConfigurationError(f"The metadata's {name} is refused: {exc}") from exc


def discover(issuer: str) -> Metadata:
    """Fetch and check the metadata of ``issuer`` (an issuer or a ``.well-known`` URL).

    Raises ``ConfigurationError`` naming the URLs tried when none answered a metadata
    document, or when its endpoints are missing or refused (http, private addresses).
    """
    problem = scheme_problem(issuer.strip())
    if problem:
        raise ConfigurationError(f"The issuer URL is refused: {problem}")
    tried = candidate_urls(issuer)
    for url in tried:
        document = _document(url)
        if document is None or "token_endpoint" not in document:
            continue
        _check(document, url)
        kept = {name: document[name] for name in KEPT_FIELDS if name in document}
        oidc = url.endswith(OIDC_WELL_KNOWN) or "openid" in (document.get("scopes_supported") or [])
        return Metadata(url=url, document=kept, oidc=oidc)
    raise ConfigurationError(
        "No authorization-server metadata found; tried " + ", ".join(tried) + "."
    )


def first_flavor(document: dict[str, Any]) -> int | None:
    """The flavor to try first from ``token_endpoint_auth_methods_supported``; None
    when it names neither basic nor post (the guide's order applies). RFC 8414 §2:
    absent means ``client_secret_basic``."""
    methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    for method, flavor in AUTH_METHOD_FLAVORS:
        if method in methods:
            return flavor
    return None


def app_apply_discovery(*, app: App, metadata: Metadata) -> list[str]:
    """Fill ``app`` from ``metadata`` (not saved) and return what changed, in words."""
    document = metadata.document
    changes: list[str] = []

    def put(field: str, value: object, words: str) -> None:
        if getattr(app, field) != value:
            setattr(app, field, value)
            changes.append(words)

    put("authorize_url", document["authorization_endpoint"], "authorize URL")
    put("token_url", document["token_endpoint"], "token URL")
    put("revocation_url", document.get("revocation_endpoint") or "", "revocation URL")
    flavor = first_flavor(document)
    if flavor is not None and app.pinned_flavor is None:
        put("preferred_flavor", flavor, f"flavor #{flavor} first")
    put("use_pkce", "S256" in (document.get("code_challenge_methods_supported") or []), "PKCE")
    if metadata.oidc:
        put("prompt_consent", True, "prompt=consent")
        scopes = app.default_scopes.split()
        supported = document.get("scopes_supported") or []
        wanted = [s for s in ("openid", "offline_access") if s in supported or not supported]
        added = [scope for scope in wanted if scope not in scopes]
        put("default_scopes", " ".join([*scopes, *added]), "scopes")
    app.discovery_url = metadata.url
    app.discovered_at = timezone.now()
    app.discovered_metadata = document
    return changes


def app_discover(*, app: App, issuer: str | None = None) -> list[str]:
    """Discover ``issuer`` (default: the App's last discovery URL) and save the App;
    returns what changed. Raises ``ConfigurationError``."""
    source = issuer or app.discovery_url
    if not source:
        raise ConfigurationError("This App has no issuer URL to discover from.")
    changes = app_apply_discovery(app=app, metadata=discover(source))
    app.full_clean(exclude=["client_secret"])
    app.save()
    return changes
