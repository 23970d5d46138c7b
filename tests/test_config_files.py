"""Config as code: import_apps and export_apps (connections/config_files.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from connections.models import App, Connection
from tests.factories import AppFactory, ConnectionFactory

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-from-the-environment"

SANDBOX_YAML = """\
apps:
  - slug: sandbox
    name: Sandbox
    grant_type: authorization_code
    authorize_url: https://auth.example.com/authorize
    token_url: https://auth.example.com/token
    client_id: abc-123
    client_secret: env:SANDBOX_CLIENT_SECRET
    default_scopes: read write offline_access
    scope_separator: " "
    offline_strategy: offline_access
    use_pkce: true
    prompt_consent: false
    pinned_flavor: null
    extra_authorize_params: {audience: api.example.com}
    extra_token_params: {}
    extra_token_headers: {}
    connections:
      - slug: sandbox-widgets
        name: Widgets
        scopes: read write offline_access
        grant_type: authorization_code
        description: ""
"""


def sandbox_app(**overrides: object) -> dict[str, object]:
    app: dict[str, object] = {
        "slug": "sandbox",
        "name": "Sandbox",
        "authorize_url": "https://auth.example.com/authorize",
        "token_url": "https://auth.example.com/token",
        "client_id": "abc-123",
        "client_secret": "env:SANDBOX_CLIENT_SECRET",
        "default_scopes": "read write offline_access",
        "connections": [{"slug": "sandbox-widgets", "name": "Widgets"}],
    }
    app.update(overrides)
    return app


@pytest.fixture(autouse=True)
def _sandbox_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_CLIENT_SECRET", SECRET)


def write(tmp_path: Path, data: object, name: str = "apps.yaml") -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data)
    elif name.endswith(".json"):
        path.write_text(json.dumps(data))
    else:
        path.write_text(yaml.safe_dump(data))
    return path


def run(command: str, *args: str) -> tuple[str, str]:
    """Run a management command; its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- Creating -----------------------------------------------------------------------------


def test_import_yaml_creates_app_and_connection(tmp_path: Path) -> None:
    out, err = run("import_apps", str(write(tmp_path, SANDBOX_YAML)))

    app = App.objects.get(slug="sandbox")
    assert app.name == "Sandbox"
    assert app.token_url == "https://auth.example.com/token"
    assert app.client_secret == SECRET
    assert app.extra_authorize_params == {"audience": "api.example.com"}
    assert app.use_pkce is True
    connection = Connection.objects.get(slug="sandbox-widgets")
    assert connection.app == app
    assert connection.scopes == "read write offline_access"
    assert "app sandbox: created" in out
    assert "connection sandbox-widgets: created" in out
    assert SECRET not in out + err


def test_import_json_creates_app(tmp_path: Path) -> None:
    path = write(tmp_path, {"apps": [sandbox_app()]}, name="apps.json")

    out, _ = run("import_apps", str(path))

    assert App.objects.get(slug="sandbox").client_secret == SECRET
    assert Connection.objects.filter(slug="sandbox-widgets", app__slug="sandbox").exists()
    assert "2 created" in out


def test_new_connection_defaults_to_its_apps_grant_type(tmp_path: Path) -> None:
    data = {
        "apps": [sandbox_app(grant_type="client_credentials", authorize_url="", default_scopes="")]
    }
    run("import_apps", str(write(tmp_path, data)))

    assert Connection.objects.get(slug="sandbox-widgets").grant_type == "client_credentials"


# --- Idempotence and updates ----------------------------------------------------------------


def test_second_import_reports_unchanged_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, SANDBOX_YAML)
    run("import_apps", str(path))
    app_before = App.objects.get(slug="sandbox").updated_at

    out, _ = run("import_apps", str(path))

    assert "app sandbox: unchanged" in out
    assert "connection sandbox-widgets: unchanged" in out
    assert "0 created, 0 updated, 2 unchanged" in out
    assert App.objects.get(slug="sandbox").updated_at == app_before


def test_update_changes_a_field_and_names_it(tmp_path: Path) -> None:
    run("import_apps", str(write(tmp_path, {"apps": [sandbox_app()]})))

    changed = sandbox_app(token_url="https://auth.example.com/oauth/token", pinned_flavor=3)
    out, _ = run("import_apps", str(write(tmp_path, {"apps": [changed]})))

    app = App.objects.get(slug="sandbox")
    assert app.token_url == "https://auth.example.com/oauth/token"
    assert app.pinned_flavor == 3
    assert "app sandbox: updated (changed: token_url, pinned_flavor)" in out
    assert "connection sandbox-widgets: unchanged" in out


def test_changed_secret_is_named_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("import_apps", str(write(tmp_path, SANDBOX_YAML)))
    monkeypatch.setenv("SANDBOX_CLIENT_SECRET", "rotated-secret-value")

    out, err = run("import_apps", str(write(tmp_path, SANDBOX_YAML)))

    assert App.objects.get(slug="sandbox").client_secret == "rotated-secret-value"
    assert "app sandbox: updated (changed: client_secret)" in out
    assert "rotated-secret-value" not in out + err
    assert SECRET not in out + err


def test_missing_secret_key_keeps_the_stored_secret(tmp_path: Path) -> None:
    AppFactory(slug="sandbox", name="Sandbox", client_secret="kept-secret")
    app = sandbox_app(client_id="new-client-id")
    del app["client_secret"]

    out, _ = run("import_apps", str(write(tmp_path, {"apps": [app]})))

    stored = App.objects.get(slug="sandbox")
    assert stored.client_secret == "kept-secret"
    assert stored.client_id == "new-client-id"
    assert "client_secret" not in out


def test_connections_missing_from_the_file_are_left_alone(tmp_path: Path) -> None:
    app = AppFactory(slug="sandbox", name="Sandbox")
    ConnectionFactory(app=app, slug="legacy")

    run("import_apps", str(write(tmp_path, {"apps": [sandbox_app()]})))

    assert set(app.connections.values_list("slug", flat=True)) == {"legacy", "sandbox-widgets"}


def test_dry_run_reports_but_writes_nothing(tmp_path: Path) -> None:
    out, _ = run("import_apps", str(write(tmp_path, SANDBOX_YAML)), "--dry-run")

    assert "app sandbox: created" in out
    assert "dry run" in out
    assert not App.objects.exists()
    assert not Connection.objects.exists()


# --- Secrets from the environment ------------------------------------------------------------


def test_missing_env_var_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SANDBOX_CLIENT_SECRET")

    with pytest.raises(CommandError, match="SANDBOX_CLIENT_SECRET") as excinfo:
        run("import_apps", str(write(tmp_path, SANDBOX_YAML)))

    assert "sandbox" in str(excinfo.value)
    assert not App.objects.exists()
    assert not Connection.objects.exists()


def test_literal_secret_is_stored_with_a_warning_that_hides_it(tmp_path: Path) -> None:
    path = write(tmp_path, {"apps": [sandbox_app(client_secret="literal-secret-123")]})

    out, err = run("import_apps", str(path))

    assert App.objects.get(slug="sandbox").client_secret == "literal-secret-123"
    assert "literal" in err
    assert "literal-secret-123" not in out + err


def test_whitespace_and_missing_offline_access_warn_but_import(tmp_path: Path) -> None:
    data = {"apps": [sandbox_app(client_id=" abc-123 ", default_scopes="read write")]}

    out, err = run("import_apps", str(write(tmp_path, data)))

    assert App.objects.get(slug="sandbox").client_id == " abc-123 "
    assert "whitespace" in err
    assert "offline_access" in err
    assert "app sandbox: created" in out


# --- Validation: all or nothing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_app", "expected"),
    [
        ({"tokn_url": "https://x.example.com/token"}, "tokn_url"),
        ({"use_pkce": "yes"}, "use_pkce"),
        ({"pinned_flavor": "2"}, "pinned_flavor"),
        ({"pinned_flavor": 9}, "pinned_flavor"),
        ({"grant_type": "password"}, "grant_type"),
        ({"offline_strategy": "always"}, "offline_strategy"),
        ({"token_url": "not a url"}, "token_url"),
        ({"token_url": "http://auth.example.com/token"}, "token_url"),
        ({"extra_token_headers": {"X-Api": 1}}, "extra_token_headers"),
        ({"connections": [{"slug": "broken-conn", "name": "B", "colour": "red"}]}, "colour"),
    ],
)
def test_bad_app_fails_the_whole_file(
    tmp_path: Path, bad_app: dict[str, object], expected: str
) -> None:
    good = sandbox_app()
    bad = sandbox_app(slug="broken", name="Broken", **{"connections": [], **bad_app})
    path = write(tmp_path, {"apps": [good, bad]})

    with pytest.raises(CommandError) as excinfo:
        run("import_apps", str(path))

    message = str(excinfo.value)
    assert "'broken'" in message
    assert expected in message
    assert "nothing was written" in message
    assert not App.objects.exists()
    assert not Connection.objects.exists()


def test_http_loopback_url_allowed_only_when_setting_on(tmp_path: Path, settings) -> None:
    data = {"apps": [sandbox_app(token_url="http://127.0.0.1:8001/token")]}
    path = write(tmp_path, data)

    settings.OAUTH_ALLOW_HTTP_LOOPBACK = False
    with pytest.raises(CommandError, match="token_url"):
        run("import_apps", str(path))
    assert not App.objects.exists()

    settings.OAUTH_ALLOW_HTTP_LOOPBACK = True
    run("import_apps", str(path))
    assert App.objects.get(slug="sandbox").token_url == "http://127.0.0.1:8001/token"


def test_failed_update_leaves_existing_rows_untouched(tmp_path: Path) -> None:
    run("import_apps", str(write(tmp_path, {"apps": [sandbox_app()]})))
    data = {
        "apps": [
            sandbox_app(name="Renamed"),
            sandbox_app(slug="other", name="Other", token_url="ftp://x", connections=[]),
        ]
    }

    with pytest.raises(CommandError):
        run("import_apps", str(write(tmp_path, data)))

    assert App.objects.get(slug="sandbox").name == "Sandbox"
    assert not App.objects.filter(slug="other").exists()


def test_new_app_without_required_keys_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="token_url: required"):
        run("import_apps", str(write(tmp_path, {"apps": [{"slug": "bare", "name": "Bare"}]})))


def test_connection_cannot_move_to_another_app(tmp_path: Path) -> None:
    ConnectionFactory(slug="sandbox-widgets", app=AppFactory(slug="elsewhere"))

    with pytest.raises(CommandError, match="elsewhere"):
        run("import_apps", str(write(tmp_path, {"apps": [sandbox_app()]})))

    assert not App.objects.filter(slug="sandbox").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apps: [\n", "invalid YAML"),
        ("apps:\n  - slug: a\n    slug: b\n", "duplicate key"),
        ("- slug: a\n", "mapping"),
        ("apps: []\nextra: 1\n", "extra"),
    ],
)
def test_malformed_files_are_clear_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(CommandError, match=expected):
        run("import_apps", str(write(tmp_path, text)))


def test_parse_error_never_echoes_the_line(tmp_path: Path) -> None:
    text = "apps:\n  - slug: a\n    client_secret: leaked: value-xyz\n"

    with pytest.raises(CommandError) as excinfo:
        run("import_apps", str(write(tmp_path, text)))

    assert "value-xyz" not in str(excinfo.value)


# --- Export ------------------------------------------------------------------------------------


def test_export_contains_no_secret(tmp_path: Path) -> None:
    run("import_apps", str(write(tmp_path, SANDBOX_YAML)))

    yaml_out, _ = run("export_apps")
    json_out, _ = run("export_apps", "--format", "json")

    assert SECRET not in yaml_out
    assert SECRET not in json_out
    exported = json.loads(json_out)["apps"][0]
    assert "client_secret" not in exported
    assert exported["slug"] == "sandbox"
    assert exported["connections"][0]["slug"] == "sandbox-widgets"
    assert yaml.safe_load(yaml_out) == json.loads(json_out)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_then_import_round_trips_unchanged(tmp_path: Path, fmt: str) -> None:
    app = AppFactory(
        slug="sandbox",
        client_secret="factory-secret",
        pinned_flavor=2,
        extra_token_params={"resource": "https://api.example.com", "n": 1},
        extra_token_headers={"X-Tenant": "acme"},
    )
    ConnectionFactory(app=app, slug="widgets", scopes="read offline_access")
    other = AppFactory(slug="other", grant_type="client_credentials", authorize_url="")
    ConnectionFactory(app=other, slug="gadgets", grant_type="client_credentials")
    output = tmp_path / f"apps.{fmt}"

    run("export_apps", "--output", str(output))
    assert "factory-secret" not in output.read_text()
    out, _ = run("import_apps", str(output))

    assert "0 created, 0 updated, 4 unchanged" in out
    assert App.objects.get(slug="sandbox").client_secret == "factory-secret"
