"""The OpenAPI document: valid, describing every /api/v1/ URL the code serves, and the
reference page served by the portal with nothing from elsewhere."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver, reverse

pytestmark = pytest.mark.django_db

EXTERNAL = re.compile(r"""(?:https?:)?//(?!localhost|testserver)[\w.-]+""")


def test_the_document_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "openapi: 3." in out.read_text()


def _api_routes(resolver: URLResolver, prefix: str = "") -> list[str]:
    """Every URL under /api/v1/ as the OpenAPI document spells it (``{id}`` for ``pk``)."""
    found = []
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += _api_routes(entry, route)
        elif isinstance(entry, URLPattern) and route.startswith("api/v1/"):
            found.append("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route).replace("{pk}", "{id}"))
    return found


def test_every_api_url_is_in_the_document(client):
    response = client.get(reverse("api:schema"))
    assert response.status_code == 200
    paths = set(json.loads(response.content)["paths"])
    not_api = {"/api/v1/schema", "/api/v1/docs", "/api/v1/^(?P{path}[\\s\\S]*)$"}
    served = set(_api_routes(get_resolver())) - not_api
    assert served, "the URL conf has API routes"
    assert served == paths


def test_every_operation_names_its_security_and_errors(client):
    document = json.loads(client.get(reverse("api:schema")).content)
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["apiKey"]["description"],
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["security"] == [{"apiKey": []}], (method, path)
            assert {"401", "429"} <= set(operation["responses"]), (method, path)
            error = operation["responses"]["401"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}


def test_the_reference_page_is_served_from_the_portal_alone(client):
    page = client.get(reverse("api:docs"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html
    assert not EXTERNAL.findall(html)
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert scripts, "the page loads its scripts"
    for src in scripts:
        assert src.startswith("/"), src
    # Scripts come from the portal, none inline: the CSP needs no exception.
    assert "script-src 'self'" in page["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    init = client.get(scripts[-1])
    assert init.status_code == 200
    assert not EXTERNAL.findall(init.content.decode())
