"""The catalogue of provider presets: known apps, as data (``presets.yaml``).

A preset holds what an admin would otherwise look up in an app's OAuth documentation:
the authorization and token endpoints (RFC 6749 §3.1, §3.2), the RFC 7009 revocation
endpoint when the app has one, default scopes and their separator (§3.3), how the app is
asked for a refresh token, PKCE (RFC 7636), the client-authentication style the app
documents (§2.3.1, as a flavor number), where the tokens are in the reply, which reply
fields and callback parameters integrations need, and the values each customer types
before Connect (a subdomain) with the domain every templated URL must stay under.

The YAML is read once (``functools.cache``), checked against ``CATALOGUE_SCHEMA`` with
``jsonschema`` and then by rules a schema cannot state: every URL is https; every
``{placeholder}`` names a declared customer input; customer inputs imply an
``allowed_host_suffix`` that every templated host ends with; input patterns compile and
are anchored ``^…$``. A catalogue that breaks a rule raises ``PresetError`` naming the
entry and the field.

Not in the catalogue: Keycloak. It is self-hosted, so its host is whatever each
deployment chose; no vendor-run domain exists to pin ``allowed_host_suffix`` to, and a
placeholder host without a suffix would let a customer point token requests (carrying
the client secret) at any server. Make a Keycloak App from its discovery document
(``https://<host>/realms/<realm>/.well-known/openid-configuration``) instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

CATALOGUE_PATH = Path(__file__).with_name("presets.yaml")

OFFLINE_STRATEGIES = (
    "offline_access",
    "access_type=offline",
    "duration=permanent",
    "token_access_type=offline",
    "none",
)
URL_FIELDS = ("authorize_url", "token_url", "revocation_url", "docs_url")
TEMPLATED_URL_FIELDS = ("authorize_url", "token_url", "revocation_url")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

_FLAT_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_SLUG = "^[a-z0-9][a-z0-9-]{0,63}$"

CATALOGUE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "name",
            "display_name",
            "docs_url",
            "authorize_url",
            "token_url",
            "offline_strategy",
            "use_pkce",
            "quirks",
            "source",
        ],
        "properties": {
            "name": {"type": "string", "pattern": _SLUG},
            "display_name": {"type": "string", "minLength": 1},
            "docs_url": {"type": "string", "minLength": 1},
            "authorize_url": {"type": "string", "minLength": 1},
            "token_url": {"type": "string", "minLength": 1},
            "revocation_url": {"type": "string"},
            "default_scopes": {"type": "string"},
            "scope_separator": {"type": "string", "minLength": 1, "maxLength": 4},
            "offline_strategy": {"enum": list(OFFLINE_STRATEGIES)},
            "prompt_consent": {"type": "boolean"},
            "use_pkce": {"type": "boolean"},
            "extra_authorize_params": _FLAT_MAP,
            "extra_token_params": _FLAT_MAP,
            "preferred_flavor": {"enum": [None, 1, 2, 3, 4, 5, 6]},
            "token_path": {"type": "string", "pattern": r"^([A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*)?$"},
            "client_id_param": {"type": "string", "pattern": "^[A-Za-z0-9_]+$"},
            "grant_type": {"const": "authorization_code"},
            "reply_metadata": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "callback_metadata": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "customer_inputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "label", "help", "pattern"],
                    "properties": {
                        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"},
                        "label": {"type": "string", "minLength": 1},
                        "help": {"type": "string"},
                        "pattern": {"type": "string", "minLength": 2},
                    },
                },
            },
            "allowed_host_suffix": {"type": "string"},
            "quirks": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "source": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1},
            },
        },
    },
}


class PresetError(ValueError):
    """The preset catalogue is invalid: the message names the entry and the field."""

    def __init__(self, entry: str, field_name: str, problem: str) -> None:
        self.entry = entry
        self.field = field_name
        self.problem = problem
        super().__init__(f"preset {entry!r}, field {field_name!r}: {problem}")


@dataclass(frozen=True)
class CustomerInput:
    """A value each customer types before Connect (e.g. ``subdomain``), used in the
    preset's URLs as ``{name}`` and checked against ``pattern`` (anchored ``^…$``)."""

    name: str
    label: str
    help: str
    pattern: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "label": self.label, "help": self.help, "pattern": self.pattern}


@dataclass(frozen=True)
class Preset:
    """One catalogue entry: a known app's OAuth 2.0 facts, from which an App is made.

    URLs are https and may hold ``{placeholder}`` names of ``customer_inputs``; then
    every templated host ends with ``allowed_host_suffix``. ``default_scopes`` is
    space-separated here whatever the app wants on the wire (``scope_separator``).
    ``preferred_flavor`` is the token-request flavor (1-6, ``oauthflow.flavors``) the
    app's documentation prescribes, or None when it documents none or several.
    """

    name: str
    display_name: str
    docs_url: str
    authorize_url: str
    token_url: str
    revocation_url: str = ""
    default_scopes: str = ""
    scope_separator: str = " "
    offline_strategy: str = "none"
    prompt_consent: bool = False
    use_pkce: bool = False
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    extra_token_params: Mapping[str, str] = field(default_factory=dict)
    preferred_flavor: int | None = None
    token_path: str = ""
    client_id_param: str = "client_id"
    grant_type: str = "authorization_code"
    reply_metadata: tuple[str, ...] = ()
    callback_metadata: tuple[str, ...] = ()
    customer_inputs: tuple[CustomerInput, ...] = ()
    allowed_host_suffix: str = ""
    quirks: tuple[str, ...] = ()
    source: tuple[str, ...] = ()

    @property
    def scopes(self) -> list[str]:
        """``default_scopes`` as a list."""
        return self.default_scopes.split()

    def app_values(self) -> dict[str, object]:
        """Field values for a new ``connections.models.App`` made from this preset:
        the OAuth settings, ``preset`` (this preset's name) and ``name`` (its display
        name). Fresh copies: changing them does not change the preset. The caller adds
        ``slug``, ``client_id`` and ``client_secret``."""
        return {
            "name": self.display_name,
            "preset": self.name,
            "authorize_url": self.authorize_url,
            "token_url": self.token_url,
            "revocation_url": self.revocation_url,
            "default_scopes": self.default_scopes,
            "scope_separator": self.scope_separator,
            "offline_strategy": self.offline_strategy,
            "prompt_consent": self.prompt_consent,
            "use_pkce": self.use_pkce,
            "extra_authorize_params": dict(self.extra_authorize_params),
            "extra_token_params": dict(self.extra_token_params),
            "preferred_flavor": self.preferred_flavor,
            "token_path": self.token_path,
            "client_id_param": self.client_id_param,
            "grant_type": self.grant_type,
            "docs_url": self.docs_url,
            "customer_inputs": [item.as_dict() for item in self.customer_inputs],
            "allowed_host_suffix": self.allowed_host_suffix,
            "reply_metadata": list(self.reply_metadata),
            "callback_metadata": list(self.callback_metadata),
        }


def _entry_label(data: Any, index: int) -> str:
    entry = data[index] if isinstance(data, list) and index < len(data) else None
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        return entry["name"]
    return f"#{index}"


def _schema_check(data: Any) -> None:
    validator = jsonschema.Draft202012Validator(CATALOGUE_SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    path = list(error.absolute_path)
    if not path:
        raise PresetError("(catalogue)", "(root)", error.message)
    entry = _entry_label(data, int(path[0]))
    field_name = ".".join(str(part) for part in path[1:]) or "(entry)"
    raise PresetError(entry, field_name, error.message)


def _placeholders(text: str, *, entry: str, field_name: str) -> list[str]:
    names = PLACEHOLDER.findall(text)
    if PLACEHOLDER.sub("", text).count("{") or PLACEHOLDER.sub("", text).count("}"):
        raise PresetError(entry, field_name, f"unbalanced braces in {text!r}")
    return names


def _inputs_check(entry: str, raw: dict[str, Any]) -> tuple[list[str], str]:
    """The entry's customer input names and host suffix, once their rules hold: names
    unique, patterns anchored ``^…$`` and compiling, a fixed domain when there are
    inputs."""
    inputs = raw.get("customer_inputs", [])
    input_names = [item["name"] for item in inputs]
    if len(set(input_names)) != len(input_names):
        raise PresetError(entry, "customer_inputs", "input names repeat")
    for position, item in enumerate(inputs):
        pattern = item["pattern"]
        where = f"customer_inputs.{position}.pattern"
        if not (pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$")):
            raise PresetError(entry, where, f"{pattern!r} is not anchored with ^...$")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise PresetError(entry, where, f"{pattern!r} does not compile: {exc}") from exc
    suffix = raw.get("allowed_host_suffix", "")
    if inputs and not suffix:
        raise PresetError(
            entry, "allowed_host_suffix", "customer inputs need the domain their URLs stay under"
        )
    if suffix and (suffix != suffix.lower() or PLACEHOLDER.search(suffix) or "." not in suffix):
        raise PresetError(entry, "allowed_host_suffix", f"{suffix!r} is not a fixed domain")
    return input_names, suffix


def _url_check(
    entry: str, field_name: str, url: str, *, input_names: list[str], suffix: str
) -> None:
    """One URL field: https, no credentials, placeholders naming inputs (none in the
    docs link), and a templated host that stays under ``suffix``."""
    names = _placeholders(url, entry=entry, field_name=field_name)
    parts = urlsplit(PLACEHOLDER.sub("x", url))
    if parts.scheme != "https" or not parts.netloc:
        raise PresetError(entry, field_name, f"{url!r} is not an https URL")
    if "@" in parts.netloc:
        raise PresetError(entry, field_name, f"{url!r} carries credentials")
    if field_name == "docs_url" and names:
        raise PresetError(entry, field_name, "the docs link cannot hold placeholders")
    for name in names:
        if name not in input_names:
            raise PresetError(entry, field_name, f"placeholder {{{name}}} names no customer input")
    host = urlsplit(url).netloc
    if PLACEHOLDER.search(host):
        fixed_tail = host[host.rfind("}") + 1 :]
        if not suffix or not fixed_tail.endswith(f".{suffix}"):
            raise PresetError(
                entry, field_name, f"templated host {host!r} does not end with .{suffix}"
            )


def _params_check(entry: str, raw: dict[str, Any], *, input_names: list[str]) -> None:
    """Placeholders in the extra parameters name declared inputs."""
    for field_name in ("extra_authorize_params", "extra_token_params"):
        for key, value in raw.get(field_name, {}).items():
            for name in _placeholders(value, entry=entry, field_name=f"{field_name}.{key}"):
                if name not in input_names:
                    raise PresetError(
                        entry, f"{field_name}.{key}", f"placeholder {{{name}}} names no input"
                    )


def _entry_check(raw: dict[str, Any]) -> None:
    """The rules the JSON Schema cannot state, for one schema-valid entry."""
    entry = raw["name"]
    input_names, suffix = _inputs_check(entry, raw)
    for field_name in URL_FIELDS:
        url = raw.get(field_name, "")
        if url:
            _url_check(entry, field_name, url, input_names=input_names, suffix=suffix)
    _params_check(entry, raw, input_names=input_names)
    for position, url in enumerate(raw["source"]):
        if urlsplit(url).scheme != "https":
            raise PresetError(entry, f"source.{position}", f"{url!r} is not an https URL")
    scopes = raw.get("default_scopes", "").split()
    if raw["offline_strategy"] == "offline_access" and "offline_access" not in scopes:
        raise PresetError(
            entry, "default_scopes", "offline_strategy offline_access needs that scope"
        )


def _preset_from(raw: dict[str, Any]) -> Preset:
    values = dict(raw)
    values["extra_authorize_params"] = dict(raw.get("extra_authorize_params", {}))
    values["extra_token_params"] = dict(raw.get("extra_token_params", {}))
    values["customer_inputs"] = tuple(
        CustomerInput(**item) for item in raw.get("customer_inputs", [])
    )
    for name in ("reply_metadata", "callback_metadata", "quirks", "source"):
        values[name] = tuple(raw.get(name, ()))
    return Preset(**values)


def catalogue_validate(data: Any) -> list[Preset]:
    """Check a parsed catalogue (a list of entry mappings) and build its presets, in
    file order. Raises ``PresetError`` naming the first bad entry and field."""
    _schema_check(data)
    seen: set[str] = set()
    presets = []
    for raw in data:
        if raw["name"] in seen:
            raise PresetError(raw["name"], "name", "the name is used twice")
        seen.add(raw["name"])
        _entry_check(raw)
        presets.append(_preset_from(raw))
    return presets


def presets_load(path: Path | str) -> list[Preset]:
    """Read and validate the catalogue at ``path`` (YAML), uncached. Raises
    ``PresetError`` for an invalid catalogue, also for YAML that does not parse;
    ``OSError`` when the file cannot be read."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PresetError("(catalogue)", "(file)", f"{path} is not valid YAML: {exc}") from exc
    return catalogue_validate(data)


@functools.cache
def _catalogue() -> dict[str, Preset]:
    presets = presets_load(CATALOGUE_PATH)
    return {preset.name: preset for preset in presets}


def presets_all() -> list[Preset]:
    """Every preset, sorted by display name (case-insensitive). The catalogue is read
    and validated once per process; ``PresetError`` if it is invalid."""
    return sorted(_catalogue().values(), key=lambda preset: preset.display_name.casefold())


def preset_get(name: str) -> Preset:
    """The preset called ``name`` (its slug, e.g. ``google``). Raises ``KeyError`` with
    the known names when there is none; ``PresetError`` if the catalogue is invalid."""
    catalogue = _catalogue()
    try:
        return catalogue[name]
    except KeyError:
        known = ", ".join(sorted(catalogue))
        raise KeyError(f"no preset named {name!r}; known presets: {known}") from None


def preset_exists(name: str) -> bool:
    """Whether the catalogue has a preset called ``name``."""
    return name in _catalogue()
