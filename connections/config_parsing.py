"""Reading a config file of Apps and Connections: YAML or JSON text, its shape and types
checked, ``env:`` secrets resolved, into specs that :mod:`connections.config_files`
applies. The format is documented there. Nothing here touches the database.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from connections.config_presets import preset_defaults

Format = Literal["yaml", "json"]
FORMATS: tuple[Format, ...] = ("yaml", "json")
ENV_PREFIX = "env:"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigFileError(Exception):
    """The file is not a valid configuration; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


# --- Reading and writing files ------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # unhashable: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def config_format_for_path(*, path: str) -> Format:
    """``json`` for ``*.json`` files, ``yaml`` for everything else."""
    return "json" if path.lower().endswith(".json") else "yaml"


def config_parse(*, text: str, fmt: Format) -> object:
    """Parse ``text`` as YAML or JSON (duplicate keys are errors).

    Error messages give the line and column only, never the offending line: it may hold a
    secret.
    """
    if fmt == "json":
        try:
            return json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError as exc:
            raise ConfigFileError([f"invalid JSON: {exc}"]) from None
        except ValueError as exc:
            raise ConfigFileError([f"invalid JSON: {exc}"]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        where = ""
        if exc.problem_mark is not None:
            where = f" at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
        raise ConfigFileError([f"invalid YAML: {exc.problem or exc.context}{where}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigFileError([f"invalid YAML: {type(exc).__name__}"]) from None


def config_dump(*, data: Mapping[str, Any], fmt: Format) -> str:
    """``data`` (as returned by :func:`apps_export`) as YAML or JSON text."""
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    header = (
        "# Apps and Connections (manage.py export_apps). Secrets are never exported: a\n"
        "# missing client_secret keeps the stored one on import; for a new environment\n"
        "# add client_secret: env:NAME to each App.\n"
    )
    body = yaml.safe_dump(
        dict(data), sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    return header + body


# --- Validating the file's shape ----------------------------------------------------------

Checker = Callable[[object], object]


class _TypeProblem(Exception):
    pass


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _TypeProblem(f"expected a string, got {_type_name(value)}")
    return value


def _blank_string(value: object) -> str:
    return "" if value is None else _string(value)


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _TypeProblem(f"expected true or false, got {_type_name(value)}")
    return value


def _flavor(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _TypeProblem(f"expected a flavor number 1-6 or null, got {_type_name(value)}")
    return value


def _mapping(value: object, *, scalars: tuple[type, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _TypeProblem(f"expected a mapping, got {_type_name(value)}")
    for key, item in value.items():
        if not isinstance(key, str):
            raise _TypeProblem(f"keys must be strings, got {_type_name(key)}")
        if not isinstance(item, scalars):
            kinds = "a string" if scalars == (str,) else "a string, number or boolean"
            raise _TypeProblem(f"{key!r} must be {kinds}, got {_type_name(item)}")
    return dict(value)


def _params(value: object) -> dict[str, Any]:
    return _mapping(value, scalars=(str, int, float, bool))


def _headers(value: object) -> dict[str, Any]:
    return _mapping(value, scalars=(str,))


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise _TypeProblem(f"expected a list, got {_type_name(value)}")
    return list(value)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


APP_FIELDS: dict[str, Checker] = {
    "slug": _string,
    "name": _string,
    "grant_type": _string,
    "authorize_url": _blank_string,
    "token_url": _string,
    "revocation_url": _blank_string,
    "client_id": _string,
    "client_secret": _blank_string,
    "default_scopes": _blank_string,
    "scope_separator": _blank_string,
    "offline_strategy": _string,
    "use_pkce": _boolean,
    "prompt_consent": _boolean,
    "pinned_flavor": _flavor,
    "extra_authorize_params": _params,
    "extra_token_params": _params,
    "extra_token_headers": _headers,
    "token_path": _blank_string,
    "client_id_param": _blank_string,
    "client_secret_param": _blank_string,
    "preset": _blank_string,
    "docs_url": _blank_string,
    "customer_inputs": _list,
    "allowed_host_suffix": _blank_string,
    "reply_metadata": _list,
    "callback_metadata": _list,
}
CONNECTION_FIELDS: dict[str, Checker] = {
    "slug": _string,
    "name": _string,
    "scopes": _blank_string,
    "grant_type": _string,
    "description": _blank_string,
}
APP_REQUIRED_ON_CREATE = ("name", "token_url", "client_id")
CONNECTION_REQUIRED_ON_CREATE = ("name",)
# Written by export, in this order; client_secret never is.
APP_EXPORT_FIELDS = tuple(name for name in APP_FIELDS if name != "client_secret")


@dataclass
class ConnectionSpec:
    """A Connection of the file: its slug, the label errors name it by, its checked values."""

    slug: str
    label: str
    values: dict[str, Any]


@dataclass
class AppSpec:
    """An App of the file, with its Connections (None: the file does not list them)."""

    slug: str
    label: str
    values: dict[str, Any]
    connections: list[ConnectionSpec] | None
    defaults: dict[str, Any] = field(default_factory=dict)  # a preset's, for a new App


def _unknown_key(label: str, key: object, allowed: Mapping[str, object]) -> str:
    text = f"{label}: unknown key {key!r}"
    if isinstance(key, str):
        close = difflib.get_close_matches(key, list(allowed), n=1)
        if close:
            text += f" (did you mean {close[0]!r}?)"
    return text


def _check_fields(
    entry: dict[Any, Any],
    *,
    label: str,
    fields: Mapping[str, Checker],
    extra_keys: tuple[str, ...],
    errors: list[str],
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in entry.items():
        if key in extra_keys:
            continue
        if key not in fields:
            errors.append(_unknown_key(label, key, {**fields, **dict.fromkeys(extra_keys)}))
            continue
        try:
            values[key] = fields[key](raw)
        except _TypeProblem as exc:
            errors.append(f"{label}: {key}: {exc}")
    # The fields' own order, so that reports read the same whatever the file's order.
    return {name: values[name] for name in fields if name in values}


def _slug_of(entry: object, *, label: str, errors: list[str]) -> str | None:
    if not isinstance(entry, dict):
        errors.append(f"{label}: expected a mapping, got {_type_name(entry)}")
        return None
    slug = entry.get("slug")
    if not isinstance(slug, str) or not slug.strip():
        errors.append(f"{label}: slug: required, a non-empty string")
        return None
    return slug


def _resolve_secret(
    value: str, *, label: str, environ: Mapping[str, str], errors: list[str], warnings: list[str]
) -> str | None:
    if not value.startswith(ENV_PREFIX):
        if value:
            warnings.append(
                f"{label}: client_secret is a literal in the file; prefer "
                "client_secret: env:NAME so that the secret stays out of version control."
            )
        return value
    name = value[len(ENV_PREFIX) :].strip()
    if not _ENV_NAME.match(name):
        errors.append(f"{label}: client_secret: {name!r} is not an environment variable name")
        return None
    if name not in environ:
        errors.append(f"{label}: client_secret: environment variable {name} is not set")
        return None
    if not environ[name]:
        errors.append(f"{label}: client_secret: environment variable {name} is empty")
        return None
    return environ[name]


def _app_entries(data: object, errors: list[str]) -> list[Any]:
    """The file's ``apps`` list; a file of another shape raises at once (nothing else
    can be checked)."""
    if not isinstance(data, dict):
        raise ConfigFileError(
            [f"the file must be a mapping with an 'apps' list, not {_type_name(data)}"]
        )
    errors.extend(_unknown_key("file", key, {"apps": None}) for key in data if key != "apps")
    entries = data.get("apps")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigFileError([*errors, f"apps: expected a list, got {_type_name(entries)}"])
    return entries


def _app_values(
    entry: dict[Any, Any],
    *,
    label: str,
    environ: Mapping[str, str],
    errors: list[str],
    warnings: list[str],
) -> dict[str, Any]:
    """The App's checked fields, with an ``env:`` secret resolved (an unresolved one is
    left out, its error recorded)."""
    values = _check_fields(
        entry, label=label, fields=APP_FIELDS, extra_keys=("connections",), errors=errors
    )
    if "client_secret" in values:
        secret = _resolve_secret(
            values["client_secret"], label=label, environ=environ, errors=errors, warnings=warnings
        )
        if secret is None:
            del values["client_secret"]
        else:
            values["client_secret"] = secret
    return values


def _connection_specs(
    entry: dict[Any, Any], *, app_slug: str, label: str, seen: dict[str, str], errors: list[str]
) -> list[ConnectionSpec] | None:
    """The App's Connections; None when the entry has no ``connections`` key (its
    Connections stay as they are). ``seen`` maps each Connection slug met so far in the
    file to its App's slug: a slug is unique across the file."""
    if "connections" not in entry:
        return None
    raw_connections = entry["connections"]
    if raw_connections is None:
        return []
    if not isinstance(raw_connections, list):
        errors.append(f"{label}: connections: expected a list, got {_type_name(raw_connections)}")
        return None
    specs = []
    for position, raw in enumerate(raw_connections):
        slug = _slug_of(raw, label=f"{label}: connections[{position}]", errors=errors)
        if slug is None:
            continue
        connection_label = f"{label} connection {slug!r}"
        if slug in seen:
            errors.append(
                f"{connection_label}: slug already used in the file (under app {seen[slug]!r})"
            )
            continue
        seen[slug] = app_slug
        values = _check_fields(
            raw, label=connection_label, fields=CONNECTION_FIELDS, extra_keys=(), errors=errors
        )
        specs.append(ConnectionSpec(slug, connection_label, values))
    return specs


def specs_parse(data: object, *, environ: Mapping[str, str], warnings: list[str]) -> list[AppSpec]:
    """Check a parsed file's shape and types and resolve ``env:`` secrets from
    ``environ``; warnings (a literal secret) are appended to ``warnings``. Raises
    :class:`ConfigFileError` with every error found."""
    errors: list[str] = []
    specs: list[AppSpec] = []
    app_slugs: set[str] = set()
    connection_slugs: dict[str, str] = {}
    for index, entry in enumerate(_app_entries(data, errors)):
        slug = _slug_of(entry, label=f"apps[{index}]", errors=errors)
        if slug is None:
            continue
        label = f"app {slug!r}"
        if slug in app_slugs:
            errors.append(f"{label}: slug appears more than once in the file")
            continue
        app_slugs.add(slug)
        values = _app_values(entry, label=label, environ=environ, errors=errors, warnings=warnings)
        connections = _connection_specs(
            entry, app_slug=slug, label=label, seen=connection_slugs, errors=errors
        )
        defaults = preset_defaults(values, label=label, errors=errors)
        specs.append(AppSpec(slug, label, values, connections, defaults))
    if errors:
        raise ConfigFileError(errors)
    return specs
