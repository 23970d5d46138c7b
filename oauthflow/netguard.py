"""Where token requests may go: https only, and never into our own network (SSRF).

An admin-supplied token URL is a request the server makes on the admin's behalf. In
production (``OAUTH_ALLOW_PRIVATE_NETWORKS`` off) every address the host resolves to
must be public: loopback, private (RFC 1918, ULA), link-local (cloud metadata at
169.254.169.254), multicast and reserved ranges are refused. Plain ``http://`` is allowed
only for loopback hosts with ``OAUTH_ALLOW_HTTP_LOOPBACK`` (local development).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class BlockedDestination(Exception):
    """The URL may not be requested; the message says why."""


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


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_destination(url: str) -> None:
    """Raise ``BlockedDestination`` unless ``url`` may be requested now.

    Resolves the host (after DNS, so a public name pointing inside is caught too) when
    private networks are not allowed.
    """
    problem = scheme_problem(url)
    if problem:
        raise BlockedDestination(problem)
    if settings.OAUTH_ALLOW_PRIVATE_NETWORKS:
        return
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return  # unresolvable: the request itself fails with a DNS error, named as such
    blocked = sorted({info[4][0] for info in infos if not _public(info[4][0])})
    if blocked:
        raise BlockedDestination(
            f"{parts.hostname} resolves to a non-public address ({', '.join(blocked)}); "
            "token requests to private, loopback or link-local networks are refused."
        )
