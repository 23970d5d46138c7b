"""Admin smoke tests: each page renders, searches, and never shows a secret back."""

from __future__ import annotations

import pytest
from django.urls import reverse

from connections.models import App, Status
from tests.factories import AppFactory, ConfigVariableFactory, ConnectionFactory, CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def data():
    app = AppFactory(
        client_id=" padded-id ", client_secret="top-secret-value", default_scopes="read"
    )
    cv = ConfigVariableFactory(
        connection=ConnectionFactory(app=app),
        status=Status.CONNECTED,
        access_token="access-token-value",
        refresh_token="refresh-token-value",
    )
    return app, cv


@pytest.mark.parametrize(
    "model",
    [
        "connections/app",
        "connections/connection",
        "connections/customer",
        "connections/configvariable",
        "oauthflow/tokenrequest",
    ],
)
def test_changelist_and_search_render(admin_client, data, model):
    url = reverse(f"admin:{model.replace('/', '_')}_changelist")
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(url, {"q": "x"}).status_code == 200


def test_app_page_shows_callback_url_and_warnings_but_not_the_secret(admin_client, data, settings):
    app, _ = data
    response = admin_client.get(reverse("admin:connections_app_change", args=[app.pk]))
    html = response.content.decode()
    assert settings.OAUTH_PUBLIC_CALLBACK_URL in html
    assert "leading or trailing whitespace" in html
    assert "lack offline_access" in html
    assert "top-secret-value" not in html


def test_blank_secret_on_save_keeps_the_stored_one(admin_client, data):
    app, _ = data
    url = reverse("admin:connections_app_change", args=[app.pk])
    form = {
        "name": app.name,
        "slug": app.slug,
        "grant_type": app.grant_type,
        "authorize_url": app.authorize_url,
        "token_url": app.token_url,
        "client_id": "clean-id",
        "client_secret": "",
        "default_scopes": "read offline_access",
        "scope_separator": " ",
        "offline_strategy": app.offline_strategy,
        "use_pkce": "on",
        "pinned_flavor": "",
        "extra_authorize_params": "{}",
        "extra_token_params": "{}",
        "extra_token_headers": "{}",
    }
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    app.refresh_from_db()
    assert (app.client_id, app.client_secret) == ("clean-id", "top-secret-value")


def test_add_app_rejects_plain_http_to_a_remote_host(admin_client):
    response = admin_client.post(
        reverse("admin:connections_app_add"),
        {
            "name": "X",
            "slug": "x",
            "grant_type": "authorization_code",
            "authorize_url": "http://auth.example.com/authorize",
            "token_url": "https://t.example.com/",
            "client_id": "id",
            "client_secret": "s",
            "scope_separator": " ",
            "offline_strategy": "offline_access",
            "extra_authorize_params": "{}",
            "extra_token_params": "{}",
            "extra_token_headers": "{}",
        },
    )
    assert response.status_code == 200
    assert "loopback hosts only" in response.content.decode()
    assert not App.objects.filter(slug="x").exists()


def test_config_variable_page_shows_fingerprints_not_tokens(admin_client, data):
    _, cv = data
    html = admin_client.get(
        reverse("admin:connections_configvariable_change", args=[cv.pk])
    ).content.decode()
    assert "sha256:" in html
    assert "access-token-value" not in html
    assert "refresh-token-value" not in html


def test_customer_add_page_renders(admin_client):
    CustomerFactory()
    assert admin_client.get(reverse("admin:connections_customer_add")).status_code == 200


def test_token_request_page_shows_diagnosis_and_curl_without_secrets(admin_client):
    import responses as rsps

    from oauthflow.chain import run_token_chain
    from oauthflow.exceptions import ProviderError
    from oauthflow.models import TokenRequest

    app = AppFactory(client_secret="top-secret-value")
    with rsps.RequestsMock() as mock:
        mock.post(app.token_url, status=404, body="<html>Not found</html>")
        with pytest.raises(ProviderError):
            run_token_chain(
                app=app,
                fields={"grant_type": "authorization_code", "code": "the-code-1"},
                kind="exchange",
            )
    record = TokenRequest.objects.filter(flavor=1).get()
    html = admin_client.get(
        reverse("admin:oauthflow_tokenrequest_change", args=[record.pk])
    ).content.decode()
    assert "is not the app&#x27;s token endpoint" in html
    assert "curl -X POST" in html
    assert "$CLIENT_SECRET" in html
    assert "top-secret-value" not in html
    assert "the-code-1" not in html
    app_html = admin_client.get(
        reverse("admin:connections_app_change", args=[app.pk])
    ).content.decode()
    assert "Export the last failed chain" in app_html
    export = admin_client.get(reverse("admin:connections_app_postman", args=[app.pk]))
    assert export["Content-Type"] == "application/json"
    assert len(export.json()["item"]) == 1  # a 404 ends the chain: no flavor fixes a URL
    assert b"top-secret-value" not in export.content


def test_test_client_credentials_action_reports_the_diagnosis(admin_client):
    import responses as rsps

    app = AppFactory(grant_type="client_credentials", client_secret="bad")
    with rsps.RequestsMock() as mock:
        mock.post(app.token_url, status=401, json={"error": "invalid_client"})
        response = admin_client.post(
            reverse("admin:connections_app_changelist"),
            {"action": "test_client_credentials", "_selected_action": [app.pk]},
            follow=True,
        )
    text = response.content.decode()
    assert "rejected the client ID or secret" in text
    assert "6 token request(s)" in text


def test_authorize_url_preview_on_the_app_page(admin_client):
    app = AppFactory(client_id="abc-123", use_pkce=True)
    html = admin_client.get(reverse("admin:connections_app_change", args=[app.pk])).content.decode()
    assert "https://auth.example.com/authorize?response_type=code&amp;client_id=abc-123" in html
