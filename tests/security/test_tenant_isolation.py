"""Cross-tenant access on every portal URL that names a ConfigVariable: always a 404.

The URLs are generated from the URL conf, so a new URL taking a ``pk`` is covered
without touching this file.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from connections.api_keys import api_key_create
from connections.models import ConfigVariable, Status
from tests.factories import ConfigVariableFactory, CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def _named_patterns(resolver: URLResolver, namespace: str = "") -> list[tuple[str, URLPattern]]:
    found = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue  # staff-only; covered by the admin's own permissions
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            found.extend(_named_patterns(entry, inner))
        elif entry.name and "pk" in entry.pattern.converters:
            found.append((f"{namespace}{entry.name}", entry))
    return found


PK_URLS = sorted(name for name, _ in _named_patterns(get_resolver()))


def test_the_generated_list_is_not_empty():
    assert {
        "connections:detail",
        "connections:status",
        "connections:disconnect",
        "api:connection_token",
    } <= set(PK_URLS)


@pytest.fixture
def victim():
    return ConfigVariableFactory(
        status=Status.CONNECTED, access_token="victim-access-token", refresh_token="victim-rt"
    )


@pytest.fixture
def attacker() -> Client:
    """Another customer's user, signed in and holding that customer's API key."""
    customer = CustomerFactory()
    _, key = api_key_create(customer=customer, name="attacker")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.force_login(UserFactory(customer=customer))
    return client


@pytest.mark.parametrize("name", PK_URLS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_another_customers_config_variable_is_a_404_and_unchanged(name, method, victim, attacker):
    before = ConfigVariable.objects.filter(pk=victim.pk).values().get()
    response = getattr(attacker, method)(reverse(name, args=[victim.pk]))
    assert response.status_code in (404, 405)
    assert b"victim-access-token" not in response.content
    assert ConfigVariable.objects.filter(pk=victim.pk).values().get() == before


@pytest.mark.parametrize("name", PK_URLS)
def test_anonymous_users_are_sent_to_log_in_or_refused(name, victim, client):
    response = client.get(reverse(name, args=[victim.pk]))
    assert response.status_code in (302, 401, 405)
    assert b"victim-access-token" not in response.content
    if response.status_code == 302:
        assert response["Location"].startswith(reverse("login"))


def test_users_outside_any_customer_get_404(victim):
    client = Client()
    client.force_login(UserFactory())
    assert client.get(reverse("connections:portal")).status_code == 404
    assert client.get(reverse("connections:detail", args=[victim.pk])).status_code == 404


def test_connect_acts_on_the_users_own_customer_only(victim, attacker):
    attacker.post(reverse("oauthflow:connect", args=[victim.connection.slug]))
    victim.refresh_from_db()
    assert victim.status == Status.CONNECTED
    assert ConfigVariable.objects.filter(connection=victim.connection).count() == 2
