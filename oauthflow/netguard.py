"""Where token requests may go: https only, and never into our own network (SSRF).

An admin-supplied token URL is a request the server makes on the admin's behalf. In
production (``OAUTH_ALLOW_PRIVATE_NETWORKS`` off) every address the host resolves to
must be public: loopback, private (RFC 1918, ULA), link-local (cloud metadata at
169.254.169.254), multicast and reserved ranges are refused. Plain ``http://`` is allowed
only for loopback hosts with ``OAUTH_ALLOW_HTTP_LOOPBACK`` (local development).

DNS rebinding: a name may answer a public address to a check and a private one to the
connection that follows. So a request is checked with ``resolve_destination``, which
resolves the host once and returns the checked addresses, and ``oauthflow.client``
connects to one of those addresses (the name is kept for TLS: SNI and certificate
verification); nothing resolves the name a second time. A name that does not resolve is
``UnresolvableHost`` (a DNS failure, not a refusal).

``check_destination`` is the same policy without the pinning, for a URL that is only
validated now and requested later (discovered endpoints), and for a request that goes
through a proxy from the environment (``HTTPS_PROXY``): then the proxy resolves the name,
so no address can be pinned. The guard refuses such a target by name (a non-public IP
literal, ``localhost``) and by what the name resolves to here, when it resolves here; the
proxy's own egress rules must keep it out of internal networks. The proxy itself is the
operator's setting and is not checked.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class BlockedDestination(Exception):
    """The URL may not be requested; the message says why."""


class UnresolvableHost(Exception):
    """The URL's host name does not resolve (now): a DNS failure, not a refusal."""


def _is_loopback_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def scheme_problem(url: str) -> str | None:
    """Why ``url``'s scheme is not allowed, or None (https, or http to loopback in dev)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host and settings.OAUTH_ALLOW_HTTP_LOOPBACK:
        if _is_loopback_host(host):
            return None
        return f"http:// is allowed for loopback hosts only, not {host!r}."
    return "Use an https:// URL (http:// only for local development)."


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(address: str) -> bool:
    """Whether an IP address (text, IPv6 zone allowed) is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address reach that address: judge it instead.
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        elif ip.sixtofour:  # 2002::/16
            ip = ip.sixtofour
        elif ip in NAT64:  # 64:ff9b::/96, the well-known NAT64 prefix (RFC 6052)
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> tuple[str, ...]:
    """The TCP addresses of ``host`` (``socket.getaddrinfo``, its order, no duplicates).

    Raises ``UnresolvableHost`` when the name does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHost(f"{host} does not resolve ({exc})") from exc
    families = (socket.AF_INET, socket.AF_INET6)
    addresses = tuple(dict.fromkeys(str(i[4][0]) for i in infos if i[0] in families))
    if not addresses:
        raise UnresolvableHost(f"{host} has no IPv4 or IPv6 address")
    return addresses


def _host_and_port(url: str) -> tuple[str, int]:
    problem = scheme_problem(url)
    if problem:
        raise BlockedDestination(problem)
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _refuse_non_public(host: str, addresses: tuple[str, ...]) -> None:
    blocked = sorted({address for address in addresses if not is_public_address(address)})
    if blocked:
        raise BlockedDestination(
            f"{host} resolves to a non-public address ({', '.join(blocked)}); "
            "token requests to private, loopback or link-local networks are refused."
        )


def _refuse_by_name(host: str) -> None:
    """Refuse what the name alone says is not public (for a name resolved elsewhere)."""
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always loopback
        raise BlockedDestination(f"{host} is a loopback name; token requests to it are refused.")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return
    _refuse_non_public(host, (host,))


def resolve_destination(url: str) -> tuple[str, ...] | None:
    """The checked addresses to connect to for ``url``: the host resolved once, each of
    its addresses public. Connect only to these (never resolve the name again).

    None when ``OAUTH_ALLOW_PRIVATE_NETWORKS`` is on (local development): nothing is
    checked, so the connection resolves the name itself. Raises ``BlockedDestination``
    (scheme, or a non-public address) or ``UnresolvableHost``.
    """
    host, port = _host_and_port(url)
    if settings.OAUTH_ALLOW_PRIVATE_NETWORKS:
        return None
    _refuse_by_name(host)
    addresses = resolve(host, port)
    _refuse_non_public(host, addresses)
    return addresses


def check_destination(url: str) -> None:
    """Raise ``BlockedDestination`` unless ``url`` may be requested now.

    Resolves the host (after DNS, so a public name pointing inside is caught too) when
    private networks are not allowed. A name that does not resolve here is not refused:
    this check validates a URL requested later (a discovered endpoint) or through a
    proxy that resolves it; a direct request uses ``resolve_destination``, which refuses
    it and pins the address it checked.
    """
    host, port = _host_and_port(url)
    if settings.OAUTH_ALLOW_PRIVATE_NETWORKS:
        return
    _refuse_by_name(host)
    try:
        addresses = resolve(host, port)
    except UnresolvableHost:
        return
    _refuse_non_public(host, addresses)
