"""HTTP to token endpoints: the only module that imports ``requests`` (and urllib3).

One pooled session per process with a product User-Agent; every call has a timeout.
Transport failures become ``TransportError`` (a ``ProviderUnavailable``) naming what
failed: timeout, TLS, DNS or connection.

Every request (token, revocation, discovery metadata, alert webhook) passes the network
guard (``oauthflow.netguard``) in ``send``. In production the host is resolved once, its
addresses checked, and the connection made to a checked address (``PinnedAdapter``):
a name cannot answer a public address to the check and a private one to the connection
(DNS rebinding). TLS still uses the host name (SNI, certificate verification).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
import urllib3
from django.conf import settings

from oauthflow.exceptions import ProviderUnavailable

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs
from oauthflow.netguard import (
    BlockedDestination,
    UnresolvableHost,
    check_destination,
    resolve_destination,
)

USER_AGENT = "connection-portal/0.1 (+OAuth 2.0 connection portal)"


@dataclass(frozen=True)
class HttpReply:
    """A token endpoint's answer: status, headers (lower-case names), raw body, ms taken."""

    status: int
    headers: dict[str, str]
    body: bytes
    duration_ms: int

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class TransportError(ProviderUnavailable):
    """No HTTP reply: ``kind`` is ``timeout``, ``tls``, ``dns``, ``connection`` or
    ``blocked`` (refused before sending; see ``oauthflow.netguard``)."""

    def __init__(self, message: str, *, url: str, kind: str, duration_ms: int) -> None:
        self.kind = kind
        self.duration_ms = duration_ms
        super().__init__(message, url=url, answered=False)


class NameNotResolved(requests.ConnectionError):
    """The URL's host name did not resolve (a DNS failure: ``TransportError`` kind
    ``dns``; a webhook delivery retries it)."""


BASE_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}


class PinnedRequest(requests.PreparedRequest):
    """A prepared request with the address to connect to (``connect_to``), one the
    network guard checked; None lets urllib3 resolve the host (development, proxies)."""

    connect_to: str | None = None


class PinnedAdapter(requests.adapters.HTTPAdapter):
    """requests' transport adapter, connecting to ``PinnedRequest.connect_to``.

    It uses the extension point requests documents for subclasses
    (``build_connection_pool_key_attributes``): the urllib3 pool's host is the pinned
    IP address, and for https its ``server_hostname`` is the URL's host, which urllib3
    uses for SNI and which the ``ssl`` module verifies the certificate against (the
    default context's ``check_hostname``), exactly as for an unpinned connection. One
    pool per (address, port, host name), so a TLS connection is never reused for another
    name. ``send`` sets the ``Host`` header, which would otherwise name the address.
    """

    def build_connection_pool_key_attributes(
        self,
        request: requests.PreparedRequest,
        verify: bool | str,
        cert: str | tuple[str, str] | None = None,
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        address = getattr(request, "connect_to", None)
        if address is not None:
            if host_params["scheme"] == "https":
                # The stubs' _PoolKwargs omits it; urllib3's HTTPSConnectionPool takes it.
                pool_kwargs["server_hostname"] = host_params["host"]  # type: ignore[typeddict-unknown-key]
            host_params["host"] = address
        return host_params, pool_kwargs


# Origins (address, port, host name) whose connection pools a process keeps.
POOLED_ORIGINS = 100


@cache
def token_session() -> requests.Session:
    """The process's session: it only holds the pooled connections (its adapters), so
    it is shared by every thread. ``send`` bypasses its request layer.

    Each origin's pool keeps as many connections as the renewal service has requests in
    flight (``RENEWAL_BATCH_THREADS``, at least urllib3's 10): a smaller pool would
    close a connection after each surplus request and open a new one (TCP and TLS
    handshakes) for the next."""
    session = requests.Session()
    size = max(10, settings.RENEWAL_BATCH_THREADS)
    for prefix in ("https://", "http://"):
        session.mount(prefix, PinnedAdapter(pool_connections=POOLED_ORIGINS, pool_maxsize=size))
    return session


@lru_cache(maxsize=1024)
def origin_environment(scheme: str, netloc: str) -> tuple[dict[str, str], str | bool]:
    """``(proxies, verify)`` for requests to ``scheme://netloc`` from the process
    environment (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, ``REQUESTS_CA_BUNDLE``/
    ``CURL_CA_BUNDLE``), as requests would derive them; read once per origin, so a
    change takes effect when the worker restarts."""
    proxies = requests.utils.get_environ_proxies(f"{scheme}://{netloc}/")
    verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return proxies, verify


def send(
    url: str, *, headers: dict[str, str], body: bytes, timeout: float, method: str = "POST"
) -> requests.Response:
    """POST (or ``method``) through the session's transport adapter (requests'
    "prepared requests" and "transport adapters" API), streaming; the caller closes the
    response.

    Skipping ``Session.request`` is deliberate: no redirect is followed, no cookie is
    kept or sent (one process serves every customer), ``~/.netrc`` never adds
    credentials (each flavor sets its own), and the environment is read once per
    origin (``origin_environment``), not on every request.

    The network guard runs here, so no request skips it. Direct: the host is resolved
    once, every address checked (``netguard.resolve_destination``), and the connection
    goes to a checked address, the next one only when connecting to one failed (nothing
    was sent). Through a proxy from the environment: the proxy resolves the name, so the
    target is checked by name and by what it resolves to here (``check_destination``)
    and the proxy's egress rules are the rest of the guard. Raises
    ``BlockedDestination`` (refused, nothing sent), ``NameNotResolved`` or another
    ``requests.RequestException``.
    """
    request = PinnedRequest()
    request.prepare(method=method, url=url, headers={**BASE_HEADERS, **headers}, data=body)
    parts = urlsplit(url)
    proxies, verify = origin_environment(parts.scheme, parts.netloc)
    target = request.url or url  # as requests normalised it (IDNA host): what is connected
    adapter = token_session().get_adapter(target)
    addresses: tuple[str | None, ...] = (None,)  # None: urllib3 resolves (dev, proxy)
    if requests.utils.select_proxy(target, proxies):
        check_destination(target)
    else:
        try:
            pinned = resolve_destination(target)
        except UnresolvableHost as exc:
            raise NameNotResolved(str(exc), request=request) from exc
        if pinned:
            addresses = pinned
            request.headers["Host"] = _host_header(target)
    for address in addresses[:-1]:
        request.connect_to = address
        try:
            return adapter.send(
                request, stream=True, timeout=timeout, verify=verify, proxies=proxies
            )
        except requests.ConnectionError as exc:
            if not _not_connected(exc):
                raise
    request.connect_to = addresses[-1]
    return adapter.send(request, stream=True, timeout=timeout, verify=verify, proxies=proxies)


def _host_header(url: str) -> str:
    """The ``Host`` header urllib3 would send for ``url`` (port only when not default)."""
    parsed = urllib3.util.parse_url(url)
    default = 443 if parsed.scheme == "https" else 80
    host = parsed.host or ""
    return host if parsed.port in (None, default) else f"{host}:{parsed.port}"


def _not_connected(exc: requests.ConnectionError) -> bool:
    """Whether the failure happened while connecting (so nothing was sent): urllib3's
    ``NewConnectionError`` and ``ConnectTimeoutError`` (requests' ``ConnectTimeout``)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)


def _transport_kind(exc: requests.RequestException) -> str:
    if isinstance(exc, NameNotResolved):
        return "dns"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls"
    text = str(exc)
    if (
        "Name or service not known" in text
        or "NameResolutionError" in text
        or ("getaddrinfo" in text)
    ):
        return "dns"
    return "connection"


def get(url: str, *, timeout: float | None = None) -> HttpReply:
    """GET ``url`` (authorization-server metadata, RFC 8414) with the same guard,
    timeouts, size cap and no-redirect rule as token requests. Raises
    ``TransportError``."""
    return post(url, headers={}, body=b"", timeout=timeout, method="GET")


def post(
    url: str,
    *,
    headers: dict[str, str],
    body: bytes,
    timeout: float | None = None,
    method: str = "POST",
) -> HttpReply:
    """POST ``body`` to ``url``; never follows redirects (a token endpoint must answer).

    Raises ``TransportError`` when no reply arrives within ``timeout`` seconds
    (default ``OAUTH_HTTP_TIMEOUT``).
    """
    timeout = settings.OAUTH_HTTP_TIMEOUT if timeout is None else timeout
    started = time.monotonic()
    try:
        with send(url, headers=headers, body=body, timeout=timeout, method=method) as response:
            content = _read_capped(response, deadline=started + 2 * timeout)
    except BlockedDestination as exc:
        raise TransportError(str(exc), url=url, kind="blocked", duration_ms=0) from exc
    except requests.RequestException as exc:
        elapsed = int((time.monotonic() - started) * 1000)
        kind = _transport_kind(exc)
        raise TransportError(
            f"{kind} error reaching {url}", url=url, kind=kind, duration_ms=elapsed
        ) from exc
    elapsed = int((time.monotonic() - started) * 1000)
    return HttpReply(
        status=response.status_code,
        headers={name.lower(): value for name, value in response.headers.items()},
        body=content,
        duration_ms=elapsed,
    )


def _read_capped(response: requests.Response, *, deadline: float) -> bytes:
    """The body, at most ``OAUTH_MAX_RESPONSE_BYTES``: a token reply is small, and a
    huge one must not exhaust a worker's memory. Past the cap the body is cut off, which
    makes it unparseable and so a clear "not a token response".

    requests' timeout bounds each wait, not the whole reply, so the body is read as it
    arrives (``read1``) and a body still incomplete at ``deadline``
    (``time.monotonic()``) raises ``requests.Timeout``: a server that drips bytes cannot
    hold a renewal, and its batch's leases, indefinitely."""
    limit = settings.OAUTH_MAX_RESPONSE_BYTES
    raw = response.raw
    chunks, size = [], 0
    try:
        while size <= limit:
            chunk = raw.read1(65536, decode_content=True)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            # Bytes still to come from the network (not a decoder's buffer) past the
            # deadline: give up. A Content-Length body fully received never trips this.
            if raw.length_remaining != 0 and time.monotonic() > deadline:
                raise requests.Timeout("the reply was still arriving at the deadline")
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.ReadTimeout(str(exc)) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise requests.ConnectionError(str(exc)) from exc
    return b"".join(chunks)[: limit + 1]


def webhook_post(url: str, *, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> int:
    """POST an alert webhook, through the same network guard as token requests; returns
    the HTTP status. Raises ``requests.RequestException`` on transport failure, a name
    that does not resolve included (the caller's task retries with backoff), and
    ``TransportError`` (kind ``blocked``) for a URL the guard refuses (no retry helps)."""
    try:
        response = send(
            url,
            headers={"Content-Type": "application/json", **headers},
            body=body,
            timeout=timeout,
        )
    except BlockedDestination as exc:
        raise TransportError(str(exc), url=url, kind="blocked", duration_ms=0) from exc
    response.close()
    return response.status_code
