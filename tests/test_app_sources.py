"""Making an App from a preset or an issuer URL, and checking it before any customer
connects (token endpoints mocked with ``responses``)."""

from __future__ import annotations

import json

import pytest
import responses
from django.urls import reverse

from connections.config_files import apps_export, apps_import
from connections.models import App
from oauthflow.app_check import app_check
from oauthflow.discovery import candidate_urls, discover, first_flavor
from oauthflow.exceptions import ConfigurationError
from oauthflow.models import TokenRequest
from oauthflow.presets import preset_get
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db

ISSUER = "https://login.example.com/tenant"
METADATA = {
    "issuer": ISSUER,
    "authorization_endpoint": "https://login.example.com/tenant/authorize",
    "token_endpoint": "https://login.example.com/tenant/token",
    "revocation_endpoint": "https://login.example.com/tenant/revoke",
    "token_endpoint_auth_methods_supported": ["client_secret_post"],
    "code_challenge_methods_supported": ["S256"],
    "scopes_supported": ["openid", "offline_access", "profile"],
}


def test_candidate_urls_follow_rfc_8414_then_the_common_variants():
    assert candidate_urls(ISSUER) == [
        "https://login.example.com/.well-known/oauth-authorization-server/tenant",
        "https://login.example.com/tenant/.well-known/oauth-authorization-server",
        "https://login.example.com/tenant/.well-known/openid-configuration",
    ]
    well_known = "https://x.example.com/.well-known/openid-configuration"
    assert candidate_urls(well_known) == [well_known]


@pytest.mark.parametrize(
    ("methods", "flavor"),
    [
        (["client_secret_basic"], 1),
        (["client_secret_post"], 3),
        (["client_secret_post", "client_secret_basic"], 1),
        (["private_key_jwt"], None),
        (None, 1),  # RFC 8414 §2: absent means client_secret_basic
    ],
)
def test_the_first_flavor_follows_the_auth_methods(methods, flavor):
    document = {} if methods is None else {"token_endpoint_auth_methods_supported": methods}
    assert first_flavor(document) == flavor


@responses.activate
def test_discovery_falls_back_to_openid_configuration_and_fills_an_app():
    responses.get(candidate_urls(ISSUER)[0], status=404)
    responses.get(candidate_urls(ISSUER)[1], status=404)
    responses.get(candidate_urls(ISSUER)[2], json=METADATA)
    metadata = discover(ISSUER)
    assert metadata.oidc
    from oauthflow.discovery import app_apply_discovery

    app = App(default_scopes="profile")
    changes = app_apply_discovery(app=app, metadata=metadata)
    assert app.token_url == METADATA["token_endpoint"]
    assert app.preferred_flavor == 3
    assert app.use_pkce
    assert app.prompt_consent
    assert app.default_scopes == "profile openid offline_access"
    assert "flavor #3 first" in changes


@pytest.mark.parametrize(
    "document",
    [
        {
            "token_endpoint": "http://login.example.com/token",
            "authorization_endpoint": "https://x.example.com/a",
        },
        {
            "token_endpoint": "https://169.254.169.254/token",
            "authorization_endpoint": "https://x.example.com/a",
        },
        {"token_endpoint": "https://login.example.com/token"},
    ],
)
@responses.activate
def test_metadata_with_refused_or_missing_endpoints_is_an_error(document, settings):
    settings.OAUTH_ALLOW_PRIVATE_NETWORKS = False
    settings.OAUTH_ALLOW_HTTP_LOOPBACK = False
    responses.get(candidate_urls(ISSUER)[0], json=document)
    with pytest.raises(ConfigurationError):
        discover(ISSUER)


@responses.activate
def test_no_metadata_anywhere_names_the_urls_tried():
    for url in candidate_urls(ISSUER):
        responses.get(url, status=404)
    with pytest.raises(ConfigurationError, match="tried"):
        discover(ISSUER)


def test_discovery_refuses_a_private_issuer_before_any_request(settings):
    settings.OAUTH_ALLOW_PRIVATE_NETWORKS = False
    settings.OAUTH_ALLOW_HTTP_LOOPBACK = False
    with responses.RequestsMock(), pytest.raises(ConfigurationError):
        discover("http://127.0.0.1:8001/o")


TOKEN_URL = "https://app.example.com/oauth2/token"


@responses.activate
def test_the_app_check_finds_the_flavor_that_authenticates_with_a_fake_code():
    app = AppFactory(token_url=TOKEN_URL)
    responses.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
    responses.post(TOKEN_URL, status=415, body="no JSON here")
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    result = app_check(app=app)
    assert len(responses.calls) == 3
    assert all(b"portal-app-check-not-a-real-code" in c.request.body for c in responses.calls)
    assert result.ok
    assert result.flavor == 3
    assert [row.key for row in result.rows] == [
        "bad_client_credentials",
        "format_rejected",
        "code_rejected",
    ]
    app.refresh_from_db()
    assert app.preferred_flavor == 3
    assert app.checked_at is not None
    assert len(app.check_results) == 3
    assert TokenRequest.objects.filter(app=app).count() == 3  # recorded like every request
    assert "portal-app-check-not-a-real-code" not in json.dumps(
        list(TokenRequest.objects.values_list("request_body", flat=True))
    )


@responses.activate
def test_the_app_check_flags_a_whitespace_damaged_secret():
    app = AppFactory(token_url=TOKEN_URL, client_secret="secret\n")
    responses.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
    result = app_check(app=app)
    assert not result.ok
    assert len(responses.calls) == 6  # at most six requests
    assert "whitespace" in result.summary


def test_the_app_check_is_for_authorization_code_apps():
    with pytest.raises(ConfigurationError):
        app_check(app=AppFactory(grant_type="client_credentials"))


def test_import_a_preset_with_overrides_and_export_only_what_differs():
    report = apps_import(
        data={
            "apps": [
                {
                    "slug": "google",
                    "preset": "google",
                    "client_id": "my-client-id",
                    "default_scopes": "openid email https://www.googleapis.com/auth/drive",
                }
            ]
        }
    )
    assert report.has_changes
    app = App.objects.get(slug="google")
    google = preset_get("google")
    assert (app.token_url, app.authorize_url) == (google.token_url, google.authorize_url)
    assert app.offline_strategy == google.offline_strategy
    assert app.default_scopes.endswith("/auth/drive")  # the override won
    entry = apps_export()["apps"][0]
    assert entry["preset"] == "google"
    assert "token_url" not in entry  # as the preset says
    assert entry["default_scopes"].endswith("/auth/drive")
    again = apps_import(data={"apps": [entry]})
    assert not again.has_changes


def test_a_preset_never_rewrites_an_existing_apps_edits():
    app = AppFactory(slug="google", token_url="https://oauth2.example.com/token", preset="google")
    apps_import(data={"apps": [{"slug": "google", "preset": "google"}]})
    app.refresh_from_db()
    assert app.token_url == "https://oauth2.example.com/token"


def test_an_unknown_preset_is_an_import_error():
    from connections.config_files import ConfigFileError

    with pytest.raises(ConfigFileError, match="unknown preset"):
        apps_import(data={"apps": [{"slug": "x", "preset": "nope", "client_id": "a"}]})


def test_the_admin_add_form_comes_filled_from_a_preset(admin_client):
    picker = admin_client.get(reverse("admin:connections_app_add_from"))
    assert picker.status_code == 200
    assert "Google" in picker.content.decode()
    form = admin_client.get(reverse("admin:connections_app_add") + "?preset=zendesk")
    page = form.content.decode()
    zendesk = preset_get("zendesk")
    assert zendesk.token_url in page
    assert "zendesk.com" in page


def test_the_admin_saves_an_app_from_a_preset_with_its_first_flavor(admin_client):
    hubspot = preset_get("hubspot")
    values = hubspot.app_values()
    post = {
        name: (json.dumps(value) if isinstance(value, dict | list) else value)
        for name, value in values.items()
        if value is not None and name != "preferred_flavor"
    }
    post.update(slug="hubspot", client_id="abc", client_secret="", pinned_flavor="")
    post = {k: v for k, v in post.items() if v is not False}
    response = admin_client.post(reverse("admin:connections_app_add") + "?preset=hubspot", post)
    assert response.status_code == 302, response.content.decode()[:3000]
    app = App.objects.get(slug="hubspot")
    assert app.preset == "hubspot"
    assert app.preferred_flavor == hubspot.preferred_flavor
