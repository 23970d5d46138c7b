"""Customer inputs: a subdomain typed before Connect, templated into the App's URLs,
never able to move a request to another host."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.core.exceptions import ValidationError
from django.urls import reverse

from connections.models import ConfigVariable, Status
from oauthflow import inputs
from oauthflow.access import get_access_token
from oauthflow.renewal import config_variables_renew
from oauthflow.revocation import config_variable_revoke
from tests.factories import AppFactory, ConfigVariableFactory, ConnectionFactory

pytestmark = pytest.mark.django_db

SUBDOMAIN = {
    "name": "subdomain",
    "label": "Your Zendesk subdomain",
    "help": "The part before .zendesk.com, e.g. acme",
    "pattern": "^[a-z0-9][a-z0-9-]{0,62}$",
}


@pytest.fixture
def app():
    return AppFactory(
        authorize_url="https://{subdomain}.zendesk.com/oauth/authorizations/new",
        token_url="https://{subdomain}.zendesk.com/oauth/tokens",
        revocation_url="https://{subdomain}.zendesk.com/oauth/revoke",
        extra_token_params={"audience": "https://{subdomain}.zendesk.com/api"},
        customer_inputs=[SUBDOMAIN],
        allowed_host_suffix="zendesk.com",
        callback_metadata=["realmId"],
        reply_metadata=["instance_url"],
    )


@pytest.fixture
def connection(app):
    return ConnectionFactory(app=app)


@pytest.mark.parametrize(
    "value",
    [
        "evil.com#",
        "a.evil.com",
        "%2e",
        "acme%2eevil",
        "user@evil",
        "evil.com/",
        "acme:443",
        "acme\\evil",
        "\u0430cme",  # a Cyrillic look-alike of "a"
        "\uff41cme",  # a full-width "a"
        "acme evil",
        "-acme",
        "",
        "a" * 64,
        "acme?x=",
    ],
)
def test_an_attacking_value_is_refused_before_any_request(app, connection, portal_client, value):
    with responses.RequestsMock():  # any request at all would fail the test
        response = portal_client.post(
            reverse("oauthflow:connect", args=[connection.slug]),
            {"inputs": "1", "subdomain": value},
        )
    assert response.status_code == 400
    assert "Your Zendesk subdomain" in response.content.decode()
    cv = ConfigVariable.objects.get()
    assert cv.customer_inputs == {}
    assert cv.status == Status.PENDING
    with pytest.raises(inputs.InvalidCustomerInput):
        inputs.validate(app, {"subdomain": value})


def test_a_host_outside_the_fixed_domain_is_refused_even_if_the_pattern_allows_it():
    app = AppFactory(
        token_url="https://{tenant}/token",
        customer_inputs=[{"name": "tenant", "label": "Tenant", "pattern": "^[a-z]+$"}],
        allowed_host_suffix="okta.com",
    )
    with pytest.raises(inputs.InvalidCustomerInput, match=r"outside okta\.com"):
        inputs.validate(app, {"tenant": "evil"})


def test_app_validation_refuses_unknown_placeholders_and_inputs_without_a_domain():
    app = AppFactory.build(
        token_url="https://{subdomain}.zendesk.com/oauth/tokens",
        authorize_url="https://{region}.zendesk.com/oauth/authorizations/new",
        customer_inputs=[SUBDOMAIN],
        allowed_host_suffix="",
    )
    with pytest.raises(ValidationError) as raised:
        app.full_clean(exclude=["slug", "name"])
    text = str(raised.value)
    assert "region" in text
    assert "allowed host suffix" in text


def test_the_portal_asks_for_the_subdomain_then_sends_the_customer_to_it(connection, portal_client):
    url = reverse("oauthflow:connect", args=[connection.slug])
    form = portal_client.post(url)
    assert form.status_code == 200
    page = form.content.decode()
    assert "Your Zendesk subdomain" in page
    assert "The part before .zendesk.com" in page
    response = portal_client.post(url, {"inputs": "1", "subdomain": " Acme "})
    assert response.status_code == 302
    assert response["Location"].startswith("https://acme.zendesk.com/oauth/authorizations/new?")
    cv = ConfigVariable.objects.get()
    assert cv.customer_inputs == {"subdomain": "acme"}
    assert cv.status == Status.AUTHORIZING
    # Reconnect: the form comes back filled in with the stored value.
    assert 'value="acme"' in portal_client.post(url).content.decode()


@responses.activate
def test_exchange_renewal_and_revocation_use_the_customers_host(
    connection, portal_client, django_capture_on_commit_callbacks
):
    url = reverse("oauthflow:connect", args=[connection.slug])
    location = portal_client.post(url, {"inputs": "1", "subdomain": "acme"})["Location"]
    state = parse_qs(urlsplit(location).query)["state"][0]
    responses.post(
        "https://acme.zendesk.com/oauth/tokens",
        json={
            "access_token": "a1",
            "refresh_token": "r1",
            "expires_in": 3600,
            "instance_url": "https://acme.zendesk.com",
            "other": "x",
        },
    )
    with django_capture_on_commit_callbacks(execute=True):
        portal_client.get(
            reverse("oauthflow:callback"), {"code": "c", "state": state, "realmId": "123146"}
        )
    cv = ConfigVariable.objects.get()
    assert cv.status == Status.CONNECTED, cv.last_error
    assert cv.callback_metadata == {"realmId": "123146"}
    body = parse_qs(responses.calls[0].request.body.decode())
    assert body["audience"] == ["https://acme.zendesk.com/api"]
    token = get_access_token(config_variable_id=cv.pk)
    assert token.metadata == {
        "inputs": {"subdomain": "acme"},
        "callback": {"realmId": "123146"},
        "reply": {"instance_url": "https://acme.zendesk.com"},
    }
    config_variables_renew(config_variable_ids=[cv.pk], force=True)
    assert responses.calls[-1].request.url == "https://acme.zendesk.com/oauth/tokens"
    responses.post("https://acme.zendesk.com/oauth/revoke", status=200)
    cv.refresh_from_db()
    assert config_variable_revoke(config_variable=cv)
    assert responses.calls[-1].request.url == "https://acme.zendesk.com/oauth/revoke"


@responses.activate
def test_tampered_stored_inputs_are_checked_again_before_a_request(connection):
    cv = ConfigVariableFactory(
        connection=connection,
        status=Status.CONNECTED,
        refresh_token="r1",
        access_token="a1",
        customer_inputs={"subdomain": "evil.com#"},
    )
    config_variables_renew(config_variable_ids=[cv.pk], force=True)
    cv.refresh_from_db()
    assert len(responses.calls) == 0
    assert cv.diagnosis == "invalid_customer_input"
