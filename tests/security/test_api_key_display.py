"""A new API key is shown once, in the admin's response to the add form, and never sent
back in a cookie (the messages framework's cookie storage would) or kept in the session."""

from __future__ import annotations

import base64
import re
import zlib

import pytest
from django.urls import reverse

from connections.api_keys import PREFIX, api_key_authenticate
from connections.models import ApiKey

pytestmark = pytest.mark.django_db

KEY = re.compile(re.escape(PREFIX) + r"[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")


def _readable(value: str) -> str:
    """A cookie's value as anyone holding it can read it: signed Django cookies (messages'
    cookie storage) are base64, maybe zlib-compressed, with a signature after a colon."""
    text = value
    payload = value.split(":", 1)[0]
    compressed = payload.startswith(".")
    payload = payload.removeprefix(".")
    try:
        data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        text += (zlib.decompress(data) if compressed else data).decode("utf-8", "replace")
    except (ValueError, zlib.error):
        pass
    return text


def _add(admin_client, customer):
    return admin_client.post(
        reverse("admin:connections_apikey_add"),
        {"customer": customer.pk, "name": "ci"},
    )


def test_the_new_key_is_shown_once_and_never_in_a_cookie(admin_client, customer):
    response = _add(admin_client, customer)
    assert response.status_code == 200
    html = response.content.decode()
    keys = KEY.findall(html)
    assert len(keys) == 1, "the key is on the page, once"
    (raw,) = keys
    api_key = ApiKey.objects.get(customer=customer, name="ci")
    assert api_key_authenticate(raw) == api_key  # the key shown is the key stored
    assert "not be shown again" in html
    assert reverse("admin:connections_apikey_changelist") in html  # a way back
    assert "no-store" in response["Cache-Control"]
    secret = raw.removeprefix(PREFIX).partition("_")[2]  # the secret may itself hold "_"
    for morsel in response.cookies.values():
        assert secret not in _readable(morsel.value)
    assert "messages" not in response.cookies
    session = admin_client.session
    assert all(secret not in str(value) for value in session.values())


def test_the_key_is_not_shown_again(admin_client, customer):
    _add(admin_client, customer)
    api_key = ApiKey.objects.get(customer=customer, name="ci")
    for url in (
        reverse("admin:connections_apikey_changelist"),
        reverse("admin:connections_apikey_change", args=[api_key.pk]),
        reverse("admin:index"),
    ):
        response = admin_client.get(url)
        assert response.status_code == 200
        assert not KEY.search(response.content.decode())
        assert all(not KEY.search(_readable(m.value)) for m in response.cookies.values())


def test_an_invalid_form_shows_no_key(admin_client):
    response = admin_client.post(reverse("admin:connections_apikey_add"), {"name": "ci"})
    assert response.status_code == 200
    assert not KEY.search(response.content.decode())
    assert not ApiKey.objects.exists()
