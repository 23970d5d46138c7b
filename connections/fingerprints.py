"""Showing a secret without showing it: a short, stable fingerprint."""

from __future__ import annotations

import hashlib


def fingerprint(value: str | None) -> str:
    """``sha256:`` and the first 12 hex digits of the SHA-256 of ``value``; "—" if empty.

    Enough to tell two tokens apart in the admin, useless for guessing one.
    """
    if not value:
        return "—"
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]
