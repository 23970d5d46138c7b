"""Environment keys (``cpe_``): created once, stored hashed, revocable. The key shape,
hashing and throttling are customer keys' (``connections.api_keys``)."""

from __future__ import annotations

from collections.abc import Iterable

from api.models import EnvironmentKey, Scope
from connections.api_keys import key_find, key_generate

PREFIX = "cpe_"


def environment_key_create(*, name: str, scopes: Iterable[str]) -> tuple[EnvironmentKey, str]:
    """A new environment key holding ``scopes`` (``Scope`` values; ValueError for any
    other); returns the row and the key, which is never stored."""
    chosen = sorted(set(scopes))
    unknown = set(chosen) - set(Scope.values)
    if unknown or not chosen:
        raise ValueError(f"Choose scopes among {', '.join(Scope.values)}.")
    new = key_generate(PREFIX)
    key = EnvironmentKey.objects.create(
        name=name, prefix=new.prefix, key_hash=new.key_hash, scopes=chosen
    )
    return key, new.raw


def environment_key_authenticate(raw: str) -> EnvironmentKey | None:
    """The live EnvironmentKey ``raw`` belongs to, or None (malformed, unknown, revoked);
    records when it was used (``connections.api_keys.key_find``)."""
    return key_find(raw, PREFIX, EnvironmentKey.objects.all())


def environment_keys_revoke(*, keys: Iterable[EnvironmentKey]) -> int:
    """Revoke ``keys`` for good; returns how many were live."""
    pks = [key.pk for key in keys]
    return EnvironmentKey.objects.filter(pk__in=pks, revoked=False).update(revoked=True)
