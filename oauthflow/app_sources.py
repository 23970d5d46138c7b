"""Where an App's settings come from: a preset (``oauthflow.presets``) or discovery
from an issuer URL (``oauthflow.discovery``), as values for a new App."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from connections.models import App
from oauthflow.discovery import app_apply_discovery, discover
from oauthflow.presets import preset_get


def app_source_values(*, preset: str = "", issuer: str = "") -> dict[str, Any]:
    """App field values from ``preset`` (a catalogue name) and/or ``issuer`` (discovered
    now; its endpoints win over the preset's). Under ``"discovery"`` the fetched
    metadata rides along for ``app_apply_source``. Raises ``KeyError`` for an unknown
    preset and ``ConfigurationError`` when discovery fails."""
    values: dict[str, Any] = preset_get(preset).app_values() if preset else {}
    if issuer:
        draft = App(**{k: v for k, v in values.items() if k != "name"})
        metadata = discover(issuer)
        app_apply_discovery(app=draft, metadata=metadata)
        for name in (
            "authorize_url",
            "token_url",
            "revocation_url",
            "use_pkce",
            "prompt_consent",
            "default_scopes",
            "preferred_flavor",
        ):
            values[name] = getattr(draft, name)
        values["discovery"] = metadata
        if not values.get("name"):
            values["name"] = issuer_name(issuer)
    return values


def issuer_name(issuer: object) -> str:
    """A readable App name from an issuer URL (its host and path)."""
    return str(issuer).split("://", 1)[-1].rstrip("/")[:200]


def app_apply_source(*, app: App, values: dict[str, Any]) -> None:
    """Set on a new, unsaved ``app`` what its source says and its form does not carry:
    the flavor to try first, and the discovery record."""
    if values.get("preferred_flavor") and app.pinned_flavor is None:
        app.preferred_flavor = values["preferred_flavor"]
    metadata = values.get("discovery")
    if metadata is not None:
        app.discovery_url = metadata.url
        app.discovered_metadata = metadata.document
        app.discovered_at = timezone.now()
