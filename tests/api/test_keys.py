"""Keys of both kinds: revoked, unknown and malformed keys are 401s; environment keys are
stored hashed and throttled by the same counters as customer keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from api.keys import PREFIX, environment_key_authenticate, environment_key_create
from api.models import EnvironmentKey, Scope
from connections.api_keys import api_key_create
from tests.api.conftest import bearer

pytestmark = pytest.mark.django_db

LIST = "api:connection_list"


def test_an_environment_key_is_stored_hashed():
    key, raw = environment_key_create(name="backend", scopes=[Scope.TOKENS_READ])
    assert raw.startswith(PREFIX)
    secret = raw.removeprefix(PREFIX).partition("_")[2]
    assert len(secret) >= 40
    stored = EnvironmentKey.objects.get(pk=key.pk)
    assert secret not in f"{stored.prefix} {stored.key_hash} {stored.name}"
    assert environment_key_authenticate(raw) == stored


def test_unknown_scopes_are_refused():
    with pytest.raises(ValueError, match="Choose scopes"):
        environment_key_create(name="backend", scopes=["admin:everything"])
    assert not EnvironmentKey.objects.exists()


@pytest.mark.parametrize("kind", ["environment", "customer"])
def test_a_revoked_key_is_a_401(kind, ours):
    if kind == "environment":
        stored, raw = environment_key_create(name="backend", scopes=Scope.values)
    else:
        stored, raw = api_key_create(customer=ours.customer, name="integration")
    client = bearer(raw)
    assert client.get(reverse(LIST)).status_code == 200
    stored.revoked = True
    stored.save()
    response = client.get(reverse(LIST))
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer cpe_nope_nope", "Bearer cpe_0123456789ab_wrong", "Basic abc"],
)
def test_no_or_a_wrong_key_is_a_401(header, ours):
    response = Client(HTTP_AUTHORIZATION=header).get(reverse(LIST))
    assert response.status_code == 401
    assert set(response.json()) == {"error", "message"}
    assert "live-access-token" not in response.content.decode()


def test_the_last_use_is_recorded(env_client):
    assert EnvironmentKey.objects.get().last_used_at is None
    env_client.get(reverse(LIST))
    assert EnvironmentKey.objects.get().last_used_at is not None


def test_failed_environment_keys_are_throttled_with_customer_keys(settings, ours):
    """One set of counters: guesses at either kind count against the same address."""
    settings.API_KEY_FAILURE_LIMIT = 4
    _, raw = environment_key_create(name="backend", scopes=Scope.values)
    head = raw.rpartition("_")[0]
    guesses = [f"{head}_wrong", "cpk_0123456789ab_wrong", f"{head}_wrong2", "cpe_x_y"]
    for guess in guesses:
        assert bearer(guess).get(reverse(LIST), REMOTE_ADDR="203.0.113.5").status_code == 401
    response = bearer("cpe_x_y").get(reverse(LIST), REMOTE_ADDR="203.0.113.5")
    assert response.status_code == 429
    assert response.json()["error"] == "too_many_requests"
    assert int(response["Retry-After"]) >= 1
    message = response.json()["message"]
    assert "Expected available" not in message  # the wait is said once
    assert response["Retry-After"] in message
    # The right key still passes: nobody can lock an integration out.
    assert bearer(raw).get(reverse(LIST), REMOTE_ADDR="203.0.113.5").status_code == 200
    cache.clear()


def test_the_last_use_is_written_at_most_once_a_minute(env_client):
    """One key may serve every request of a backend: its row is not written each time."""
    env_client.get(reverse(LIST))
    first = EnvironmentKey.objects.get().last_used_at
    env_client.get(reverse(LIST))
    assert EnvironmentKey.objects.get().last_used_at == first
    EnvironmentKey.objects.update(last_used_at=first - timedelta(minutes=2))
    env_client.get(reverse(LIST))
    assert EnvironmentKey.objects.get().last_used_at > first
