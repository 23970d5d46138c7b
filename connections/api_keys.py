"""Customer API keys for the token API: created once, stored hashed, checked in constant
time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.utils import timezone

from connections.models import ApiKey, Customer

PREFIX = "cpk_"


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
