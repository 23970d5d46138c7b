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

from django.conf import settings
from django.core.exceptions import ValidationError
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


def _document(url: str) -> tuple[dict[str, Any] | None, str]:
    """The metadata document at ``url``, or None and why not (for the admin)."""
    try:
        reply = client.get(url)
    except TransportError as exc:
        return None, f"{exc.kind} error"
    if 300 <= reply.status < 400:
        where = reply.headers.get("location", "elsewhere")
        return None, f"HTTP {reply.status} to {where[:200]} (redirects are not followed)"
    if reply.status != 200:
        return None, f"HTTP {reply.status}"
    if len(reply.body) > settings.OAUTH_MAX_RESPONSE_BYTES:
        return None, "larger than OAUTH_MAX_RESPONSE_BYTES"
    try:
        data = json.loads(reply.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, "not JSON"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    if "token_endpoint" not in data:
        return None, "no token_endpoint"
    return data, ""


def strings(value: object) -> list[str]:
    """A metadata list of strings (anything else counts as absent)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def _issuer_problem(issuer: str) -> str | None:
    if not issuer:
        return "An issuer URL is required."
    try:
        parts = urlsplit(issuer)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return f"{issuer[:200]!r} is not a URL."
    if parts.username or parts.password:
        return "Remove the user name or password from the issuer URL."
    if parts.query or parts.fragment:
        return "An issuer URL has no query or fragment (RFC 8414 §2)."
    return scheme_problem(issuer)


def _check(document: dict[str, Any], url: str, issuer: str) -> None:
    claimed = document.get("issuer")
    if "/.well-known/" not in issuer and (
        not isinstance(claimed, str) or claimed.rstrip("/") != issuer.rstrip("/")
    ):
        # RFC 8414 §3.3: a document naming another issuer must not be used.
        raise ConfigurationError(
            f"The metadata at {url} names the issuer {str(claimed)[:200]!r}, not {issuer!r}; "
            "it is refused (RFC 8414 §3.3)."
        )
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
    issuer = issuer.strip()
    problem = _issuer_problem(issuer)
    if problem:
        raise ConfigurationError(f"The issuer URL is refused: {problem}")
    tried = []
    for url in candidate_urls(issuer):
        document, why = _document(url)
        if document is None:
            tried.append(f"{url} ({why})")
            continue
        _check(document, url, issuer)
        kept = {name: document[name] for name in KEPT_FIELDS if name in document}
        oidc = url.endswith(OIDC_WELL_KNOWN) or "openid" in strings(
            document.get("scopes_supported")
        )
        return Metadata(url=url, document=kept, oidc=oidc)
    raise ConfigurationError("No authorization-server metadata found; tried " + "; ".join(tried))


def first_flavor(document: dict[str, Any]) -> int | None:
    """The flavor to try first from ``token_endpoint_auth_methods_supported``; None
    when it names neither basic nor post (the guide's order applies). RFC 8414 §2:
    absent means ``client_secret_basic``."""
    methods = strings(document.get("token_endpoint_auth_methods_supported")) or [
        "client_secret_basic"
    ]
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
    put("use_pkce", "S256" in strings(document.get("code_challenge_methods_supported")), "PKCE")
    if metadata.oidc:
        put("prompt_consent", True, "prompt=consent")
        scopes = app.default_scopes.split()
        supported = strings(document.get("scopes_supported"))
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
    try:
        app.full_clean(exclude=["client_secret"])
    except ValidationError as exc:
        raise ConfigurationError(f"The discovered values are not valid: {exc}") from exc
    app.save()
    return changes


def endpoints_elsewhere(app: App) -> str | None:
    """A warning when the App's token URL is on another host than its discovered issuer:
    before the App check sends the secret there, an admin should look (Google's is, on
    purpose; a hostile document's would be too)."""
    issuer = app.discovered_metadata.get("issuer") if app.discovered_metadata else None
    if not isinstance(issuer, str):
        return None
    try:
        token_host, issuer_host = urlsplit(app.token_url).hostname, urlsplit(issuer).hostname
    except ValueError:
        return None
    if token_host == issuer_host:
        return None
    return (
        f"The token URL is on {token_host}, not on the issuer's host {issuer_host}: check it "
        "before running the App check, which sends the client secret there."
    )
