"""Customer API keys for the token API: created once, stored hashed, checked in constant
time, and failed attempts throttled.

Throttling (``api_key_check``): failed attempts are counted in Django's cache per client
IP and per key prefix, in fixed windows. Once either reaches the limit the check refuses
every key from that IP or for that prefix, right or wrong, until the window ends
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

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone

from connections.models import ApiKey, Customer

PREFIX = "cpk_"
KEY_PREFIX = re.compile(r"[0-9a-f]{12}")  # api_key_create's prefix: counted on its own
logger = logging.getLogger(__name__)


class ApiKeyThrottled(Exception):
    """Too many failed API keys from this client IP or for this key prefix."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed API key attempts; retry after {retry_after} s.")
        self.retry_after = retry_after


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(*, customer: Customer, name: str) -> tuple[ApiKey, str]:
    """A new key for ``customer``; returns the row and the key, which is never stored."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        customer=customer, name=name, prefix=prefix, key_hash=_hash(secret)
    )
    return api_key, f"{PREFIX}{prefix}_{secret}"


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The live ApiKey ``raw`` belongs to, or None (malformed, unknown, revoked)."""
    if not raw.startswith(PREFIX) or len(raw) > 200:
        return None
    prefix, _, secret = raw.removeprefix(PREFIX).partition("_")
    api_key = ApiKey.objects.select_related("customer").filter(prefix=prefix, revoked=False).first()
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _hash(secret)):
        return None
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    return api_key


def client_ip(request: HttpRequest) -> str:
    """The client's IP as django-axes sees it (REMOTE_ADDR unless a proxy is configured)."""
    return get_client_ip_address(request) or "unknown"


def _counter_keys(raw: str, ip: str, now: float) -> tuple[list[str], float]:
    """The cache keys of this attempt's counters (IP, and prefix when well-formed) in the
    current window, and the second the window ends."""
    window = max(1, settings.API_KEY_FAILURE_WINDOW)
    bucket = int(now // window)
    keys = [f"api-key-failures:ip:{ip}:{bucket}"]
    prefix = raw.removeprefix(PREFIX).partition("_")[0] if raw.startswith(PREFIX) else ""
    if KEY_PREFIX.fullmatch(prefix):
        keys.append(f"api-key-failures:prefix:{prefix}:{bucket}")
    return keys, (bucket + 1) * window


def _count_failure(key: str, timeout: int) -> int:
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1


def api_key_check(raw: str, *, ip: str) -> ApiKey | None:
    """``api_key_authenticate`` for a request from ``ip``, throttled: a failure counts
    against ``ip`` and the key's prefix, and raises ApiKeyThrottled while either is over
    ``API_KEY_FAILURE_LIMIT`` in the current window. A correct key always passes: a
    lockout of its prefix must not let anyone who learned a prefix cut an integration
    off (and a 40-character secret is not guessed in 20 tries)."""
    now = time.time()
    keys, window_end = _counter_keys(raw, ip, now)
    limit = settings.API_KEY_FAILURE_LIMIT
    retry_after = max(1, math.ceil(window_end - now))
    api_key = api_key_authenticate(raw)
    if api_key is None and any(count >= limit for count in cache.get_many(keys).values()):
        raise ApiKeyThrottled(retry_after)
    if api_key is None:
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
    return api_key
