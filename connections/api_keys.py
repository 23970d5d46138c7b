"""API keys: customer keys (``cpk_``) here, and the shape and checks every kind of key
shares (environment keys, ``cpe_``, live in ``api.keys``): created once, stored hashed,
checked in constant time, and failed attempts throttled.

A key reads ``<kind>_<prefix>_<secret>``: ``kind`` names what it is (``cpk``, ``cpe``),
``prefix`` (12 hex digits) finds its row, only the SHA-256 of ``secret`` is stored.

Throttling (``key_check``): failed attempts of any kind of key are counted in Django's
cache per client IP and per key prefix, in fixed windows. Once either reaches the limit
the check refuses every key from that IP or for that prefix, right or wrong, until the window ends
(``ApiKeyThrottled.retry_after``), so guessing learns nothing meanwhile. Successful
requests are never counted. Settings:

- ``API_KEY_FAILURE_LIMIT`` (default 20): failures per window per IP or per prefix;
- ``API_KEY_FAILURE_WINDOW`` (default 300): the window, in seconds;
- the client IP is django-axes' (``CLIENT_IP_HEADERS``, ``CLIENT_IP_PROXY_COUNT``), so
  logins and the API agree on who a client is; the cache is ``CACHE_URL``'s.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.core.cache import cache
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from connections.models import ApiKey, Customer

PREFIX = "cpk_"
# A well-formed key's kind and prefix, counted on their own (key_generate's shape).
KEY_SHAPE = re.compile(r"([a-z]{3})_([0-9a-f]{12})_")
MAX_KEY_LENGTH = 200
logger = logging.getLogger(__name__)
Found = TypeVar("Found")
K = TypeVar("K", bound=Model)
# Seconds between writes of a key's last_used_at (the admin shows it to the minute).
LAST_USED_RESOLUTION = 60


class ApiKeyThrottled(Exception):
    """Too many failed API keys from this client IP or for this key prefix."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed API key attempts; retry after {retry_after} s.")
        self.retry_after = retry_after


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: store ``prefix`` and ``key_hash``, show ``raw`` once."""

    prefix: str
    key_hash: str
    raw: str


def key_generate(kind: str) -> NewKey:
    """A new random key of ``kind`` (``"cpk_"``, ``"cpe_"``): a 12-hex-digit prefix and a
    43-character secret (256 bits)."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewKey(prefix=prefix, key_hash=_hash(secret), raw=f"{kind}{prefix}_{secret}")


def _key_split(raw: str, kind: str) -> tuple[str, str] | None:
    """``(prefix, secret)`` of a key of ``kind``, or None when ``raw`` is another kind or
    too long to be a key."""
    if not raw.startswith(kind) or len(raw) > MAX_KEY_LENGTH:
        return None
    prefix, _, secret = raw.removeprefix(kind).partition("_")
    return prefix, secret


def key_find(raw: str, kind: str, rows: QuerySet[K]) -> K | None:
    """The live row of ``rows`` (keys of ``kind``: ``prefix``, ``key_hash``, ``revoked``,
    ``last_used_at``) that ``raw`` belongs to, or None (malformed, unknown, revoked). The
    hash is compared in constant time. ``last_used_at`` is written at most once a
    ``LAST_USED_RESOLUTION`` seconds: one key may serve every request of a backend, and a
    write per request would queue them all on its row."""
    parts = _key_split(raw, kind)
    if parts is None:
        return None
    prefix, secret = parts
    key = rows.filter(prefix=prefix, revoked=False).first()
    if key is None or not hmac.compare_digest(key.serializable_value("key_hash"), _hash(secret)):
        return None
    now = timezone.now()
    stale = Q(last_used_at__isnull=True) | Q(
        last_used_at__lt=now - timedelta(seconds=LAST_USED_RESOLUTION)
    )
    rows.model._default_manager.filter(stale, pk=key.pk).update(last_used_at=now)
    return key


def api_key_create(*, customer: Customer, name: str) -> tuple[ApiKey, str]:
    """A new key for ``customer``; returns the row and the key, which is never stored."""
    new = key_generate(PREFIX)
    api_key = ApiKey.objects.create(
        customer=customer, name=name, prefix=new.prefix, key_hash=new.key_hash
    )
    return api_key, new.raw


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The live ApiKey ``raw`` belongs to, or None (malformed, unknown, revoked)."""
    return key_find(raw, PREFIX, ApiKey.objects.select_related("customer"))


def client_ip(request: HttpRequest) -> str:
    """The client's IP as django-axes sees it (REMOTE_ADDR unless a proxy is configured)."""
    return get_client_ip_address(request) or "unknown"


def _counter_keys(raw: str, ip: str, now: float) -> tuple[list[str], float]:
    """The cache keys of this attempt's counters (IP, and prefix when well-formed) in the
    current window, and the second the window ends."""
    window = max(1, settings.API_KEY_FAILURE_WINDOW)
    bucket = int(now // window)
    keys = [f"api-key-failures:ip:{ip}:{bucket}"]
    shape = KEY_SHAPE.match(raw)
    if shape:
        kind, prefix = shape.groups()
        keys.append(f"api-key-failures:prefix:{kind}_{prefix}:{bucket}")
    return keys, (bucket + 1) * window


def _count_failure(key: str, timeout: int) -> int:
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1


def key_check(raw: str, *, ip: str, authenticate: Callable[[str], Found | None]) -> Found | None:
    """``authenticate(raw)`` for a request from ``ip``, throttled: a failure counts
    against ``ip`` and the key's prefix, and raises ApiKeyThrottled while either is over
    ``API_KEY_FAILURE_LIMIT`` in the current window (one set of counters for every kind
    of key). A correct key always passes: a lockout of its prefix must not let anyone
    who learned a prefix cut an integration off (and a 43-character secret is not
    guessed in 20 tries)."""
    now = time.time()
    keys, window_end = _counter_keys(raw, ip, now)
    limit = settings.API_KEY_FAILURE_LIMIT
    retry_after = max(1, math.ceil(window_end - now))
    found = authenticate(raw)
    if found is None and any(count >= limit for count in cache.get_many(keys).values()):
        raise ApiKeyThrottled(retry_after)
    if found is None:
        counts = [_count_failure(key, retry_after + 1) for key in keys]
        if limit in counts:
            logger.warning(
                "API key attempts throttled for %s s: %s failures (%s)",
                retry_after,
                limit,
                ", ".join(
                    key.split(":")[1] for key, n in zip(keys, counts, strict=True) if n == limit
                ),
            )
    return found
