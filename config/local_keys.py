"""Local development keys, generated on first run and kept out of git.

Production passes ``DJANGO_SECRET_KEY`` and ``FIELD_ENCRYPTION_KEYS`` in the environment;
a laptop gets random ones written to ``var/local.env`` (git-ignored) the first time
settings load in debug mode, so that nothing secret is ever committed.
"""

from __future__ import annotations

import secrets
from pathlib import Path

LOCAL_ENV_NAMES = ("DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEYS")


def ensure_local_env(path: Path) -> None:
    """Create ``path`` with random keys for any of ``LOCAL_ENV_NAMES`` it lacks."""
    existing = path.read_text() if path.exists() else ""
    missing = [name for name in LOCAL_ENV_NAMES if f"{name}=" not in existing]
    if not missing:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        for name in missing:
            handle.write(f"{name}={secrets.token_urlsafe(48)}\n")
    path.chmod(0o600)
