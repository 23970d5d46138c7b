"""Portal and admin pages carry a Content-Security-Policy under which inline scripts need
the response's nonce, and the portal's inline script has it."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from connections.models import Status
from tests.factories import ConfigVariableFactory

pytestmark = pytest.mark.django_db


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = (part.strip().split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


def _nonce_sources(policy) -> list[str]:
    return [s for s in policy["script-src"] if s.startswith("'nonce-")]


def _assert_strict(policy) -> None:
    assert policy["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'self'" in policy["form-action"]
    assert "*" not in policy["form-action"]


@pytest.mark.parametrize("name", ["login", "admin:login"])
def test_login_pages_carry_the_policy(client, name):
    _assert_strict(_policy(client.get(reverse(name))))


def test_portal_and_admin_pages_carry_the_policy(portal_client, admin_client):
    _assert_strict(_policy(portal_client.get(reverse("connections:portal"))))
    _assert_strict(_policy(admin_client.get(reverse("admin:index"))))
    _assert_strict(_policy(admin_client.get(reverse("admin:connections_app_changelist"))))


def test_the_portals_inline_script_carries_the_nonce(portal_client, customer):
    cv = ConfigVariableFactory(customer=customer, status=Status.EXCHANGING)
    response = portal_client.get(reverse("connections:detail", args=[cv.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts, "the page polls its status with an inline script"
    (source,) = _nonce_sources(_policy(response))
    nonce = source.removeprefix("'nonce-").removesuffix("'")
    for tag in scripts:
        if "src=" not in tag:
            assert f'nonce="{nonce}"' in tag


def test_each_response_gets_its_own_nonce(portal_client, customer):
    cv = ConfigVariableFactory(customer=customer, status=Status.EXCHANGING)
    url = reverse("connections:detail", args=[cv.pk])
    first = _nonce_sources(_policy(portal_client.get(url)))
    second = _nonce_sources(_policy(portal_client.get(url)))
    assert first
    assert second
    assert first != second
