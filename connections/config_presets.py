"""Presets in config files: ``preset: google`` in an App entry, plus overrides.

Import: a preset fills the fields a **new** App's entry leaves out (the entry's own
values win); an existing App keeps its stored values, so a later preset change never
silently rewrites an admin's edits. Export: an App made from a preset is written as its
preset name and only the fields that differ from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connections.models import App
from oauthflow.presets import preset_get

ALWAYS_EXPORTED = ("slug", "name", "client_id", "preset")


def preset_defaults(values: dict[str, Any], *, label: str, errors: list[str]) -> dict[str, Any]:
    """The preset's values for the fields ``values`` leaves out (empty when there is
    no ``preset`` key); an unknown preset is an error naming the App."""
    name = values.get("preset")
    if not name:
        return {}
    try:
        preset = preset_get(name)
    except KeyError:
        errors.append(f"{label}: preset: unknown preset {name!r}")
        return {}
    return {key: value for key, value in preset.app_values().items() if key not in values}


def export_entry(app: App, fields: Iterable[str]) -> dict[str, Any]:
    """``app`` as an import entry: every field in ``fields``, or, for an App made from a
    preset, the preset's name and only what differs from it."""
    entry = {name: getattr(app, name) for name in fields}
    if not app.preset:
        return entry
    try:
        base = preset_get(app.preset).app_values()
    except KeyError:
        entry.pop("preset")  # since removed from the catalogue: every value, no name
        return entry
    defaults = {f.name: f.get_default() for f in App._meta.concrete_fields if f.name in entry}
    return {
        name: value
        for name, value in entry.items()
        if name in ALWAYS_EXPORTED or not _same(name, value, base.get(name, defaults.get(name)))
    }


def _same(name: str, value: object, base: object) -> bool:
    if name == "scope_separator":  # the admin form strips " " to "": both mean a space
        return (value or " ") == (base or " ")
    return value == base
