"""Config as code: Apps and Connections imported from, and exported to, YAML or JSON.

``manage.py import_apps FILE`` and ``manage.py export_apps`` are thin wrappers around
:func:`apps_import` and :func:`apps_export`. Reading and checking a file is
:mod:`connections.config_parsing`'s; this module applies it to the database.

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

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Prefetch

from connections.config_parsing import (
    APP_EXPORT_FIELDS,
    APP_REQUIRED_ON_CREATE,
    CONNECTION_FIELDS,
    CONNECTION_REQUIRED_ON_CREATE,
    FORMATS,
    AppSpec,
    ConfigFileError,
    ConnectionSpec,
    Format,
    config_dump,
    config_format_for_path,
    config_parse,
    specs_parse,
)
from connections.config_presets import export_entry
from connections.models import App, Connection, GrantType

# The file API in one place for the commands: reading is config_parsing's.
__all__ = [
    "FORMATS",
    "ConfigFileError",
    "Format",
    "ImportReport",
    "ObjectResult",
    "apps_export",
    "apps_import",
    "config_dump",
    "config_format_for_path",
    "config_parse",
]

Action = Literal["created", "updated", "unchanged"]
CREATED: Action = "created"
UPDATED: Action = "updated"
UNCHANGED: Action = "unchanged"


# --- Reports ----------------------------------------------------------------------------


@dataclass
class ObjectResult:
    """What the import did to one App or Connection (field names only, never values)."""

    kind: Literal["app", "connection"]
    slug: str
    action: Action
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
    messages: list[str] = []
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
    spec: AppSpec | ConnectionSpec,
    *,
    kind: Literal["app", "connection"],
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
    action: Action = CREATED if created else (UPDATED if changed else UNCHANGED)
    report.results.append(ObjectResult(kind, spec.slug, action, [] if created else changed))
    return True


def _apply_app(spec: AppSpec, *, report: ImportReport, errors: list[str]) -> None:
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
    spec: ConnectionSpec, *, app: App, report: ImportReport, errors: list[str]
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
    specs = specs_parse(
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
