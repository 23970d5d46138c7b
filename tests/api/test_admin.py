"""Environment keys in the admin: shown once on creation, listed with their scopes and
last use, revoked by an action and never revived."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from api.keys import environment_key_authenticate, environment_key_create
from api.models import EnvironmentKey, Scope

pytestmark = pytest.mark.django_db

KEY = re.compile(r"cpe_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")


def _add(admin_client, scopes):
    return admin_client.post(
        reverse("admin:api_environmentkey_add"), {"name": "backend", "scopes": scopes}
    )


def test_the_new_key_is_shown_once_with_its_scopes(admin_client):
    response = _add(admin_client, [Scope.CONNECTIONS_READ, Scope.TOKENS_READ])
    assert response.status_code == 200
    html = response.content.decode()
    (raw,) = KEY.findall(html)
    stored = EnvironmentKey.objects.get()
    assert environment_key_authenticate(raw) == stored
    assert stored.scopes == ["connections:read", "tokens:read"]
    assert "not be shown again" in html
    assert "no-store" in response["Cache-Control"]
    secret = raw.split("_", 2)[2]  # cpe_<prefix>_<secret>; the secret itself may hold "_"
    assert all(secret not in morsel.value for morsel in response.cookies.values())
    assert all(secret not in str(value) for value in admin_client.session.values())
    for url in (
        reverse("admin:api_environmentkey_changelist"),
        reverse("admin:api_environmentkey_change", args=[stored.pk]),
    ):
        assert not KEY.search(admin_client.get(url).content.decode())


def test_a_key_needs_a_scope(admin_client):
    response = _add(admin_client, [])
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not EnvironmentKey.objects.exists()


def test_the_list_shows_prefix_scopes_and_revoked(admin_client):
    key, _ = environment_key_create(name="backend", scopes=[Scope.TOKENS_READ])
    html = admin_client.get(reverse("admin:api_environmentkey_changelist")).content.decode()
    assert key.prefix in html
    assert "tokens:read" in html
    found = admin_client.get(reverse("admin:api_environmentkey_changelist"), {"q": "back"})
    assert key.prefix in found.content.decode()
    missed = admin_client.get(reverse("admin:api_environmentkey_changelist"), {"q": "zzz"})
    assert key.prefix not in missed.content.decode()


def test_revoking_is_for_good(admin_client):
    key, raw = environment_key_create(name="backend", scopes=[Scope.TOKENS_READ])
    response = admin_client.post(
        reverse("admin:api_environmentkey_changelist"),
        {"action": "revoke", "_selected_action": [key.pk]},
        follow=True,
    )
    assert "Revoked 1 key(s)" in response.content.decode()
    assert environment_key_authenticate(raw) is None
    change = reverse("admin:api_environmentkey_change", args=[key.pk])
    admin_client.post(change, {"name": "backend", "revoked": ""})
    key.refresh_from_db()
    assert key.revoked


def test_a_key_can_be_renamed_and_keeps_its_scopes(admin_client):
    key, _ = environment_key_create(name="backend", scopes=[Scope.TOKENS_READ])
    change = reverse("admin:api_environmentkey_change", args=[key.pk])
    response = admin_client.post(change, {"name": "production backend"})
    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.scopes, key.revoked) == ("production backend", ["tokens:read"], False)
