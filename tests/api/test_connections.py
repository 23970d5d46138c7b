"""The connections endpoints: list, get and disconnect, with both kinds of key, scopes,
other customers' connections and bad queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
import responses
from django.urls import reverse
from django.utils import timezone

from api.models import Scope
from connect_sessions.models import ConnectSession
from connections.models import ConfigVariable, Status
from tests.api.conftest import connected, env_client_with
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

SECRETS = ("live-access-token", "live-refresh-token", "my-client-secret")


def _list(client, **query):
    return client.get(reverse("api:connection_list"), query)


def _detail(pk):
    return reverse("api:connection_detail", args=[pk])


def test_a_customer_key_lists_only_its_own_customers_connections(customer_client, ours, theirs):
    response = _list(customer_client)
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(ours.pk)]


def test_an_environment_key_lists_every_customers_connections(env_client, ours, theirs):
    response = _list(env_client)
    assert response.status_code == 200
    assert {row["id"] for row in response.json()["results"]} == {str(ours.pk), str(theirs.pk)}


def test_the_list_filters_by_customer_app_connection_and_status(env_client, ours, theirs):
    broken = connected(ours.customer, status=Status.REAUTHORIZATION_REQUIRED)

    def ids(**query):
        response = _list(env_client, **query)
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    assert ids(customer_external_id="acme-1") == {str(ours.pk), str(broken.pk)}
    assert ids(customer_external_id="nobody") == set()
    assert ids(app=theirs.connection.app.slug) == {str(theirs.pk)}
    assert ids(connection=broken.connection.slug) == {str(broken.pk)}
    assert ids(status="reauthorization_required") == {str(broken.pk)}
    assert ids(customer_external_id="acme-1", status="connected") == {str(ours.pk)}


def test_a_bad_filter_is_a_400_naming_it(env_client):
    response = _list(env_client, status="broken")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["field"] == "status"
    assert "broken" in body["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "-1"}, "page_size"),
        ({"page_size": "201"}, "page_size"),
        ({"page_size": "abc"}, "page_size"),
        ({"cursor": "zzz"}, "cursor"),
    ],
)
def test_a_page_size_out_of_range_or_a_foreign_cursor_is_a_400(env_client, query, field):
    response = _list(env_client, **query)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["field"] == field


def test_the_list_is_paginated_by_cursor(env_client):
    customer = CustomerFactory()
    made = {str(connected(customer).pk) for _ in range(5)}
    seen: list[str] = []
    url = reverse("api:connection_list") + "?page_size=2"
    while url:
        page = env_client.get(url).json()
        assert len(page["results"]) <= 2
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == made


def test_one_connection_shows_what_an_integration_needs_and_no_secret(customer_client, ours):
    ours.customer_inputs = {"subdomain": "acme"}
    ours.token_extra = {"instance_url": "https://acme.example.com"}
    ours.callback_metadata = {"realmId": "42"}
    ours.diagnosis = "refresh_token_revoked"
    ours.save()
    response = customer_client.get(_detail(ours.pk))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "connected"
    assert body["status_label"] == "Connected"
    assert body["connection"] == {"slug": ours.connection.slug, "name": ours.connection.name}
    assert body["app"]["slug"] == ours.connection.app.slug
    assert body["customer"] == {"external_id": "acme-1", "name": "Acme"}
    assert body["scopes"] == ["widgets:read", "offline_access"]
    assert body["expires_at"].startswith(str(ours.expires_at.year))
    assert body["customer_inputs"] == {"subdomain": "acme"}
    assert body["metadata"]["reply"] == {"instance_url": "https://acme.example.com"}
    assert body["metadata"]["callback"] == {"realmId": "42"}
    assert body["diagnosis"]["key"] == "refresh_token_revoked"
    assert body["diagnosis"]["message"]
    text = response.content.decode()
    assert not any(secret in text for secret in SECRETS)


def test_another_customers_connection_is_a_404_for_a_customer_key(customer_client, theirs):
    for method in ("get", "delete"):
        response = getattr(customer_client, method)(_detail(theirs.pk))
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.status == Status.CONNECTED


def test_an_environment_key_reads_any_customers_connection(env_client, theirs):
    response = env_client.get(_detail(theirs.pk))
    assert response.status_code == 200
    assert response.json()["customer"]["external_id"] == "globex-1"


def test_delete_disconnects_and_forgets_the_tokens(customer_client, ours):
    response = customer_client.delete(_detail(ours.pk))
    assert response.status_code == 204
    ours.refresh_from_db()
    assert ours.status == Status.DISCONNECTED
    assert not ours.access_token
    assert not ours.refresh_token
    assert "through the API" in ours.transitions.latest("created_at").reason


@responses.activate
def test_delete_revokes_the_token_at_the_app(env_client, ours):
    app = ours.connection.app
    app.revocation_url = "https://app.example.com/oauth2/revoke"
    app.save()
    revoke = responses.post(app.revocation_url, status=200)
    assert env_client.delete(_detail(ours.pk)).status_code == 204
    assert revoke.call_count == 1
    assert b"live-refresh-token" in revoke.calls[0].request.body
    assert ConfigVariable.objects.get(pk=ours.pk).status == Status.DISCONNECTED


@pytest.mark.parametrize(
    ("method", "name", "needed"),
    [
        ("get", "api:connection_list", Scope.CONNECTIONS_READ),
        ("get", "api:connection_detail", Scope.CONNECTIONS_READ),
        ("delete", "api:connection_detail", Scope.CONNECTIONS_WRITE),
    ],
)
def test_a_key_without_the_scope_gets_a_403_naming_it(ours, method, name, needed):
    others = [scope for scope in Scope.values if scope != needed]
    client = env_client_with(*others)
    args = [] if name.endswith("list") else [ours.pk]
    response = getattr(client, method)(reverse(name, args=args))
    assert response.status_code == 403
    body = response.json()
    assert body == {
        "error": "insufficient_scope",
        "message": f"This API key lacks the scope {needed}.",
        "scope": needed,
    }
    ours.refresh_from_db()
    assert ours.status == Status.CONNECTED


def test_an_unknown_connection_is_a_404(env_client):
    response = env_client.get(_detail("00000000-0000-4000-8000-000000000000"))
    assert response.status_code == 404
    assert response.json()["message"] == "No such connection for this API key."


def test_one_connection_names_the_end_user_who_connected_it(env_client, ours):
    response = env_client.get(_detail(ours.pk))
    assert response.json()["end_user"] is None  # connected in the portal
    ConnectSession.objects.create(
        token_hash="0" * 64,
        customer=ours.customer,
        end_user_id="u-7",
        end_user_email="ada@example.com",
        end_user_display_name="Ada",
        return_url="https://app.example.com/done",
        expires_at=timezone.now() + timedelta(minutes=30),
        config_variable=ours,
        outcome="connected",
    )
    response = env_client.get(_detail(ours.pk))
    assert response.json()["end_user"] == {
        "id": "u-7",
        "email": "ada@example.com",
        "display_name": "Ada",
    }
