"""API fixtures: connected ConfigVariables of two customers, a key of each kind."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from api.keys import environment_key_create
from api.models import Scope
from connections.api_keys import api_key_create
from connections.models import Status
from tests.factories import ConfigVariableFactory, CustomerFactory


@pytest.fixture(autouse=True)
def _fresh_counters():
    """No failed-key counters left over from other tests (or for later ones)."""
    cache.clear()
    yield
    cache.clear()


def connected(customer=None, **fields):
    values = {
        "status": Status.CONNECTED,
        "access_token": "live-access-token",
        "refresh_token": "live-refresh-token",
        "expires_at": timezone.now() + timedelta(hours=1),
        "refresh_at": timezone.now() + timedelta(minutes=50),
        "scopes_granted": "widgets:read offline_access",
        **fields,
    }
    if customer is not None:
        values["customer"] = customer
    return ConfigVariableFactory(**values)


@pytest.fixture
def ours():
    """A connected ConfigVariable of the customer 'acme' (external_id acme-1)."""
    return connected(CustomerFactory(name="Acme", external_id="acme-1"))


@pytest.fixture
def theirs():
    """Another customer's connected ConfigVariable."""
    return connected(CustomerFactory(name="Globex", external_id="globex-1"))


def bearer(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def customer_client(ours) -> Client:
    """Holding acme's customer key."""
    _, key = api_key_create(customer=ours.customer, name="integration")
    return bearer(key)


@pytest.fixture
def env_client() -> Client:
    """Holding an environment key with every scope."""
    _, key = environment_key_create(name="backend", scopes=Scope.values)
    return bearer(key)


def env_client_with(*scopes: str) -> Client:
    _, key = environment_key_create(name="narrow", scopes=scopes)
    return bearer(key)
