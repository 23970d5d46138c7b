"""What a fresh tester broke in presets, discovery and customer inputs stays fixed."""

from __future__ import annotations

import pytest
import responses
from django.core.exceptions import ValidationError

from connections.config_files import apps_export, apps_import
from connections.models import App
from oauthflow import inputs
from oauthflow.discovery import app_discover, candidate_urls, discover, endpoints_elsewhere
from oauthflow.exceptions import ConfigurationError
from oauthflow.presets import preset_get
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db

ISSUER = "https://login.example.com/tenant"


@pytest.mark.parametrize("name", ["shopify", "zendesk", "okta", "auth0"])
def test_an_app_from_a_preset_with_a_templated_host_saves(name):
    app = App(**preset_get(name).app_values(), slug=name, client_id="id", client_secret="s")
    app.full_clean()
    app.save()


def test_auth0_regions_are_a_second_input():
    app = App(**preset_get("auth0").app_values(), slug="auth0", client_id="id")
    assert inputs.endpoint(app, "token_url", {"tenant": "acme", "region": "eu"}) == (
        "https://acme.eu.auth0.com/oauth/token"
    )


@pytest.mark.parametrize(
    "value", ["a[b", "x&client_id=evil", "a;b", "a=b", "\u212aacme", "a" * 101]
)
def test_values_outside_letters_digits_and_hyphens_are_refused_whatever_the_pattern(value):
    app = AppFactory.build(
        token_url="https://app.example.com/token?tenant={t}",
        customer_inputs=[{"name": "t", "label": "T", "pattern": "^.*$"}],
        allowed_host_suffix="example.com",
    )
    with pytest.raises(inputs.InvalidCustomerInput):
        inputs.validate(app, {"t": value})


@pytest.mark.parametrize(
    ("suffix", "pattern", "url", "problem"),
    [
        ("com", "^[a-z]+$", "https://{t}.example.com/token", "with a dot"),
        ("example.com", "[a-z]+", "https://{t}.example.com/token", "anchored"),
        ("example.com", "^[a-z]+$", "https://{t}.evil.com/token", "leads outside"),
    ],
)
def test_hand_typed_inputs_are_checked_when_the_app_is_saved(suffix, pattern, url, problem):
    app = AppFactory.build(
        token_url=url,
        customer_inputs=[{"name": "t", "label": "T", "pattern": pattern}],
        allowed_host_suffix=suffix,
    )
    with pytest.raises(ValidationError, match=problem):
        app.full_clean(exclude=["slug", "name"])


@pytest.mark.parametrize(
    ("issuer", "problem"),
    [
        ("https://u:p@login.example.com/t", "user name or password"),
        ("https://[abc/", "not a URL"),
        ("https://login.example.com/t?x=1", "no query"),
        ("", "required"),
    ],
)
def test_bad_issuer_urls_are_refused_before_any_request(issuer, problem):
    with responses.RequestsMock(), pytest.raises(ConfigurationError, match=problem):
        discover(issuer)


METADATA = {
    "issuer": ISSUER,
    "authorization_endpoint": "https://login.example.com/tenant/authorize",
    "token_endpoint": "https://login.example.com/tenant/token",
}


@responses.activate
def test_a_document_naming_another_issuer_is_refused():
    responses.get(
        candidate_urls(ISSUER)[0], json={**METADATA, "issuer": "https://accounts.google.com"}
    )
    with pytest.raises(ConfigurationError, match="RFC 8414"):
        discover(ISSUER)


@responses.activate
def test_odd_types_in_metadata_do_not_crash():
    responses.get(
        candidate_urls(ISSUER)[0],
        json={
            **METADATA,
            "scopes_supported": 5,
            "code_challenge_methods_supported": 7,
            "token_endpoint_auth_methods_supported": {"a": 1},
        },
    )
    metadata = discover(ISSUER)
    from oauthflow.discovery import app_apply_discovery

    app = App(default_scopes="")
    app_apply_discovery(app=app, metadata=metadata)
    assert app.preferred_flavor == 1


@responses.activate
def test_a_failed_discovery_says_why_for_each_url():
    urls = candidate_urls(ISSUER)
    responses.get(urls[0], status=302, headers={"Location": "https://elsewhere.example.com/"})
    responses.get(urls[1], body="<html>")
    responses.get(urls[2], status=500)
    with pytest.raises(ConfigurationError) as raised:
        discover(ISSUER)
    text = str(raised.value)
    assert "redirects are not followed" in text
    assert "not JSON" in text
    assert "HTTP 500" in text


@responses.activate
def test_re_discovery_into_invalid_values_is_a_clear_error():
    app = AppFactory(discovery_url=candidate_urls(ISSUER)[0])
    responses.get(
        candidate_urls(ISSUER)[0],
        json={**METADATA, "token_endpoint": "https://u:p@login.example.com/token"},
    )
    with pytest.raises(ConfigurationError, match="not valid"):
        app_discover(app=app, issuer=ISSUER)


def test_a_token_url_on_another_host_than_the_issuer_is_flagged():
    app = AppFactory.build(
        token_url="https://collector.example.net/steal",
        discovered_metadata={"issuer": ISSUER},
    )
    assert "collector.example.net" in endpoints_elsewhere(app)
    same = AppFactory.build(token_url=METADATA["token_endpoint"], discovered_metadata=METADATA)
    assert endpoints_elsewhere(same) is None


def test_an_unknown_preset_name_is_refused_on_save():
    with pytest.raises(ValidationError, match="No preset named"):
        AppFactory.build(preset="nope").full_clean(exclude=["slug", "name"])


def test_an_export_from_a_preset_writes_only_what_differs():
    apps_import(data={"apps": [{"slug": "gh", "preset": "github", "client_id": "id"}]})
    App.objects.filter(slug="gh").update(scope_separator="")  # as the admin form saves " "
    entry = apps_export()["apps"][0]
    assert set(entry) - {"connections"} == {"slug", "name", "client_id", "preset"}
