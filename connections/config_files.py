"""Config as code: Apps and Connections imported from, and exported to, YAML or JSON.

``manage.py import_apps FILE`` and ``manage.py export_apps`` are thin wrappers around
:func:`apps_import` and :func:`apps_export`.

File format
-----------
One mapping with a single key, ``apps``: a list of Apps, each with an optional list of
its Connections. The same structure in YAML or JSON (``.json`` files are read as JSON,
everything else as YAML)::

    apps:
      - slug: sandbox                      # required; Apps are matched by slug
        name: Sandbox                      # required for a new App
        grant_type: authorization_code     # or client_credentials
        authorize_url: https://auth.example.com/authorize
        token_url: https://auth.example.com/token    # required for a new App
        revocation_url: https://auth.example.com/revoke   # optional (RFC 7009)
        client_id: abc-123                 # required for a new App
        client_secret: env:SANDBOX_CLIENT_SECRET     # see "Secrets" below
        default_scopes: read write offline_access
        scope_separator: " "
        offline_strategy: offline_access   # access_type=offline, duration=permanent,
                                           # token_access_type=offline, none
        use_pkce: true
        prompt_consent: false
        pinned_flavor: null                # 1-6, or null to try every flavor
        extra_authorize_params: {}         # name: string/number/boolean
        extra_token_params: {}             # name: string/number/boolean
        extra_token_headers: {}            # name: string
        connections:
          - slug: sandbox-widgets          # required; Connections are matched by slug
            name: Widgets                  # required for a new Connection
            scopes: read write offline_access   # blank: the App's default_scopes
            grant_type: authorization_code # default for a new Connection: the App's
            description: ""

Rules
-----
* **Merge, never delete.** A key left out keeps the stored value (a new object gets
  the model's default). Apps and Connections missing from the file are left alone, and
  an App without a ``connections`` key keeps its Connections as they are: deleting a
  Connection would delete every customer's tokens, so that stays a deliberate act in
  the admin. A Connection cannot move to another App by import.
* **Strict.** Unknown keys, duplicate keys or slugs, wrong types, bad choices, invalid
  URLs (the model's ``full_clean()``: https only, http just for loopback hosts when
  ``settings.OAUTH_ALLOW_HTTP_LOOPBACK`` is on) are errors naming the App slug and the
  field. Errors are reported together (the file's shape and types first, then the
  model's validation), and then **nothing** is written: the whole import is one
  transaction. ``--dry-run`` validates and reports, then rolls back.
* **Idempotent.** Objects are saved only when a value differs, so importing the same
  file twice reports everything ``unchanged`` the second time and writes nothing.

Secrets
-------
``client_secret: env:NAME`` reads the secret from the environment variable ``NAME``; an
unset or empty variable is an error naming it. A literal secret is accepted with a
warning (it would sit in version control). ``client_secret: ""`` clears the secret (a
public client). **No ``client_secret`` key keeps the stored secret.** Any value starting
with ``env:`` is a reference, never a literal.

Export never writes secrets: it **omits** the ``client_secret`` key, so importing an
export keeps every stored secret and reports ``unchanged``. To create the Apps in a fresh
environment, add ``client_secret: env:NAME`` lines. Secret values never appear in
reports, warnings or errors: a changed secret is reported as ``client_secret`` among the
changed fields.

Warnings (the import still succeeds): a literal secret; leading or trailing whitespace in
the client ID or secret; an App without a secret; scopes without ``offline_access`` for
Apps that get refresh tokens by that scope.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Prefetch

from connections.config_presets import export_entry, preset_defaults
from connections.models import App, Connection, GrantType

Format = Literal["yaml", "json"]
FORMATS: tuple[Format, ...] = ("yaml", "json")
ENV_PREFIX = "env:"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"


class ConfigFileError(Exception):
    """The file is not a valid configuration; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


# --- Reports ----------------------------------------------------------------------------


@dataclass
class ObjectResult:
    """What the import did to one App or Connection (field names only, never values)."""

    kind: Literal["app", "connection"]
    slug: str
    action: Literal["created", "updated", "unchanged"]
    changed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.kind} {self.slug}: {self.action}"
        if self.action == UPDATED:
            text += f" (changed: {', '.join(self.changed)})"
        return text


@dataclass
class ImportReport:
    """Per-object outcomes and warnings of one import; ``dry_run``: nothing was written."""

    dry_run: bool = False
    results: list[ObjectResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for result in self.results if result.action == action)

    @property
    def has_changes(self) -> bool:
        return any(result.action != UNCHANGED for result in self.results)

    @property
    def summary(self) -> str:
        text = ", ".join(
            f"{self.count(action)} {action}" for action in (CREATED, UPDATED, UNCHANGED)
        )
        if self.dry_run:
            text += " (dry run: nothing written)"
        return text


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
class _ConnectionSpec:
    slug: str
    label: str
    values: dict[str, Any]


@dataclass
class _AppSpec:
    slug: str
    label: str
    values: dict[str, Any]
    connections: list[_ConnectionSpec] | None
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


def _parse(data: object, *, environ: Mapping[str, str], warnings: list[str]) -> list[_AppSpec]:
    """Check the file's shape and resolve ``env:`` secrets; raise every error found."""
    errors: list[str] = []
    if not isinstance(data, dict):
        raise ConfigFileError(
            [f"the file must be a mapping with an 'apps' list, not {_type_name(data)}"]
        )
    for key in data:
        if key != "apps":
            errors.append(_unknown_key("file", key, {"apps": None}))
    entries = data.get("apps")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise ConfigFileError([*errors, f"apps: expected a list, got {_type_name(entries)}"])

    specs: list[_AppSpec] = []
    app_slugs: set[str] = set()
    connection_slugs: dict[str, str] = {}
    for index, entry in enumerate(entries):
        slug = _slug_of(entry, label=f"apps[{index}]", errors=errors)
        if slug is None:
            continue
        label = f"app {slug!r}"
        if slug in app_slugs:
            errors.append(f"{label}: slug appears more than once in the file")
            continue
        app_slugs.add(slug)
        values = _check_fields(
            entry, label=label, fields=APP_FIELDS, extra_keys=("connections",), errors=errors
        )
        if "client_secret" in values:
            secret = _resolve_secret(
                values["client_secret"],
                label=label,
                environ=environ,
                errors=errors,
                warnings=warnings,
            )
            if secret is None:
                del values["client_secret"]
            else:
                values["client_secret"] = secret

        connections: list[_ConnectionSpec] | None = None
        raw_connections = entry.get("connections")
        if "connections" in entry and raw_connections is None:
            raw_connections = []
        if raw_connections is not None:
            if not isinstance(raw_connections, list):
                errors.append(
                    f"{label}: connections: expected a list, got {_type_name(raw_connections)}"
                )
            else:
                connections = []
                for position, raw in enumerate(raw_connections):
                    connection_slug = _slug_of(
                        raw, label=f"{label}: connections[{position}]", errors=errors
                    )
                    if connection_slug is None:
                        continue
                    connection_label = f"{label} connection {connection_slug!r}"
                    if connection_slug in connection_slugs:
                        errors.append(
                            f"{connection_label}: slug already used in the file "
                            f"(under app {connection_slugs[connection_slug]!r})"
                        )
                        continue
                    connection_slugs[connection_slug] = slug
                    connection_values = _check_fields(
                        raw,
                        label=connection_label,
                        fields=CONNECTION_FIELDS,
                        extra_keys=(),
                        errors=errors,
                    )
                    connections.append(
                        _ConnectionSpec(connection_slug, connection_label, connection_values)
                    )
        defaults = preset_defaults(values, label=label, errors=errors)
        specs.append(_AppSpec(slug, label, values, connections, defaults))
    if errors:
        raise ConfigFileError(errors)
    return specs


# --- Applying ---------------------------------------------------------------------------


def _assign(instance: models.Model, values: Mapping[str, Any]) -> list[str]:
    """Set ``values`` on ``instance``; the names of the fields whose value changed."""
    changed = []
    for name, value in values.items():
        current = getattr(instance, name)
        if name == "client_secret":
            current = current or ""
        if current != value:
            setattr(instance, name, value)
            changed.append(name)
    return changed


def _validation_messages(label: str, exc: ValidationError) -> list[str]:
    if not hasattr(exc, "error_dict"):
        return [f"{label}: {message}" for message in exc.messages]
    messages = []
    for name, field_errors in exc.message_dict.items():
        prefix = label if name == "__all__" else f"{label}: {name}"
        messages.extend(f"{prefix}: {message}" for message in field_errors)
    return messages


def _missing_required(
    label: str, values: Mapping[str, Any], required: tuple[str, ...]
) -> list[str]:
    missing = [name for name in required if name not in values]
    if not missing:
        return []
    return [f"{label}: {name}: required for a new object" for name in missing]


def _save(
    obj: App | Connection,
    spec: _AppSpec | _ConnectionSpec,
    *,
    kind: str,
    created: bool,
    report: ImportReport,
    errors: list[str],
) -> bool:
    """Assign ``spec``'s values, validate, save if anything changed, and report it;
    False (with the reasons in ``errors``) when the object is invalid."""
    changed = _assign(obj, spec.values)
    try:
        obj.full_clean()
    except ValidationError as exc:
        errors.extend(_validation_messages(spec.label, exc))
        return False
    if created or changed:
        obj.save()
    action = CREATED if created else (UPDATED if changed else UNCHANGED)
    report.results.append(ObjectResult(kind, spec.slug, action, [] if created else changed))
    return True


def _apply_app(spec: _AppSpec, *, report: ImportReport, errors: list[str]) -> None:
    app = App.objects.filter(slug=spec.slug).first()
    created = app is None
    if app is None:
        # A preset fills what a new App's entry leaves out; an existing App keeps its
        # values (a later preset change never rewrites an admin's edits).
        spec.values = {**spec.defaults, **spec.values}
        problems = _missing_required(spec.label, spec.values, APP_REQUIRED_ON_CREATE)
        if problems:
            errors.extend(problems)
            return
        app = App(slug=spec.slug, preferred_flavor=spec.defaults.get("preferred_flavor"))
    if not _save(app, spec, kind="app", created=created, report=report, errors=errors):
        return

    report.warnings.extend(f"{spec.label}: {text}" for text in app.credential_whitespace_warnings)
    if not app.client_secret:
        report.warnings.append(
            f"{spec.label}: no client secret is stored; fine for a public client, otherwise "
            "add client_secret: env:NAME."
        )
    offline = app.offline_access_warning(app.default_scopes)
    if offline:
        report.warnings.append(f"{spec.label}: default_scopes: {offline}")
    for connection_spec in spec.connections or []:
        _apply_connection(connection_spec, app=app, report=report, errors=errors)


def _apply_connection(
    spec: _ConnectionSpec, *, app: App, report: ImportReport, errors: list[str]
) -> None:
    connection = Connection.objects.select_related("app").filter(slug=spec.slug).first()
    created = connection is None
    if connection is None:
        problems = _missing_required(spec.label, spec.values, CONNECTION_REQUIRED_ON_CREATE)
        if problems:
            errors.extend(problems)
            return
        connection = Connection(app=app, slug=spec.slug, grant_type=app.grant_type)
    elif connection.app_id != app.pk:
        errors.append(
            f"{spec.label}: slug belongs to a Connection of app {connection.app.slug!r}; "
            "a Connection cannot move to another App by import"
        )
        return
    if not _save(
        connection, spec, kind="connection", created=created, report=report, errors=errors
    ):
        return
    offline = app.offline_access_warning(connection.scopes) if connection.scopes else None
    if offline and connection.grant_type == GrantType.AUTHORIZATION_CODE:
        report.warnings.append(f"{spec.label}: scopes: {offline}")


def apps_import(
    *, data: object, dry_run: bool = False, environ: Mapping[str, str] | None = None
) -> ImportReport:
    """Create or update the Apps and Connections in ``data`` (a parsed config file).

    All or nothing: any error raises :class:`ConfigFileError` listing every problem, and
    nothing is written. With ``dry_run`` everything is validated (including uniqueness
    against the database) and reported, then rolled back. ``environ`` (default:
    ``os.environ``) resolves ``env:NAME`` secrets.
    """
    report = ImportReport(dry_run=dry_run)
    specs = _parse(
        data, environ=os.environ if environ is None else environ, warnings=report.warnings
    )
    errors: list[str] = []
    with transaction.atomic():
        for spec in specs:
            _apply_app(spec, report=report, errors=errors)
        if errors:
            raise ConfigFileError(errors)
        if dry_run:
            transaction.set_rollback(True)
    return report


def apps_export() -> dict[str, Any]:
    """Every App with its Connections, in the import format, ordered by slug; no secrets."""
    apps = App.objects.order_by("slug").prefetch_related(
        Prefetch("connections", queryset=Connection.objects.order_by("slug"))
    )
    exported = []
    for app in apps:
        entry: dict[str, Any] = export_entry(app, APP_EXPORT_FIELDS)
        entry["connections"] = [
            {name: getattr(connection, name) for name in CONNECTION_FIELDS}
            for connection in app.connections.all()
        ]
        exported.append(entry)
    return {"apps": exported}
