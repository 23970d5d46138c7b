"""The preset catalogue: every entry validates, a broken one is refused naming the entry,
and each preset yields an App whose authorize URL and first token request are right."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from connections.models import App
from oauthflow.authorize import OFFLINE_PARAMS, authorize_url_build, callback_url
from oauthflow.flavors import FLAVORS_BY_NUMBER, CredentialPlacement, build_token_request
from oauthflow.presets import (
    CATALOGUE_PATH,
    Preset,
    PresetError,
    preset_get,
    presets_all,
    presets_load,
)

PRESETS = presets_all()
SAMPLE_INPUTS = {"subdomain": "acme", "tenant": "acme", "region": "eu"}
CLIENT_ID, CLIENT_SECRET = "my-client-id", "my-client-secret"
APP_FIELDS = {field.name for field in App._meta.get_fields() if field.concrete}


@pytest.fixture(autouse=True)
def _callback(settings) -> None:
    settings.OAUTH_PUBLIC_CALLBACK_URL = "https://portal.example.com/oauth2/callback"


def app_from(preset: Preset) -> App:
    """An unsaved App made from ``preset``, with sample customer inputs filled in and
    only the values the App model has fields for."""
    values = preset.app_values()
    for key in ("authorize_url", "token_url", "revocation_url"):
        values[key] = str(values[key]).format(**SAMPLE_INPUTS)
    values.pop("name")
    values = {key: value for key, value in values.items() if key in APP_FIELDS}
    return App(
        **values,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        slug=preset.name,
        name=preset.display_name,
    )


# The catalogue


def test_catalogue_has_the_required_apps() -> None:
    names = {preset.name for preset in PRESETS}
    assert len(names) >= 35
    required = {
        "google", "microsoft", "salesforce", "hubspot", "slack", "github", "gitlab",
        "notion", "zoom", "xero", "quickbooks", "dropbox", "box", "atlassian", "shopify",
        "zendesk", "asana", "linear", "airtable", "docusign", "intercom", "pipedrive",
        "calendly", "stripe-connect", "x", "linkedin", "discord", "spotify", "strava",
        "okta", "auth0", "figma", "monday", "clickup",
    }  # fmt: skip
    assert required <= names


def test_presets_are_sorted_by_display_name() -> None:
    labels = [preset.display_name.casefold() for preset in PRESETS]
    assert labels == sorted(labels)


def test_preset_get_and_unknown_name() -> None:
    assert preset_get("google").token_url == "https://oauth2.googleapis.com/token"
    with pytest.raises(KeyError, match=r"no preset named 'nope'.*google"):
        preset_get("nope")


def test_the_shipped_file_validates_uncached() -> None:
    assert [preset.name for preset in presets_load(CATALOGUE_PATH)] == sorted(
        preset.name for preset in PRESETS
    )


@pytest.mark.parametrize("preset", PRESETS, ids=lambda preset: preset.name)
def test_preset_is_well_formed(preset: Preset) -> None:
    for url in (preset.authorize_url, preset.token_url, preset.revocation_url, preset.docs_url):
        assert not url or url.startswith("https://")
    assert preset.quirks
    assert preset.source
    assert preset.grant_type == "authorization_code"
    for item in preset.customer_inputs:
        assert re.fullmatch(item.pattern, SAMPLE_INPUTS[item.name])
        host = urlsplit(preset.authorize_url.format(**SAMPLE_INPUTS)).hostname or ""
        assert host.endswith("." + preset.allowed_host_suffix)
    values = preset.app_values()
    assert values["preset"] == preset.name
    assert values["name"] == preset.display_name
    values["reply_metadata"].append("changed")  # a copy: the preset is unchanged
    assert "changed" not in preset.reply_metadata


# A broken catalogue is refused, naming the entry


GOOD_ENTRY = {
    "name": "acme",
    "display_name": "Acme",
    "docs_url": "https://docs.acme.test/oauth",
    "authorize_url": "https://{subdomain}.acme.test/oauth/authorize",
    "token_url": "https://{subdomain}.acme.test/oauth/token",
    "offline_strategy": "none",
    "use_pkce": True,
    "customer_inputs": [
        {
            "name": "subdomain",
            "label": "Subdomain",
            "help": "acme for acme.acme.test",
            "pattern": "^[a-z0-9][a-z0-9-]{0,62}$",
        }
    ],
    "allowed_host_suffix": "acme.test",
    "quirks": ["none"],
    "source": ["https://docs.acme.test/oauth"],
}


def write_catalogue(tmp_path: Path, **changes: object) -> Path:
    entry = {**GOOD_ENTRY, **changes}
    entry = {key: value for key, value in entry.items() if value is not None}
    path = tmp_path / "presets.yaml"
    path.write_text(yaml.safe_dump([entry]), encoding="utf-8")
    return path


def test_a_good_catalogue_loads(tmp_path: Path) -> None:
    (preset,) = presets_load(write_catalogue(tmp_path))
    assert preset.name == "acme"
    assert preset.customer_inputs[0].name == "subdomain"


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"token_url": "http://{subdomain}.acme.test/token"}, "token_url", "not an https URL"),
        (
            {"authorize_url": "https://{shop}.acme.test/authorize"},
            "authorize_url",
            r"placeholder \{shop\} names no customer input",
        ),
        ({"allowed_host_suffix": None}, "allowed_host_suffix", "customer inputs need"),
        (
            {
                "customer_inputs": [
                    {"name": "subdomain", "label": "S", "help": "", "pattern": "[a-z]+"}
                ]
            },
            "customer_inputs.0.pattern",
            r"not anchored with \^\.\.\.\$",
        ),
        (
            {
                "customer_inputs": [
                    {"name": "subdomain", "label": "S", "help": "", "pattern": "^[a-$"}
                ]
            },
            "customer_inputs.0.pattern",
            "does not compile",
        ),
        (
            {"allowed_host_suffix": "other.test"},
            "authorize_url",
            r"does not end with \.other\.test",
        ),
        ({"offline_strategy": "sometimes"}, "offline_strategy", "is not one of"),
        ({"preferred_flavor": 9}, "preferred_flavor", "is not one of"),
        ({"quirks": None}, "(entry)", "'quirks' is a required property"),
        (
            {"offline_strategy": "offline_access"},
            "default_scopes",
            "offline_strategy offline_access needs that scope",
        ),
    ],
    ids=[
        "http-url",
        "unknown-placeholder",
        "inputs-without-suffix",
        "unanchored-pattern",
        "pattern-does-not-compile",
        "host-outside-suffix",
        "unknown-offline-strategy",
        "unknown-flavor",
        "missing-quirks",
        "offline-scope-missing",
    ],
)
def test_a_broken_catalogue_is_refused_naming_the_entry(
    tmp_path: Path, changes: dict[str, object], field: str, problem: str
) -> None:
    with pytest.raises(PresetError, match=problem) as caught:
        presets_load(write_catalogue(tmp_path, **changes))
    assert caught.value.entry == "acme"
    assert caught.value.field == field
    assert str(caught.value).startswith(f"preset 'acme', field '{field}'")


def test_a_repeated_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "presets.yaml"
    path.write_text(yaml.safe_dump([GOOD_ENTRY, GOOD_ENTRY]), encoding="utf-8")
    with pytest.raises(PresetError, match="preset 'acme', field 'name': the name is used twice"):
        presets_load(path)


def test_yaml_that_does_not_parse_is_a_preset_error(tmp_path: Path) -> None:
    path = tmp_path / "presets.yaml"
    path.write_text("- name: [unclosed\n", encoding="utf-8")
    with pytest.raises(PresetError, match="not valid YAML"):
        presets_load(path)


# Each preset makes a working App


@pytest.mark.parametrize("preset", PRESETS, ids=lambda preset: preset.name)
def test_authorize_url_for_preset(preset: Preset) -> None:
    app = app_from(preset)
    scopes = preset.scopes
    verifier = "v" * 43 if app.use_pkce else None  # the caller makes one when the App says so
    url = authorize_url_build(app=app, scopes=scopes, state="st4te", code_verifier=verifier)
    authorize = preset.authorize_url.format(**SAMPLE_INPUTS)
    assert url.startswith(authorize + "?")
    query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    assert query[preset.client_id_param] == CLIENT_ID
    assert query["redirect_uri"] == callback_url()
    if scopes:
        assert query["scope"] == preset.scope_separator.join(scopes)
    else:
        assert "scope" not in query
    assert ("code_challenge" in query) is preset.use_pkce
    offline = app.offline_strategy
    if offline in OFFLINE_PARAMS:
        name, value = OFFLINE_PARAMS[offline]
        assert query[name] == value
    else:
        assert not {name for name, _ in OFFLINE_PARAMS.values()} & set(query)
    if offline == "offline_access":
        assert "offline_access" in query["scope"].split(preset.scope_separator)
    asks_offline = offline != "none"
    assert (query.get("prompt") == "consent") is (preset.prompt_consent and asks_offline)
    for name, value in preset.extra_authorize_params.items():
        assert query[name] == value


DOCUMENTED = [preset for preset in PRESETS if preset.preferred_flavor is not None]


@pytest.mark.parametrize("preset", DOCUMENTED, ids=lambda preset: preset.name)
def test_first_token_request_puts_credentials_where_documented(preset: Preset) -> None:
    flavor = FLAVORS_BY_NUMBER[preset.preferred_flavor]
    fields = {
        "grant_type": "authorization_code",
        "code": "some-unique-auth-code",
        "redirect_uri": callback_url(),
        **preset.extra_token_params,
    }
    spec = build_token_request(
        flavor,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        fields=fields,
        client_id_param=preset.client_id_param,
    )
    body = spec.body.decode()
    if flavor.body_format.value == "json":
        sent = json.loads(body)
    else:
        sent = {name: values[0] for name, values in parse_qs(body).items()}
    assert sent["code"] == "some-unique-auth-code"
    for name, value in preset.extra_token_params.items():
        assert sent[name] == value
    if flavor.credentials is CredentialPlacement.BODY:
        assert "Authorization" not in spec.headers
        assert sent[preset.client_id_param] == CLIENT_ID
        assert sent["client_secret"] == CLIENT_SECRET
    else:
        scheme, _, encoded = spec.headers["Authorization"].partition(" ")
        assert scheme == "Basic"
        assert base64.b64decode(encoded).decode() == f"{CLIENT_ID}:{CLIENT_SECRET}"
        assert CLIENT_SECRET not in body
        assert "client_secret" not in sent
